"""The content checksum client, slave and master must all agree on."""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from sector.protocol import checksum


def test_the_checksum_is_xxh3_128_as_lowercase_hex() -> None:
    assert checksum.NAME == "xxh3_128"
    digest = checksum.of_bytes(b"")
    assert digest == "99aa06d3014798d86001c324468d497f"
    assert digest == xxhash.xxh3_128_hexdigest(b"")


@given(st.lists(st.binary(max_size=100), max_size=10))
def test_streaming_in_pieces_equals_hashing_at_once(pieces: list[bytes]) -> None:
    hasher = checksum.new_hasher()
    for piece in pieces:
        hasher.update(piece)
    assert hasher.hexdigest() == checksum.of_bytes(b"".join(pieces))


def test_of_file_equals_of_bytes_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checksum, "CHUNK", 7)
    data = bytes(range(256)) * 3
    path = tmp_path / "f"
    path.write_bytes(data)
    assert checksum.of_file(path) == checksum.of_bytes(data)


@pytest.mark.parametrize("limit", [0, 1, 6, 7, 8, 500, 768, 10_000])
def test_of_file_with_limit_hashes_only_that_many_leading_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(checksum, "CHUNK", 7)
    data = bytes(range(256)) * 3
    path = tmp_path / "f"
    path.write_bytes(data)
    assert checksum.of_file(path, limit) == checksum.of_bytes(data[:limit])


def test_one_changed_byte_changes_the_checksum() -> None:
    data = bytearray(b"\x00" * 4096)
    before = checksum.of_bytes(data)
    data[2000] = 1
    assert checksum.of_bytes(data) != before
