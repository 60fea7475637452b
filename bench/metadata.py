"""Small files and metadata: the same six phases on Sector, the local disk and MooseFS.

Each phase runs over N files of 1 KB in one directory: create (write + close,
durable), stat each, list the directory, rename each, read each, delete each.
With C concurrent clients, every client is its own *process* (a client in a
thread would share our GIL and measure Python, not the system) working on its
own 1/C of the names in the same directory, and the phases are fenced by a
barrier, so a phase's aggregate rate is all of its operations over the span
from the first client's start to the last client's end.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Protocol

PHASES = ("create", "stat", "list", "rename", "read", "delete")
#: How many times each client lists the directory: one listing is too short to time.
LISTINGS = 10
PAYLOAD = 1024


class FileSystem(Protocol):
    def create(self, name: str, data: bytes) -> None: ...
    def stat(self, name: str) -> int: ...
    def listing(self) -> int: ...
    def rename(self, old: str, new: str) -> None: ...
    def read(self, name: str) -> bytes: ...
    def delete(self, name: str) -> None: ...
    def close(self) -> None: ...


class LocalFS:
    """A POSIX directory (local disk or a FUSE mount). Creates are fsynced: durable,
    as Sector's are, so the ratio compares the same promise."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def create(self, name: str, data: bytes) -> None:
        fd = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def stat(self, name: str) -> int:
        return os.stat(self._path(name)).st_size

    def listing(self) -> int:
        return len(os.listdir(self.directory))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._path(old), self._path(new))

    def read(self, name: str) -> bytes:
        with open(self._path(name), "rb") as source:
            return source.read()

    def delete(self, name: str) -> None:
        os.unlink(self._path(name))

    def close(self) -> None:
        pass


class SectorFS:
    """The same phases through Sector's client API, one logged-in client."""

    def __init__(self, host: str, port: int, cert: str, directory: str):
        from sector.client import Client

        self.client = Client(host, port)
        self.client.login("test", "xxx", cert)
        self.directory = directory

    def _path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def create(self, name: str, data: bytes) -> None:
        from sector.protocol.messages import WRITE

        remote = self.client.open(self._path(name), WRITE)
        remote.write(data)
        remote.close()

    def stat(self, name: str) -> int:
        return self.client.stat(self._path(name)).size

    def listing(self) -> int:
        return len(self.client.ls(self.directory))

    def rename(self, old: str, new: str) -> None:
        self.client.move(self._path(old), self._path(new))

    def read(self, name: str) -> bytes:
        remote = self.client.open(self._path(name))
        try:
            return remote.read()
        finally:
            remote.close()

    def delete(self, name: str) -> None:
        self.client.rm(self._path(name))

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Target:
    """Where a worker process connects: picklable, so it crosses process boundaries."""

    kind: str  # "local" or "sector"
    directory: str
    host: str = ""
    port: int = 0
    cert: str = ""

    def open(self) -> FileSystem:
        if self.kind == "sector":
            return SectorFS(self.host, self.port, self.cert, self.directory)
        return LocalFS(self.directory)


def _worker(target: Target, index: int, clients: int, files: int, barrier, results) -> None:
    fs = target.open()
    try:
        mine = range(index, files, clients)
        names = [f"f{i:06d}" for i in mine]
        renamed = [f"r{i:06d}" for i in mine]
        data = b"x" * PAYLOAD
        spans: dict[str, tuple[float, float, int]] = {}
        for phase in PHASES:
            barrier.wait(timeout=600)
            started = time.perf_counter()
            if phase == "create":
                for name in names:
                    fs.create(name, data)
                count = len(names)
            elif phase == "stat":
                for name in names:
                    if fs.stat(name) != PAYLOAD:
                        raise RuntimeError(f"{name}: wrong size")
                count = len(names)
            elif phase == "list":
                count = 0
                for _ in range(LISTINGS):
                    count += fs.listing()
            elif phase == "rename":
                for old, new in zip(names, renamed, strict=True):
                    fs.rename(old, new)
                count = len(names)
            elif phase == "read":
                for name in renamed:
                    if len(fs.read(name)) != PAYLOAD:
                        raise RuntimeError(f"{name}: short read")
                count = len(names)
            else:
                for name in renamed:
                    fs.delete(name)
                count = len(names)
            spans[phase] = (started, time.perf_counter(), count)
        results.put((index, spans, None))
    except BaseException as exc:  # reported to the parent, which fails the run clearly
        results.put((index, {}, f"{type(exc).__name__}: {exc}"))
        barrier.abort()
    finally:
        fs.close()


def run_phases(target: Target, clients: int, files: int) -> dict[str, float]:
    """Aggregate operations per second for each phase (entries/s for ``list``).

    ``perf_counter`` is CLOCK_MONOTONIC on Linux, shared by all processes, so
    spans from different workers can be compared directly.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(target, i, clients, files, barrier, results))
        for i in range(clients)
    ]
    for worker in workers:
        worker.start()
    collected = []
    try:
        for _ in workers:
            collected.append(results.get(timeout=1200))
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
                worker.join()
    errors = [error for _, _, error in collected if error]
    if errors:
        raise RuntimeError(f"metadata workload failed on {target.kind}: {errors[0]}")
    rates = {}
    for phase in PHASES:
        spans = [spans[phase] for _, spans, _ in collected]
        elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
        rates[phase] = sum(count for _, _, count in spans) / max(elapsed, 1e-9)
    return rates
