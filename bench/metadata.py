"""Small files and metadata: the same six phases on Sector, the local disk and MooseFS.

Each phase runs over N files of 1 KB in one directory: create (write + close,
durable), stat each, list the directory, rename each, read each, delete each.
With C concurrent clients, every client is its own *process* (a client in a
thread would share our GIL and measure Python, not the system) working on its
own 1/C of the names in the same directory, and the phases are fenced by a
barrier, so a phase's aggregate rate is all of its operations over the span
from the first client's start to the last client's end.

Sector runs in three styles (:data:`STYLES`): ``sector``, one blocking call
at a time (the honest floor: a round trip per operation); ``sector-batch``,
the blocking client's batch calls (``stat_many``, ``move_many`` ...,
pipelined on its master connection); ``sector-aio``, :mod:`sector.aio` with
every operation of a phase in flight at once. Each client also reports the
CPU it spent per phase, and the first samples the servers' (``servers``), so
the figures give CPU microseconds per operation on client, master and slave.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import psutil

PHASES = ("create", "stat", "list", "rename", "read", "delete")
#: How many times each client lists the directory: one listing is too short to time.
LISTINGS = 10
PAYLOAD = 1024
#: The ways of driving Sector; "sector" is one blocking call at a time.
STYLES = ("sector", "sector-batch", "sector-aio")
#: Files an asyncio client moves at once (each needs its own data connection).
AIO_CONCURRENCY = 32

T = TypeVar("T")


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


class Workload(Protocol):
    """What a client process runs: each phase over all of its names at once."""

    def create_all(self, names: list[str], data: bytes) -> None: ...
    def stat_all(self, names: list[str]) -> list[int]: ...
    def list_all(self, times: int) -> int: ...
    def rename_all(self, pairs: list[tuple[str, str]]) -> None: ...
    def read_all(self, names: list[str]) -> list[bytes]: ...
    def delete_all(self, names: list[str]) -> None: ...
    def close(self) -> None: ...


class OneByOne:
    """A :class:`FileSystem` driven one call per file, each waiting for the last."""

    def __init__(self, fs: FileSystem):
        self.fs = fs

    def create_all(self, names: list[str], data: bytes) -> None:
        for name in names:
            self.fs.create(name, data)

    def stat_all(self, names: list[str]) -> list[int]:
        return [self.fs.stat(name) for name in names]

    def list_all(self, times: int) -> int:
        return sum(self.fs.listing() for _ in range(times))

    def rename_all(self, pairs: list[tuple[str, str]]) -> None:
        for old, new in pairs:
            self.fs.rename(old, new)

    def read_all(self, names: list[str]) -> list[bytes]:
        return [self.fs.read(name) for name in names]

    def delete_all(self, names: list[str]) -> None:
        for name in names:
            self.fs.delete(name)

    def close(self) -> None:
        self.fs.close()


class SectorBatchFS(OneByOne):
    """The blocking client's batch calls: a phase's requests pipelined on one connection."""

    fs: SectorFS

    def __init__(self, host: str, port: int, cert: str, directory: str):
        super().__init__(SectorFS(host, port, cert, directory))
        self.client = self.fs.client

    def _paths(self, names: Iterable[str]) -> list[str]:
        return [self.fs._path(name) for name in names]

    def create_all(self, names: list[str], data: bytes) -> None:
        _no_errors(self.client.write_many((path, data) for path in self._paths(names)))

    def stat_all(self, names: list[str]) -> list[int]:
        return [stat.size for stat in _no_errors(self.client.stat_many(self._paths(names)))]

    def list_all(self, times: int) -> int:
        listings = _no_errors(self.client.ls_many([self.fs.directory] * times))
        return sum(len(listing) for listing in listings)

    def rename_all(self, pairs: list[tuple[str, str]]) -> None:
        path = self.fs._path
        _no_errors(self.client.move_many((path(old), path(new)) for old, new in pairs))

    def read_all(self, names: list[str]) -> list[bytes]:
        return _no_errors(self.client.read_many(self._paths(names)))

    def delete_all(self, names: list[str]) -> None:
        _no_errors(self.client.rm_many(self._paths(names)))


class SectorAioFS:
    """:mod:`sector.aio`: every operation of a phase in flight at once on one connection
    (file bytes: :data:`AIO_CONCURRENCY` files at a time)."""

    def __init__(self, host: str, port: int, cert: str, directory: str):
        from sector.aio import AsyncClient

        self.loop = asyncio.new_event_loop()
        self.client = AsyncClient(host, port)
        self.loop.run_until_complete(self.client.login("test", "xxx", cert))
        self.directory = directory

    def _path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def _each(
        self, work: Callable[[T], Awaitable[Any]], items: Iterable[T], limit: int = 0
    ) -> list:
        async def run() -> list:
            if not limit:
                return await asyncio.gather(*(work(item) for item in items))
            gate = asyncio.Semaphore(limit)

            async def gated(item: T) -> Any:
                async with gate:
                    return await work(item)

            return await asyncio.gather(*(gated(item) for item in items))

        return self.loop.run_until_complete(run())

    def create_all(self, names: list[str], data: bytes) -> None:
        write = self.client.write_file
        self._each(lambda name: write(self._path(name), data), names, AIO_CONCURRENCY)

    def stat_all(self, names: list[str]) -> list[int]:
        return [stat.size for stat in self._each(self.client.stat, map(self._path, names))]

    def list_all(self, times: int) -> int:
        listings = self._each(self.client.ls, [self.directory] * times)
        return sum(len(listing) for listing in listings)

    def rename_all(self, pairs: list[tuple[str, str]]) -> None:
        move, path = self.client.move, self._path
        self._each(lambda pair: move(path(pair[0]), path(pair[1])), pairs)

    def read_all(self, names: list[str]) -> list[bytes]:
        return self._each(self.client.read_file, map(self._path, names), AIO_CONCURRENCY)

    def delete_all(self, names: list[str]) -> None:
        self._each(self.client.rm, map(self._path, names))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


def _no_errors(outcomes: list) -> list:
    """A batch's results, or its first error raised: the workload expects none."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@dataclass(frozen=True)
class Target:
    """Where a worker process connects: picklable, so it crosses process boundaries."""

    kind: str  # "local", or one of STYLES
    directory: str
    host: str = ""
    port: int = 0
    cert: str = ""
    #: Server processes whose CPU is measured phase by phase: {role: pid}.
    servers: dict[str, int] = field(default_factory=dict)

    def open(self) -> Workload:
        if self.kind == "sector-batch":
            return SectorBatchFS(self.host, self.port, self.cert, self.directory)
        if self.kind == "sector-aio":
            return SectorAioFS(self.host, self.port, self.cert, self.directory)
        if self.kind == "sector":
            return OneByOne(SectorFS(self.host, self.port, self.cert, self.directory))
        return OneByOne(LocalFS(self.directory))


def _worker(target: Target, index: int, clients: int, files: int, barrier, results) -> None:
    fs = target.open()
    try:
        mine = range(index, files, clients)
        names = [f"f{i:06d}" for i in mine]
        renamed = [f"r{i:06d}" for i in mine]
        data = b"x" * PAYLOAD
        spans: dict[str, tuple[float, float, int]] = {}
        own_cpu: dict[str, float] = {}
        #: the servers' CPU seconds at each phase's start (the first client samples them)
        server_cpu: list[dict[str, float]] = []
        for phase in PHASES:
            barrier.wait(timeout=600)
            if index == 0:
                server_cpu.append(_cpu_seconds(target.servers))
            started, cpu = time.perf_counter(), time.process_time()
            if phase == "create":
                fs.create_all(names, data)
                count = len(names)
            elif phase == "stat":
                if any(size != PAYLOAD for size in fs.stat_all(names)):
                    raise RuntimeError("stat: wrong size")
                count = len(names)
            elif phase == "list":
                count = fs.list_all(LISTINGS)
            elif phase == "rename":
                fs.rename_all(list(zip(names, renamed, strict=True)))
                count = len(names)
            elif phase == "read":
                if any(len(data) != PAYLOAD for data in fs.read_all(renamed)):
                    raise RuntimeError("read: short read")
                count = len(names)
            else:
                fs.delete_all(renamed)
                count = len(names)
            spans[phase] = (started, time.perf_counter(), count)
            own_cpu[phase] = time.process_time() - cpu
        barrier.wait(timeout=600)  # every client done: the last phase's server CPU is in
        if index == 0:
            server_cpu.append(_cpu_seconds(target.servers))
        results.put((index, spans, own_cpu, server_cpu, None))
    except BaseException as exc:  # reported to the parent, which fails the run clearly
        results.put((index, {}, {}, [], f"{type(exc).__name__}: {exc}"))
        barrier.abort()
    finally:
        fs.close()


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each server process has used so far."""
    used = {}
    for role, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:  # gone: the figure is unknown, the run goes on
            used[role] = float("nan")
            continue
        used[role] = times.user + times.system
    return used


def run_phases(target: Target, clients: int, files: int) -> dict[str, float]:
    """Aggregate operations per second for each phase (entries/s for ``list``)."""
    return measure_phases(target, clients, files)[0]


def measure_phases(
    target: Target, clients: int, files: int
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Rates as :func:`run_phases` gives them, and CPU microseconds per operation
    for each phase: ``{phase: {"client": all clients' CPU / ops, role: ...}}``
    for each of ``target.servers``.

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
    errors = [error for *_, error in collected if error]
    if errors:
        raise RuntimeError(f"metadata workload failed on {target.kind}: {errors[0]}")
    rates, cpu = {}, {}
    samples = next(server_cpu for index, _, _, server_cpu, _ in collected if index == 0)
    for number, phase in enumerate(PHASES):
        spans = [spans[phase] for _, spans, _, _, _ in collected]
        elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
        operations = sum(count for _, _, count in spans)
        rates[phase] = operations / max(elapsed, 1e-9)
        per_op = 1e6 / max(operations, 1)
        cpu[phase] = {"client": sum(own[phase] for _, _, own, _, _ in collected) * per_op}
        for role in target.servers:
            cpu[phase][role] = (samples[number + 1][role] - samples[number][role]) * per_op
    return rates, cpu
