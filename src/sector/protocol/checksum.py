"""The checksum every party computes over file contents.

It is part of the protocol because slave and client must agree on it: the
slave computes it while the bytes stream in, the master records it, and a
download recomputes it over what arrived. xxh3-128 runs at memory speed, so it
costs nothing on the data path while still catching any rotten byte.
"""

from __future__ import annotations

from pathlib import Path

import xxhash

NAME = "xxh3_128"
CHUNK = 4 * 1024 * 1024


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def of_bytes(data: bytes | bytearray | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def of_file(path: Path | str, limit: int | None = None) -> str:
    """Checksum of a file's first ``limit`` bytes (all of it by default)."""
    hasher = new_hasher()
    remaining = limit
    with open(path, "rb") as reader:
        while True:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            if want <= 0:
                break
            chunk = reader.read(want)
            if not chunk:
                break
            hasher.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return hasher.hexdigest()
