"""Sector path rules: one canonical absolute form, and refusal of what can never be valid."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sector.protocol.paths import (
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    ROOT,
    InvalidPath,
    components,
    has_wildcard,
    is_within,
    join,
    matches,
    normalize,
    split,
)

# --- normalize ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_path", "canonical"),
    [
        ("/", "/"),
        ("/a/b/c", "/a/b/c"),
        ("/a//b/./c", "/a/b/c"),
        ("/a/b/c/", "/a/b/c"),
        ("//a///b//", "/a/b"),
        ("a/b", "/a/b"),
        ("a", "/a"),
        (".", "/"),
        ("./a", "/a"),
        ("/a/../b", "/b"),
        ("/a/b/../../c", "/c"),
        ("/a/..", "/"),
        ("/a/b/..", "/a"),
        ("/...", "/..."),
        ("/a b/ c ", "/a b/ c "),
        ("/données/é", "/données/é"),
        ("/a\\b", "/a\\b"),
    ],
)
def test_normalize_gives_the_canonical_absolute_form(given_path: str, canonical: str) -> None:
    assert normalize(given_path) == canonical


def test_normalize_accepts_utf8_bytes() -> None:
    assert normalize("/é/x".encode()) == "/é/x"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("..", id="parent-of-root"),
        pytest.param("/..", id="rooted-parent-of-root"),
        pytest.param("/a/../..", id="climbs-above-root-later"),
        pytest.param("/a/../../b", id="climbs-above-root-then-down"),
        pytest.param("/a\x00b", id="nul-byte"),
        pytest.param(b"/\xff\xfe", id="bytes-not-utf8"),
        pytest.param(None, id="none"),
        pytest.param(42, id="integer"),
        pytest.param(["/a"], id="list"),
    ],
)
def test_normalize_refuses_paths_that_can_never_be_valid(bad: object) -> None:
    with pytest.raises(InvalidPath):
        normalize(bad)


def test_invalid_path_is_a_value_error() -> None:
    """Callers that only know built-ins can still catch it."""
    assert issubclass(InvalidPath, ValueError)


def test_a_name_of_max_name_bytes_is_allowed_and_one_more_is_refused() -> None:
    assert normalize("/" + "n" * MAX_NAME_BYTES) == "/" + "n" * MAX_NAME_BYTES
    with pytest.raises(InvalidPath, match="longer"):
        normalize("/" + "n" * (MAX_NAME_BYTES + 1))


def test_name_length_is_counted_in_utf8_bytes_not_characters() -> None:
    two_byte = "é"  # 2 bytes in UTF-8
    normalize("/" + two_byte * (MAX_NAME_BYTES // 2))
    with pytest.raises(InvalidPath):
        normalize("/" + two_byte * (MAX_NAME_BYTES // 2 + 1))


def test_a_path_longer_than_max_path_bytes_is_refused() -> None:
    with pytest.raises(InvalidPath, match="too long"):
        normalize("/ab" * (MAX_PATH_BYTES // 3 + 1))


def test_a_relative_path_whose_rooted_form_is_too_long_is_refused() -> None:
    """``ab/ab/.../a`` of exactly MAX_PATH_BYTES becomes one byte longer once rooted.

    Refusing it keeps ``normalize`` idempotent: its result is always a valid path.
    """
    relative = "ab/" * (MAX_PATH_BYTES // 3) + "a" * (MAX_PATH_BYTES % 3)
    assert len(relative) == MAX_PATH_BYTES
    with pytest.raises(InvalidPath, match="too long"):
        normalize(relative)


# --- the property -------------------------------------------------------------------

_names = st.sampled_from(["a", "bc", ".", "..", "", "é", "x y", "...", "*", "n" * 255])
_pieced = st.lists(_names, max_size=12).map("/".join)
_rooted = _pieced.map(lambda p: "/" + p)
_any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(_pieced | _rooted | _any_text)
def test_normalize_is_idempotent_and_yields_only_real_names(path: str) -> None:
    try:
        canonical = normalize(path)
    except InvalidPath:
        assume(False)
        return
    assert normalize(canonical) == canonical
    assert canonical.startswith("/")
    assert canonical == "/" or not canonical.endswith("/")
    parts = canonical.split("/")[1:] if canonical != "/" else []
    assert all(part not in ("", ".", "..") for part in parts)
    assert all(len(part.encode()) <= MAX_NAME_BYTES for part in parts)
    assert len(canonical.encode()) <= MAX_PATH_BYTES


# --- split, join, components --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parent", "name"),
    [("/a/b/c", "/a/b", "c"), ("/a", "/", "a"), ("/", "/", "")],
)
def test_split_gives_parent_and_name(path: str, parent: str, name: str) -> None:
    assert split(path) == (parent, name)


@pytest.mark.parametrize(
    ("parent", "name", "joined"),
    [("/a/b", "c", "/a/b/c"), ("/", "a", "/a"), ("/a", "", "/a")],
)
def test_join_puts_a_name_under_a_parent(parent: str, name: str, joined: str) -> None:
    assert join(parent, name) == joined


@given(_rooted)
def test_join_undoes_split(path: str) -> None:
    try:
        canonical = normalize(path)
    except InvalidPath:
        assume(False)
        return
    assert join(*split(canonical)) == canonical


def test_components_of_the_root_are_empty() -> None:
    assert components(ROOT) == []
    assert components("/a/b") == ["a", "b"]


# --- is_within ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix", "inside"),
    [
        ("/a", "/a", True),
        ("/a/b", "/a", True),
        ("/a/b/c", "/a", True),
        ("/ab", "/a", False),
        ("/a", "/a/b", False),
        ("/b", "/a", False),
        ("/anything", "/", True),
        ("/", "/", True),
    ],
)
def test_is_within_means_the_prefix_itself_or_below_it(
    path: str, prefix: str, inside: bool
) -> None:
    assert is_within(path, prefix) is inside


# --- wildcards ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("data.txt", "*.txt", True),
        ("data.txt", "*.TXT", False),
        ("a1", "a?", True),
        ("a12", "a?", False),
        ("b", "[abc]", True),
        ("d", "[abc]", False),
        ("x", "*", True),
    ],
)
def test_matches_uses_sector_wildcards_case_sensitively(
    name: str, pattern: str, expected: bool
) -> None:
    assert matches(name, pattern) is expected


@pytest.mark.parametrize(("path", "wild"), [("/a/*.txt", True), ("/a/?", True), ("/a/b", False)])
def test_has_wildcard(path: str, wild: bool) -> None:
    assert has_wildcard(path) is wild
