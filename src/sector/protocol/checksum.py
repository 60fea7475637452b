"""The checksums every party computes over file contents: one per block, one per file.

A file is cut into :data:`BLOCK` (64 KiB) blocks, the last one shorter. Each
block's *sum* is its xxh3-64 digest (:data:`SUM_SIZE`, 8 bytes), and the
file's checksum - the one the master records, ``stat`` shows and object names
carry - is the xxh3-128 of its block sums laid end to end (:func:`of_sums`).
HDFS defines its file checksum the same way (an MD5 of the per-block CRCs),
and for the same reasons:

* one pass over the bytes gives both, so a slave storing a file, a client
  downloading one and the scrub re-reading one hash every byte once;
* a client reading any range checks it against the sums of its blocks before
  the bytes reach the caller (the slave ships them with the data, so it keeps
  its zero-copy ``sendfile``), and a whole download checks, for free, that
  those sums are the ones the master recorded;
* ranges fetched from several replicas at once are checked each on its own
  and still add up to the file's checksum.

Why 64 KiB blocks rather than HDFS's 512 bytes: a sum costs a Python call,
and at 64 KiB ``python -m bench`` hashes blocks as fast as whole buffers
(~7 GB/s here, against ~3 GB/s at 4 KiB and ~1 GB/s at 512 bytes), while the
sums take 1/8192 of the data (128 KiB per GiB). The price is that a read is
widened to whole blocks, at most 64 KiB either side, which the client's
1 MiB read-ahead absorbs. The empty file's checksum is ``xxh3_128(b"")``.

It is part of the protocol because slave, master and client must agree on it.
"""

from __future__ import annotations

from pathlib import Path

import xxhash

#: How ``stat`` names the checksum: xxh3-128 over the xxh3-64 sums of 64 KiB blocks.
NAME = "xxh3-64k"
BLOCK = 64 * 1024
SUM_SIZE = 8
CHUNK = 4 * 1024 * 1024

_block_sum = xxhash.xxh3_64_digest


def block_sums(data: bytes | bytearray | memoryview) -> bytes:
    """The sums of ``data``'s blocks, ``data`` starting at a block boundary.

    The last block may be short: it is summed as it is (a block is short only
    at the end of its file).
    """
    view = memoryview(data).cast("B")
    if len(view) <= BLOCK:
        return _block_sum(view) if view else b""
    return b"".join([_block_sum(view[i : i + BLOCK]) for i in range(0, len(view), BLOCK)])


def of_sums(sums: bytes | bytearray | memoryview) -> str:
    """A file's checksum (lowercase hex) from all its block sums, in order."""
    return xxhash.xxh3_128_hexdigest(sums)


def sum_of_pieces(*pieces: bytes | bytearray | memoryview) -> bytes:
    """One block's sum from its bytes in several pieces, in order (no joining copy).

    A reader that received a block partly into the caller's object and partly
    into scratch memory checks it this way.
    """
    hasher = xxhash.xxh3_64()
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()


def first_bad_block(data: bytes | bytearray | memoryview, sums: bytes | bytearray) -> int | None:
    """Index of the first block of ``data`` that does not match ``sums``; None if all do.

    ``data`` starts at a block boundary and holds whole blocks (or ends the
    file). Missing sums count as a mismatch at the first block they miss.
    """
    computed = block_sums(data)
    if computed == sums:
        return None
    for index in range(0, len(computed), SUM_SIZE):
        if computed[index : index + SUM_SIZE] != sums[index : index + SUM_SIZE]:
            return index // SUM_SIZE
    return len(computed) // SUM_SIZE  # ``sums`` is longer than the data


def blocks(start: int, end: int) -> range:
    """Indexes of the blocks that bytes ``start`` to ``end`` (exclusive) touch."""
    if end <= start:
        return range(start // BLOCK, start // BLOCK)
    return range(start // BLOCK, (end - 1) // BLOCK + 1)


def align_down(offset: int) -> int:
    return offset - offset % BLOCK


def align_up(offset: int, size: int) -> int:
    """``offset`` moved up to the next block boundary, or to ``size`` (the file's end)."""
    return min(size, -(-offset // BLOCK) * BLOCK)


def sums_length(size: int) -> int:
    """Bytes of sums a file of ``size`` bytes has."""
    return -(-size // BLOCK) * SUM_SIZE


class BlockHasher:
    """Block sums and the file checksum of bytes fed in order, in one pass.

    Pieces may have any length: a block split between two ``update`` calls
    is finished by a streaming hasher, without copying. ``hexdigest()`` is the
    file checksum, ``sums()`` every block sum so far (the short last block
    included), and ``size`` the bytes fed.
    """

    def __init__(self) -> None:
        self.size = 0
        self._sums = bytearray()
        self._partial = xxhash.xxh3_64()
        self._partial_size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._partial_size:
            take = min(BLOCK - self._partial_size, len(view))
            self._partial.update(view[:take])
            self._partial_size += take
            view = view[take:]
            if self._partial_size < BLOCK:
                return
            self._sums += self._partial.digest()
            self._partial.reset()
            self._partial_size = 0
        whole = len(view) - len(view) % BLOCK
        if whole:
            self._sums += block_sums(view[:whole])
        if whole < len(view):
            self._partial.update(view[whole:])
            self._partial_size = len(view) - whole

    def sums(self) -> bytes:
        if self._partial_size:
            return bytes(self._sums + self._partial.digest())
        return bytes(self._sums)

    def hexdigest(self) -> str:
        return of_sums(self.sums())


def new_hasher() -> BlockHasher:
    return BlockHasher()


def of_bytes(data: bytes | bytearray | memoryview) -> str:
    """The checksum of ``data`` as a whole file."""
    return of_sums(block_sums(data))


def of_file(path: Path | str, limit: int | None = None) -> str:
    """Checksum of a file's first ``limit`` bytes (all of it by default)."""
    return hash_file(path, limit).hexdigest()


def hash_file(path: Path | str, limit: int | None = None) -> BlockHasher:
    """A :class:`BlockHasher` fed a file's first ``limit`` bytes (all of it by default)."""
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
    return hasher
