"""What every benchmark shares: figures with their baselines, timing, CPU meters, the machine.

A :class:`Figure` is never a bare number: it carries the baseline measured in
the same run, so the ratio printed beside it is honest about this machine and
this moment (two shared cores are noisy; a baseline taken an hour earlier
would hide that).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

MB = 1_000_000
MiB = 1024 * 1024


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is (stdout keeps the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One measured value beside its same-run baseline.

    ``ratio`` is always value / baseline. ``higher_is_better`` says how to read
    it (rates: higher; latencies, memory, CPU: lower). ``target`` is the goal
    from the issue in words, ``target_ok`` whether this run met it (None when
    the figure has no target).
    """

    group: str
    metric: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    higher_is_better: bool = True
    target: str = ""
    target_ok: bool | None = None
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


@dataclass
class Results:
    """Everything a run produces: figures, context notes, skipped parts."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note(self, text: str) -> None:
        log(text)
        self.notes.append(text)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the value below which ``fraction`` of samples fall."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def drop_caches() -> bool:
    """sync, then drop the page cache when we may (root); True if it was dropped."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("3\n")
    except OSError:
        return False
    return True


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def make_file(path: Path, size: int) -> None:
    """``size`` random bytes (incompressible, so no layer can cheat), fsynced."""
    block = os.urandom(4 * MiB)
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            piece = block[: min(remaining, len(block))]
            out.write(piece)
            remaining -= len(piece)
            if remaining:
                block = block[1:] + block[:1]
        out.flush()
        os.fsync(out.fileno())


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CpuMeter:
    """CPU seconds (user + system) spent by this process and by other processes.

    The client runs inside the benchmark process, so its CPU is this process's
    rusage; servers are measured through psutil on their PIDs. Call
    :meth:`start` and :meth:`stop` around the timed section only.
    """

    def __init__(self, pids: dict[str, int] | None = None):
        self.pids = dict(pids or {})
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        sample = {"client": own.ru_utime + own.ru_stime}
        for name, pid in self.pids.items():
            try:
                times = psutil.Process(pid).cpu_times()
                sample[name] = times.user + times.system
            except psutil.Error:
                sample[name] = float("nan")
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.used = {name: end[name] - self._start.get(name, 0.0) for name in end}
        return self.used


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def machine() -> dict[str, Any]:
    """What a reader needs to judge the figures: CPU, memory, disk, load, versions."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    disk = ""
    try:
        disk = (
            subprocess.run(
                ["df", "-h", "--output=source,fstype,size,avail", "/var/tmp"],
                capture_output=True,
                text=True,
                check=False,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        disk = " ".join(disk.split())
    except (OSError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "disk": disk,
        "loadavg_start": os.getloadavg(),
        "root": os.geteuid() == 0,
    }
