"""Python's mode strings and Sector's mode bits, translated one into the other."""

from __future__ import annotations

import pytest

from sector.client.modes import OpenMode, parse_mode
from sector.errors import InvalidError
from sector.protocol.messages import APPEND, READ, RW, TRUNC, WRITE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rb", OpenMode(READ, "rb", "never")),
        ("wb", OpenMode(WRITE | TRUNC, "wb")),
        ("ab", OpenMode(WRITE | APPEND, "ab", append=True)),
        ("xb", OpenMode(WRITE | TRUNC, "xb", "exclusive")),
        ("r+b", OpenMode(RW, "rb+", "never")),
        ("rb+", OpenMode(RW, "rb+", "never")),
        ("w+b", OpenMode(RW | TRUNC, "wb+")),
        ("a+b", OpenMode(RW | APPEND, "ab+", append=True)),
        ("x+b", OpenMode(RW | TRUNC, "xb+", "exclusive")),
        ("r", OpenMode(READ, "rb", "never", text=True)),
        ("rt", OpenMode(READ, "rb", "never", text=True)),
        ("w", OpenMode(WRITE | TRUNC, "wb", text=True)),
        ("a+", OpenMode(RW | APPEND, "ab+", append=True, text=True)),
    ],
)
def test_python_mode_strings_mean_what_open_makes_of_them(text: str, expected: OpenMode) -> None:
    assert parse_mode(text) == expected


@pytest.mark.parametrize(
    ("bits", "name"),
    [
        (READ, "rb"),
        (WRITE, "wb"),
        (RW, "rb+"),
        (WRITE | TRUNC, "wb"),
        (RW | TRUNC, "wb+"),
        (WRITE | APPEND, "ab"),
        (RW | APPEND, "ab+"),
    ],
)
def test_sector_mode_bits_keep_their_meaning_and_get_pythons_name(bits: int, name: str) -> None:
    opened = parse_mode(bits)
    assert (opened.bits, opened.name, opened.create) == (bits, name, "allow")
    assert not opened.append  # Sector's APPEND only starts at the end
    assert opened.readable == bool(bits & READ) and not opened.text


@pytest.mark.parametrize("bad", ["", "rw", "rr", "r++", "bt", "rbt", "z", "rU", 1.5, None, True])
def test_a_mode_open_would_refuse_is_a_clear_value_error(bad: object) -> None:
    with pytest.raises(InvalidError, match="mode"):
        parse_mode(bad)  # type: ignore[arg-type]
