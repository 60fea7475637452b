"""``upload`` and ``download``: files and whole trees, in parallel, with a progress bar.

The client library moves and verifies each file; this module only decides
which file goes where (with ``cp``'s rules), runs several at once with
``-j``, and draws one bar for the whole transfer. The bar goes to stderr and
only when stderr is a terminal, so pipes and logs stay clean.
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..client import Client
from ..protocol.paths import has_wildcard, join, split
from .base import SECTOR_PATH, State, pass_state
from .files import NO_CLOBBER, destination, expand, sector_path
from .output import SizeType, shown


@dataclass
class Job:
    """One file to move: from ``source`` to ``target`` (local or Sector paths)."""

    source: str
    target: str
    size: int


class Throttle:
    """Keeps the total rate of all streams under ``rate`` bytes per second."""

    def __init__(self, rate: int):
        self.rate = rate
        self.start = time.monotonic()
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self._lock:
            self.count += count
            due = self.start + self.count / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class TransferDisplay:
    """One progress bar (bytes, rate, ETA) for a whole transfer, on a terminal only."""

    def __init__(self, state: State, verb: str, jobs: list[Job], verbose: bool):
        self.state, self.verb, self.jobs, self.verbose = state, verb, jobs, verbose
        self.done = 0
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None
        if sys.stderr.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> TransferDisplay:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                self._description(), total=sum(j.size for j in self.jobs)
            )
            console = self._progress.console
            self.state.echo_err = lambda line: console.print(
                line, markup=False, highlight=False, soft_wrap=True
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self.state.echo_err = None

    def _description(self) -> str:
        if len(self.jobs) == 1:
            return f"{self.verb} {os.path.basename(self.jobs[0].source)}"
        return f"{self.verb} {self.done}/{len(self.jobs)} files"

    def advance(self, count: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=count)  # type: ignore[arg-type]

    def finished(self, job: Job, moved: int) -> None:
        """Count a file as done; bytes it did not move (a resumed download) still fill the bar."""
        with self._lock:
            self.done += 1
            if self._progress is not None:
                self._progress.update(
                    self._task,  # type: ignore[arg-type]
                    advance=job.size - moved,
                    description=self._description(),
                )
            if self.verbose:
                kept = f" ({job.size - moved} bytes were already here)" if moved < job.size else ""
                line = shown(f"{job.source} -> {job.target}: {job.size} bytes{kept}")
                if self._progress is not None:
                    self._progress.console.print(line, markup=False, highlight=False)
                else:
                    click.echo(line)


def run(
    state: State,
    display: TransferDisplay,
    jobs: list[Job],
    parallel: int,
    move: Callable[[Job, Callable[[int], None]], None],
    limit: Throttle | None,
) -> None:
    """Move every job, ``parallel`` at a time; each failure is reported, the rest go on."""

    def one(job: Job) -> None:
        moved = 0

        def progress(count: int) -> None:
            nonlocal moved
            moved += count
            display.advance(count)
            if limit is not None:
                limit(count)

        with state.attempt(job.source):
            move(job, progress)
            display.finished(job, moved)

    with display:
        if parallel <= 1 or len(jobs) <= 1:
            for job in jobs:
                one(job)
            return
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="transfer")
        try:
            list(pool.map(one, jobs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def skip_existing(jobs: list[Job], exists: Callable[[str], bool], verbose: bool) -> list[Job]:
    """The jobs whose target is not there yet (``-n``); with ``verbose``, say what is skipped."""
    kept = []
    for job in jobs:
        if exists(job.target):
            if verbose:
                click.echo(shown(f"{job.source} -> {job.target}: skipped, {job.target} exists"))
        else:
            kept.append(job)
    return kept


def _transfer_options(function):
    for option in reversed(
        [
            click.option(
                "-j",
                "--jobs",
                "parallel",
                default=1,
                show_default=True,
                type=click.IntRange(1, 64),
                help="Files transferred at the same time.",
            ),
            click.option(
                "--limit-rate",
                type=SizeType(),
                default=None,
                help="Cap the total rate, e.g. 500K or 20M (bytes per second).",
            ),
            click.option("-v", "--verbose", is_flag=True, help="Print a line per file moved."),
        ]
    ):
        function = option(function)
    return function


def _local_sources(state: State, patterns: tuple[str, ...]) -> list[str]:
    """Local paths, with wildcards the shell left alone (quoted, or Windows) expanded."""
    found: list[str] = []
    for pattern in patterns:
        if has_wildcard(pattern) and not os.path.lexists(pattern):
            matched = sorted(glob.glob(pattern))
            if not matched:
                state.fail(FileNotFoundError(2, "no match", pattern))
            found.extend(matched)
        else:
            found.append(pattern)
    return found


def plan_upload(
    state: State, client: Client, sources: list[str], dst: str
) -> tuple[list[Job], list[str]]:
    """The files to send and the empty directories to create, with cp -r's naming."""
    target, into = destination(client, dst, sources)
    jobs: list[Job] = []
    empty_dirs: list[str] = []
    for src in sources:
        with state.attempt(src):
            info = os.stat(src)
            remote = join(target, os.path.basename(os.path.normpath(src))) if into else target
            if not os.path.isdir(src):
                jobs.append(Job(src, remote, info.st_size))
                continue
            for root, dirnames, filenames in os.walk(src, onerror=state.fail):
                relative = os.path.relpath(root, src)
                here = remote if relative == "." else join(remote, relative.replace(os.sep, "/"))
                if not dirnames and not filenames:
                    empty_dirs.append(here)
                for name in sorted(filenames):
                    path = os.path.join(root, name)
                    with state.attempt(path):
                        jobs.append(Job(path, join(here, name), os.stat(path).st_size))
    return jobs, empty_dirs


@click.command()
@_transfer_options
@NO_CLOBBER
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.argument("dst", type=SECTOR_PATH)
@pass_state
def upload(
    state: State,
    parallel: int,
    limit_rate: int | None,
    verbose: bool,
    no_clobber: bool,
    sources: tuple[str, ...],
    dst: str,
) -> None:
    """Copy local files and directories (recursively) into Sector.

    Each file is checked against the checksum the slave computed over what
    it received. Several sources, or a DST that is a directory or ends in
    /, put each source inside DST. An existing file is replaced (readers
    see the old or the new version, never a mix), unless -n.

    \b
    Example:
      sector upload -j 4 results/ /data/
      sector upload 'logs/*.gz' /logs/
    """
    client = state.client()
    local = _local_sources(state, sources)
    if not local:
        return
    jobs, empty_dirs = plan_upload(state, client, local, dst)
    if no_clobber:
        jobs = skip_existing(jobs, client.exists, verbose)
    for directory in empty_dirs:
        with state.attempt(directory):
            try:
                client.mkdir(directory)
            except FileExistsError:
                pass

    def move(job: Job, progress: Callable[[int], None]) -> None:
        client.upload(job.source, job.target, progress=progress, verify=True)

    throttle = Throttle(limit_rate) if limit_rate else None
    run(state, TransferDisplay(state, "upload", jobs, verbose), jobs, parallel, move, throttle)


def plan_download(
    state: State, client: Client, sources: list[str], dst: str
) -> tuple[list[Job], list[str]]:
    """The files to fetch and the local directories they need, with cp -r's naming."""
    into = len(sources) > 1 or dst.endswith(os.sep) or os.path.isdir(dst)
    jobs: list[Job] = []
    dirs: list[str] = [dst] if into else []
    for src in sources:
        with state.attempt(src):
            entry = client.stat(src)
            src = sector_path(src)
            local = os.path.join(dst, split(src)[1]) if into else dst
            if not entry.isdir:
                jobs.append(Job(src, local, entry.size))
                continue
            for directory, _, files in client.walk(src):
                relative = directory[len(src) :].strip("/")
                here = os.path.join(local, *relative.split("/")) if relative else local
                dirs.append(here)
                jobs.extend(
                    Job(join(directory, f.name), os.path.join(here, f.name), f.size) for f in files
                )
    return jobs, dirs


@click.command()
@_transfer_options
@NO_CLOBBER
@click.option("--resume", is_flag=True, help="Continue partial local files instead of restarting.")
@click.argument("sources", nargs=-1, required=True, type=SECTOR_PATH)
@click.argument("dst", type=click.Path())
@pass_state
def download(
    state: State,
    parallel: int,
    limit_rate: int | None,
    verbose: bool,
    no_clobber: bool,
    resume: bool,
    sources: tuple[str, ...],
    dst: str,
) -> None:
    """Copy Sector files and directories (recursively) to local disk.

    Each file is verified against its stored checksum and appears under its
    name only once complete, replacing any file there unless -n. With
    --resume, files a killed download left half done are continued, and
    complete ones are checked and kept.

    \b
    Example:
      sector download -j 4 /data/results ./
      sector download --resume /data/big.iso .
    """
    client = state.client()
    remote = expand(state, client, sources)
    if not remote:
        return
    jobs, dirs = plan_download(state, client, remote, dst)
    if no_clobber:
        jobs = skip_existing(jobs, os.path.lexists, verbose)
    for directory in dirs:
        with state.attempt(directory):
            os.makedirs(directory, exist_ok=True)

    def move(job: Job, progress: Callable[[int], None]) -> None:
        client.download(job.source, job.target, resume=resume, progress=progress)

    throttle = Throttle(limit_rate) if limit_rate else None
    display = TransferDisplay(state, "download", jobs, verbose)
    run(state, display, jobs, parallel, move, throttle)
