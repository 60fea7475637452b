"""Group commit: writes that reach ``commit`` while the disk is busy go to it together.

Every commit waits for the disk (an ``fsync`` of its bytes, one of the folder
it is renamed into): the same few milliseconds whether one file is flushed or
twenty. So a commit that arrives while a flush is under way does not start its
own: it waits for that one to end and goes with every other commit that came
meanwhile, in one :meth:`~.storage.Storage.commit_together`. A lone writer never
waits for company (its commit starts at once when the disk is idle); eight
writers share their flushes.
"""

from __future__ import annotations

import asyncio

from .storage import Storage, WriteSession

#: What one write's commit came to: (size, checksum), or what failed it.
Outcome = tuple[int, str] | BaseException


class GroupCommit:
    def __init__(self, storage: Storage):
        self.storage = storage
        self._waiting: list[tuple[WriteSession, asyncio.Future[Outcome]]] = []
        self._flushing: asyncio.Task | None = None
        #: Batches flushed and writes in them, for the curious (tests, logs).
        self.batches = 0
        self.writes = 0

    async def commit(self, write: WriteSession) -> tuple[int, str]:
        """fsync and publish ``write``, with whichever commits are waiting beside it;
        ``(size, checksum)``. Raises what failed it (OSError: the disk)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        self._waiting.append((write, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush_all())
        outcome = await done
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _flush_all(self) -> None:
        """Flush the waiting commits a batch at a time, until none is left."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            outcomes: list[Outcome]
            try:
                outcomes = list(
                    await loop.run_in_executor(
                        None, self.storage.commit_together, [write for write, _ in batch]
                    )
                )
            except BaseException as exc:  # a bug, or the slave stopping: nobody waits forever
                outcomes = [exc] * len(batch)
                if isinstance(exc, asyncio.CancelledError):
                    self._answer(batch, outcomes)
                    raise
            self.batches += 1
            self.writes += len(batch)
            self._answer(batch, outcomes)

    @staticmethod
    def _answer(
        batch: list[tuple[WriteSession, asyncio.Future[Outcome]]], outcomes: list[Outcome]
    ) -> None:
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if not done.done():
                done.set_result(outcome)


__all__ = ["GroupCommit"]
