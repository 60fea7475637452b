"""Group commit: commits that arrive while the disk is flushing go to it together."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sector.protocol import checksum
from sector.slave.commits import GroupCommit
from sector.slave.storage import Storage, WriteSession


def test_commits_arriving_while_the_disk_is_busy_share_a_flush(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data")
    contents = {oid: os.urandom(100 + oid) for oid in range(1, 13)}

    async def commit_all() -> list[tuple[int, str]]:
        group = GroupCommit(storage)
        writes = []
        for oid, data in contents.items():
            session = WriteSession.begin(storage, oid, 1, lease=oid, base=0)
            session.write_at(0, memoryview(data))
            writes.append(session)
        outcomes = await asyncio.gather(*(group.commit(w) for w in writes))
        # all reached commit before the flush began: they went to the disk together
        assert (group.batches, group.writes) == (1, len(writes))
        return outcomes

    outcomes = asyncio.run(commit_all())
    assert outcomes == [(len(d), checksum.of_bytes(d)) for d in contents.values()]
    assert all(storage.find(oid, 1) is not None for oid in contents)


def test_a_failed_commit_raises_for_its_writer_only(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data")

    async def commit_both() -> list[object]:
        group = GroupCommit(storage)
        good = WriteSession.begin(storage, 1, 1, lease=1, base=0)
        bad = WriteSession.begin(storage, 2, 1, lease=2, base=0)
        os.close(bad.fd)  # its fsync will fail, as a disk error would
        bad.fd, writer = os.pipe()  # fsync refuses a pipe (EINVAL)
        os.close(writer)
        return await asyncio.gather(group.commit(good), group.commit(bad), return_exceptions=True)

    good, bad = asyncio.run(commit_both())
    assert good == (0, checksum.of_bytes(b""))
    assert isinstance(bad, OSError)
