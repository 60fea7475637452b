"""The checksums client, slave and master must all agree on: per block, and per file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from sector.protocol import checksum
from sector.protocol.checksum import BLOCK, SUM_SIZE

#: Three blocks and a bit: enough for every kind of range (inside one block, across
#: one boundary, whole blocks, up to the short last block).
DATA = os.urandom(3 * BLOCK + 1234)
SUMS = checksum.block_sums(DATA)


def test_a_files_checksum_is_the_xxh3_128_of_its_64k_blocks_xxh3_64_sums() -> None:
    data = os.urandom(BLOCK + 10)
    sums = xxhash.xxh3_64_digest(data[:BLOCK]) + xxhash.xxh3_64_digest(data[BLOCK:])
    assert checksum.block_sums(data) == sums
    assert checksum.of_bytes(data) == xxhash.xxh3_128_hexdigest(sums)
    assert checksum.NAME == "xxh3-64k"


def test_the_empty_file_has_no_blocks_and_the_checksum_of_nothing() -> None:
    assert checksum.block_sums(b"") == b""
    assert (
        checksum.of_bytes(b"")
        == "99aa06d3014798d86001c324468d497f"
        == xxhash.xxh3_128_hexdigest(b"")
    )


@given(st.lists(st.integers(0, 3 * BLOCK), max_size=6))
@settings(max_examples=60, deadline=None)
def test_hashing_in_pieces_of_any_size_equals_hashing_at_once(cuts: list[int]) -> None:
    hasher = checksum.new_hasher()
    bounds = [0, *sorted(cuts), len(DATA)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        hasher.update(DATA[lo:hi])
    assert hasher.size == len(DATA)
    assert hasher.sums() == SUMS
    assert hasher.hexdigest() == checksum.of_bytes(DATA)


@given(st.integers(0, len(DATA)), st.integers(0, len(DATA)))
@settings(max_examples=300, deadline=None)
def test_the_blocks_of_any_range_are_checked_by_their_sums(offset: int, length: int) -> None:
    """Every offset and length: widened to whole blocks, the range's bytes match the
    sums a slave ships for it, and any one changed byte is caught in its block."""
    end = min(len(DATA), offset + length)
    touched = checksum.blocks(offset, end)
    if end <= offset:
        assert len(touched) == 0  # nothing read, nothing shipped
        return
    start, stop = checksum.align_down(offset), checksum.align_up(end, len(DATA))
    assert touched.start * BLOCK == start and min(touched.stop * BLOCK, len(DATA)) == stop
    shipped = SUMS[touched.start * SUM_SIZE : touched.stop * SUM_SIZE]
    assert len(shipped) == len(touched) * SUM_SIZE
    widened = bytearray(DATA[start:stop])
    assert checksum.first_bad_block(widened, shipped) is None
    flip = offset + (length * 7919) % (end - offset)
    widened[flip - start] ^= 0x01
    assert checksum.first_bad_block(widened, shipped) == (flip - start) // BLOCK


def test_missing_sums_are_a_mismatch_where_they_run_out() -> None:
    assert checksum.first_bad_block(DATA, SUMS[:SUM_SIZE]) == 1
    assert checksum.first_bad_block(DATA[:BLOCK], SUMS) == 1


def test_of_file_equals_of_bytes_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checksum, "CHUNK", 7000)
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert checksum.of_file(path) == checksum.of_bytes(DATA)


@pytest.mark.parametrize("limit", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 10**9])
def test_of_file_with_limit_hashes_only_that_many_leading_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(checksum, "CHUNK", 7000)
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert checksum.of_file(path, limit) == checksum.of_bytes(DATA[:limit])


def test_one_changed_byte_changes_the_checksum() -> None:
    data = bytearray(b"\x00" * 4096)
    before = checksum.of_bytes(data)
    data[2000] = 1
    assert checksum.of_bytes(data) != before
