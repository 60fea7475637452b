"""Namespace commands: ``ls stat mkdir rm mv cp cat pipe du``.

They take Sector paths, expand ``*`` and ``?`` against Sector (quote them, so
the shell leaves them alone) and behave like the coreutils of the same name,
so ``-r``, ``-f``, ``-p``, ``-l``, ``-h`` mean what a person expects. Commands
given several paths do what they can with each and exit non-zero if any
failed.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable, Iterable

import click
import msgspec

from ..client import Client, Stat
from ..errors import InvalidError, SectorIsADirectoryError, SectorNotFoundError
from ..protocol import checksum
from ..protocol.messages import READ, TRUNC, WRITE
from ..protocol.paths import InvalidPath, has_wildcard, is_within, join, normalize, split
from .base import SECTOR_PATH, State, pass_state
from .output import human_size, local_time, shown, size_text

#: For commands where ``-h`` means human-readable sizes, as in ls and du.
LONG_HELP_ONLY = {"help_option_names": ["--help"]}


def sector_path(text: str) -> str:
    """A normalised Sector path, or the E_INVALID error the server would give."""
    try:
        return normalize(text)
    except InvalidPath as exc:
        raise InvalidError(str(exc), text) from None


def expand(
    state: State, client: Client, patterns: Iterable[str], missing_ok: bool = False
) -> list[str]:
    """Each pattern's matches in Sector, in order; a pattern matching nothing is a failure.

    A name that merely contains ``[`` is taken literally when it exists.
    """
    paths: list[str] = []
    for pattern in patterns:
        if not has_wildcard(pattern):
            paths.append(pattern)
            continue
        with state.attempt(pattern):
            matched = client.glob(pattern)
            if not matched and client.exists(pattern):
                matched = [sector_path(pattern)]
            if not matched and not missing_ok:
                raise SectorNotFoundError("no match", pattern)
            paths.extend(matched)
    return paths


def stat_or_none(client: Client, path: str) -> Stat | None:
    try:
        return client.stat(path)
    except FileNotFoundError:
        return None


def destination(client: Client, dst: str, sources: list[str]) -> tuple[str, bool]:
    """(normalised destination, whether sources go *into* it) with cp/mv rules.

    Sources go into ``dst`` when it is an existing directory, ends in ``/``,
    or there are several of them; a missing directory is created on the way
    (Sector creates parents of whatever it writes).
    """
    target = stat_or_none(client, dst)
    into = dst.endswith("/") or len(sources) > 1 or (target is not None and target.isdir)
    if into and target is not None and not target.isdir:
        raise InvalidError("not a directory", dst)
    return sector_path(dst), into


def _entry_lines(entries: list[tuple[str, Stat]], long: bool, human: bool) -> list[str]:
    if not long:
        return [shown(name) + ("/" if st.isdir else "") for name, st in entries]
    sizes = [size_text(st.size, human) for _, st in entries]
    width = max((len(s) for s in sizes), default=0)
    return [
        f"{'d' if st.isdir else '-'}  {size:>{width}}  {local_time(st.timestamp)}  "
        + shown(name)
        + ("/" if st.isdir else "")
        for (name, st), size in zip(entries, sizes, strict=True)
    ]


def as_json(entries: Iterable[tuple[str, Stat]]) -> str:
    """One JSON array: each entry's full ``path``, then the API's :class:`Stat` fields."""
    return json.dumps(
        [{"path": path, **msgspec.structs.asdict(entry)} for path, entry in entries], indent=2
    )


@click.command(context_settings=LONG_HELP_ONLY)
@click.option("-l", "long", is_flag=True, help="Long format: type, size, modification time.")
@click.option("-R", "recursive", is_flag=True, help="List subdirectories recursively.")
@click.option("-h", "human", is_flag=True, help="Sizes as 1.5K, 23M, 4.0G.")
@click.option(
    "--json", "json_out", is_flag=True, help="One JSON array of entries, with full paths."
)
@click.argument("paths", nargs=-1, type=SECTOR_PATH)
@pass_state
def ls(
    state: State, long: bool, recursive: bool, human: bool, json_out: bool, paths: tuple[str, ...]
) -> None:
    """List directories (default /) and files; wildcards are expanded in Sector.

    With --json: one array of entries (path, name, isdir, timestamp, size,
    version, checksum, slaves), those of -R included.

    \b
    Example:
      sector ls -lh /data
      sector ls '/logs/2024-*.gz'
      sector ls --json -R /data | jq -r '.[] | select(.size > 1e9) | .path'
    """
    if json_out:
        _ls_json(state, paths, recursive)
        return
    client = state.client()
    targets = expand(state, client, paths or ("/",))
    files: list[tuple[str, Stat]] = []
    dirs: list[str] = []
    for path in targets:
        with state.attempt(path):
            st = client.stat(path)
            if st.isdir:
                dirs.append(sector_path(path))
            else:
                files.append((path, st))
    blocks: list[list[str]] = []
    if files:
        blocks.append(_entry_lines(files, long, human))
    headers = recursive or len(targets) > 1
    for top in dirs:
        with state.attempt(top):
            if recursive:
                listing = [(d, sorted(s + f, key=lambda e: e.name)) for d, s, f in client.walk(top)]
            else:
                listing = [(top, client.ls(top))]
            for directory, entries in listing:
                lines = _entry_lines([(e.name, e) for e in entries], long, human)
                blocks.append([f"{shown(directory)}:", *lines] if headers else lines)
    for number, block in enumerate(blocks):
        if number:
            click.echo()
        for line in block:
            click.echo(line)


def _ls_json(state: State, paths: tuple[str, ...], recursive: bool) -> None:
    client = state.client()
    found: list[tuple[str, Stat]] = []
    for path in expand(state, client, paths or ("/",)):
        with state.attempt(path):
            st = client.stat(path)
            if not st.isdir:
                found.append((sector_path(path), st))
            elif recursive:
                for directory, dirs, files in client.walk(sector_path(path)):
                    entries = sorted(dirs + files, key=lambda e: e.name)
                    found.extend((join(directory, e.name), e) for e in entries)
            else:
                found.extend((join(sector_path(path), e.name), e) for e in client.ls(path))
    click.echo(as_json(found))


@click.command()
@click.option("--json", "json_out", is_flag=True, help="One JSON array, an object per path.")
@click.argument("paths", nargs=-1, required=True, type=SECTOR_PATH)
@pass_state
def stat(state: State, json_out: bool, paths: tuple[str, ...]) -> None:
    """Show a file's or directory's metadata and the slaves holding it.

    With --json: one array with an object per path (path, name, isdir,
    timestamp, size, version, checksum, slaves, created), the fields of the
    API's stat.

    \b
    Example:
      sector stat /data/a.bin
      sector stat --json /data/a.bin | jq -r '.[0].slaves[]'
    """
    client = state.client()
    if json_out:
        found: list[tuple[str, Stat]] = []
        for path in expand(state, client, paths):
            with state.attempt(path):
                found.append((sector_path(path), client.stat(path)))
        click.echo(as_json(found))
        return
    for number, path in enumerate(expand(state, client, paths)):
        with state.attempt(path):
            st = client.stat(path)
            if number:
                click.echo()
            rows = [
                ("path", shown(sector_path(path))),
                ("type", "directory" if st.isdir else "file"),
                ("size", f"{st.size}" + (f" ({human_size(st.size)})" if st.size >= 1024 else "")),
                ("modified", local_time(st.timestamp, seconds=True)),
            ]
            if st.created:
                rows.append(("created", local_time(st.created, seconds=True)))
            if not st.isdir:
                rows += [
                    ("version", str(st.version)),
                    ("checksum", f"{checksum.NAME}:{st.checksum}"),
                    ("slaves", ", ".join(st.slaves) or "none alive"),
                ]
            for key, value in rows:
                click.echo(f"{key:>8}: {value}")


@click.command()
@click.option("-p", "parents", is_flag=True, help="Create parents; no error if it exists.")
@click.argument("paths", nargs=-1, required=True, type=SECTOR_PATH)
@pass_state
def mkdir(state: State, parents: bool, paths: tuple[str, ...]) -> None:
    """Create directories.

    \b
    Example:
      sector mkdir -p /data/2024/05
    """
    client = state.client()
    for path in paths:
        with state.attempt(path):
            if parents:
                try:
                    client.mkdir(path)
                except FileExistsError:
                    if not client.stat(path).isdir:
                        raise
                continue
            parent = split(sector_path(path))[0]
            if not client.stat(parent).isdir:
                raise InvalidError("not a directory", parent)
            client.mkdir(path)


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Remove directories and their contents.")
@click.option("-f", "force", is_flag=True, help="Ignore paths that do not exist.")
@click.argument("paths", nargs=-1, required=True, type=SECTOR_PATH)
@pass_state
def rm(state: State, recursive: bool, force: bool, paths: tuple[str, ...]) -> None:
    """Remove files, and empty directories (full ones with -r).

    \b
    Example:
      sector rm /data/old.bin
      sector rm -r '/tmp/run-*'
    """
    client = state.client()
    for path in expand(state, client, paths, missing_ok=force):
        with state.attempt(path):
            try:
                client.rm(path, recursive=recursive)
            except FileNotFoundError:
                if not force:
                    raise


#: The one overwrite rule of mv, cp, upload and download (see the README, "Overwriting").
NO_CLOBBER = click.option(
    "-n",
    "--no-clobber",
    is_flag=True,
    help="Leave an existing destination file alone (default: replace it, as cp and mv do).",
)


def put_unless_there(no_clobber: bool, action: Callable[..., None]) -> None:
    """Run ``action(overwrite=...)``; with ``no_clobber`` an existing destination is skipped."""
    try:
        action(overwrite=not no_clobber)
    except FileExistsError:
        if not no_clobber:
            raise


@click.command()
@NO_CLOBBER
@click.argument("sources", nargs=-1, required=True, type=SECTOR_PATH)
@click.argument("dst", type=SECTOR_PATH)
@pass_state
def mv(state: State, no_clobber: bool, sources: tuple[str, ...], dst: str) -> None:
    """Move or rename files and directories (one metadata change, no data copied).

    An existing destination file is replaced, atomically (other clients see
    the old file or the new one, never neither), unless -n; a directory
    replaces only an empty directory, as mv does.

    \b
    Example:
      sector mv /data/a.bin /archive/
      sector mv /data/tmp /data/final
    """
    client = state.client()
    matched = expand(state, client, sources)
    if not matched:
        return
    target, into = destination(client, dst, matched)
    for src in matched:
        dst_path = join(target, split(sector_path(src))[1]) if into else target
        with state.attempt(src):
            put_unless_there(no_clobber, functools.partial(client.move, src, dst_path))


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Copy directories recursively.")
@NO_CLOBBER
@click.argument("sources", nargs=-1, required=True, type=SECTOR_PATH)
@click.argument("dst", type=SECTOR_PATH)
@pass_state
def cp(state: State, recursive: bool, no_clobber: bool, sources: tuple[str, ...], dst: str) -> None:
    """Copy files (and with -r directories) inside Sector; slaves copy the bytes.

    An existing destination file is replaced unless -n (the copy is made
    beside it and renamed over it, so it is never missing while bytes move).

    \b
    Example:
      sector cp /data/a.bin /backup/a.bin
      sector cp -r /data /backup/
    """
    client = state.client()
    matched = expand(state, client, sources)
    if not matched:
        return
    target, into = destination(client, dst, matched)
    for src in matched:
        with state.attempt(src):
            src = sector_path(src)
            dst_path = join(target, split(src)[1]) if into else target
            if not client.stat(src).isdir:
                _copy(client, src, dst_path, no_clobber)
                continue
            if not recursive:
                raise SectorIsADirectoryError("is a directory (-r copies it)", src)
            if is_within(dst_path, src):
                raise InvalidError("cannot copy a directory into itself", dst_path)
            _copy_tree(state, client, src, dst_path, no_clobber)


def _copy(client: Client, src: str, dst: str, no_clobber: bool) -> None:
    put_unless_there(no_clobber, functools.partial(client.copy, src, dst))


def _copy_tree(state: State, client: Client, src: str, dst: str, no_clobber: bool) -> None:
    for directory, _, files in client.walk(src):
        here = dst + directory[len(src) :]
        with state.attempt(here):
            try:
                client.mkdir(here)
            except FileExistsError:
                pass
        for entry in files:
            with state.attempt(join(directory, entry.name)):
                _copy(client, join(directory, entry.name), join(here, entry.name), no_clobber)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=SECTOR_PATH)
@pass_state
def cat(state: State, paths: tuple[str, ...]) -> None:
    """Write files to stdout, each verified against its stored checksum.

    \b
    Example:
      sector cat /logs/app.log | grep ERROR
    """
    # `sector cat x | head` should end quietly, as cat does, not report a broken pipe.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    client = state.client()
    for path in expand(state, client, paths):
        with state.attempt(path), client.open(path, READ) as handle:
            sys.stdout.flush()
            handle.read_to_file(sys.stdout.buffer, verify=True)


@click.command()
@click.argument("path", type=SECTOR_PATH)
@pass_state
def pipe(state: State, path: str) -> None:
    """Stream stdin into a Sector file, which appears only once stdin ends.

    Memory use stays flat however long the stream is; if the stream breaks
    off, the previous content of PATH stays as it was.

    \b
    Example:
      tar c mydir | sector pipe /backup/mydir.tar
    """
    client = state.client()
    with client.open(path, WRITE | TRUNC) as handle:
        handle.write_from_file(sys.stdin.buffer)


@click.command(context_settings=LONG_HELP_ONLY)
@click.option("-s", "summary", is_flag=True, help="Only a total for each argument.")
@click.option("-h", "human", is_flag=True, help="Sizes as 1.5K, 23M, 4.0G.")
@click.argument("paths", nargs=-1, type=SECTOR_PATH)
@pass_state
def du(state: State, summary: bool, human: bool, paths: tuple[str, ...]) -> None:
    """Bytes stored under each directory (default /), deepest first, as du does.

    \b
    Example:
      sector du -sh /data
    """
    client = state.client()
    for path in expand(state, client, paths or ("/",)):
        with state.attempt(path):
            st = client.stat(path)
            if not st.isdir:
                click.echo(f"{size_text(st.size, human)}\t{shown(sector_path(path))}")
                continue
            for total, directory in _du_totals(client, sector_path(path), summary):
                click.echo(f"{size_text(total, human)}\t{shown(directory)}")


def _du_totals(client: Client, top: str, summary: bool) -> list[tuple[int, str]]:
    """(bytes, directory) for every directory under ``top``, children before parents."""
    own: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    for directory, subdirs, files in client.walk(top):
        own[directory] = sum(f.size for f in files)
        children[directory] = [join(directory, d.name) for d in subdirs]
    totals: dict[str, int] = {}
    order: list[str] = []
    stack = [(top, False)]
    while stack:
        directory, expanded = stack.pop()
        if expanded:
            totals[directory] = own.get(directory, 0) + sum(
                totals[c] for c in children.get(directory, [])
            )
            order.append(directory)
            continue
        stack.append((directory, True))
        stack.extend((c, False) for c in reversed(children.get(directory, [])))
    if summary:
        return [(totals[top], top)]
    return [(totals[d], d) for d in order]
