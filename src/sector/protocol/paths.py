"""Sector path rules, in one place for client and master.

Paths are absolute, ``/``-separated and normalised before anything else looks
at them: ``/a//b/./c/`` is ``/a/b/c``. A path that would climb above the root,
holds a NUL byte, or names something longer than a file system allows is
refused, because the master stores names verbatim and a slave must never be
steered outside its data directory.
"""

from __future__ import annotations

import fnmatch

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
ROOT = "/"


class InvalidPath(ValueError):
    """The path can never be valid; the caller maps it to E_INVALID."""


def normalize(path: object) -> str:
    """Canonical absolute form of ``path``; relative paths start at the root."""
    if isinstance(path, bytes):
        try:
            path = path.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPath("path is not valid UTF-8") from None
    if not isinstance(path, str):
        raise InvalidPath(f"path must be a string, not {type(path).__name__}")
    if _plainly_canonical(path):
        return path
    if path == "":
        raise InvalidPath("empty path")
    if "\x00" in path:
        raise InvalidPath("path contains a NUL byte")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath("path is too long")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidPath("'..' climbs above the root")
            parts.pop()
            continue
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidPath(f"name longer than {MAX_NAME_BYTES} bytes")
        parts.append(part)
    result = "/" + "/".join(parts)
    if len(result.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath("path is too long")  # rooting a relative path adds a byte
    return result


def _plainly_canonical(path: str) -> bool:
    """A cheap test that ``path`` is already normal; every request pays for normalize.

    Conservative: no component may start with ``.`` and the whole path must be
    short enough that no name can exceed the byte limit; anything else takes
    the full route, which gives the same answer for these paths.
    """
    return (
        len(path) <= _SHORT
        and path[:1] == "/"
        and "//" not in path
        and "/." not in path
        and "\x00" not in path
        and (path == "/" or path[-1] != "/")
    )


#: Characters in which no name can exceed MAX_NAME_BYTES (4 UTF-8 bytes each at most).
_SHORT = MAX_NAME_BYTES // 4


def components(path: str) -> list[str]:
    """Names along a normalised path; the root has none."""
    return [p for p in path.split("/") if p]


def split(path: str) -> tuple[str, str]:
    """``/a/b/c`` -> (``/a/b``, ``c``); the root -> (``/``, ``""``)."""
    head, _, tail = path.rpartition("/")
    return (head or ROOT, tail)


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name if name else parent


def is_within(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or lies below it (both normalised)."""
    if prefix == ROOT:
        return True
    return path == prefix or path.startswith(prefix + "/")


def has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def matches(name: str, pattern: str) -> bool:
    """Sector's wildcards: ``*`` and ``?`` (and ``[...]``), case-sensitive."""
    return fnmatch.fnmatchcase(name, pattern)
