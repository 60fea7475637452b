"""``sector mount`` and ``sector umount``: the cluster as a directory every program can use.

Mounting logs in the same way every other command does (flags, environment,
client.conf, the local cluster), so a wrong password or an unreachable master
is reported here, on the terminal, and never only in a background log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import click

from ..config import sector_home
from .base import State, pass_state

#: How long a background mount may take to appear before we give up on it.
MOUNT_DEADLINE = 30.0


@click.command()
@click.argument("mountpoint", type=click.Path(file_okay=False, exists=True))
@click.option("-f", "--foreground", is_flag=True, help="Stay in the foreground; Ctrl-C unmounts.")
@click.option(
    "-o",
    "options",
    multiple=True,
    metavar="OPT[,OPT...]",
    help="FUSE mount options: ro, allow_other, attr_timeout=S, entry_timeout=S, ...",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Log file of a background mount [default: $SECTOR_HOME/logs/mount-<dir>.log].",
)
@pass_state
def mount(
    state: State, mountpoint: str, foreground: bool, options: tuple[str, ...], log_path: Path | None
) -> None:
    """Mount the cluster on MOUNTPOINT, an empty directory.

    Files written through the mount become visible to other clients when they
    are closed (or fsynced), whole: never half-written. Unmount with
    `sector umount MOUNTPOINT` (or `fusermount3 -u MOUNTPOINT`).

    \b
    Example:
      mkdir -p ~/sector && sector mount ~/sector
      cp -r results ~/sector/data/ && ls -l ~/sector/data/results
      sector umount ~/sector
    """
    from ..mount.run import MountUnavailable, check_available, mount_options, parse_options

    try:
        check_available()
    except MountUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    mountpoint = os.path.abspath(mountpoint)
    if os.path.ismount(mountpoint):
        raise OSError(0, "already a mount point", mountpoint)
    target = state.target()
    extra = parse_options(options)
    fsname = f"sector://{target.host}:{target.port}"
    if foreground:
        _serve_foreground(state, mountpoint, mount_options(fsname, extra))
        return
    target.connect().close()  # a refused login is reported here, not in a log
    log_file = log_path or _default_log(mountpoint)
    child = _start_background(state, target.password or "", mountpoint, options, log_file)
    _wait_mounted(child, mountpoint, log_file)
    click.echo(f"Mounted {fsname} on {mountpoint} (process {child.pid}).")
    click.echo(f"  log       : {log_file}")
    click.echo(f"  unmount   : sector umount {mountpoint}")


def _serve_foreground(state: State, mountpoint: str, options: dict[str, str | bool]) -> None:
    from ..mount.run import serve

    logging.basicConfig(
        level=logging.DEBUG if state.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    client = state.target().connect()  # the mount's own session, logged out at the end
    click.echo(f"Mounted {options['fsname']} on {mountpoint}; Ctrl-C unmounts.", err=True)
    serve(client, mountpoint, options)
    click.echo(f"Unmounted {mountpoint}.", err=True)


def _default_log(mountpoint: str) -> Path:
    from ..mount.run import default_log_path

    return default_log_path(sector_home(), mountpoint)


def _start_background(
    state: State, password: str, mountpoint: str, options: tuple[str, ...], log_file: Path
) -> subprocess.Popen:
    """``sector mount --foreground`` in a new session, its output in ``log_file``."""
    command = [sys.executable, "-m", "sector.cli.main"]
    for flag, value in (("--master", state.master), ("--user", state.user), ("--cert", state.cert)):
        if value:
            command += [flag, value]
    if state.debug:
        command.append("--debug")
    command += ["mount", "--foreground", mountpoint]
    for group in options:
        command += ["-o", group]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SECTOR_PASSWORD": password}
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # Ctrl-C in this terminal is not meant for it
        )


def _wait_mounted(child: subprocess.Popen, mountpoint: str, log_file: Path) -> None:
    deadline = time.monotonic() + MOUNT_DEADLINE
    while not os.path.ismount(mountpoint):
        if child.poll() is not None:
            last = log_file.read_text(errors="replace").strip().splitlines()[-1:]
            raise OSError(
                0, f"mount failed: {last[0] if last else 'see ' + str(log_file)}", mountpoint
            )
        if time.monotonic() > deadline:
            child.terminate()
            raise OSError(0, f"mount did not appear within {MOUNT_DEADLINE:.0f}s", mountpoint)
        time.sleep(0.05)  # polling the kernel's mount table; the deadline bounds it


@click.command()
@click.argument("mountpoint", type=click.Path(file_okay=False, exists=True))
@click.option("-z", "--lazy", is_flag=True, help="Detach now even if programs still use it.")
def umount(mountpoint: str, lazy: bool) -> None:
    """Unmount a Sector mount (as `fusermount3 -u` does); staged writes are published first.

    \b
    Example:
      sector umount ~/sector
    """
    from ..mount.run import unmount

    mountpoint = os.path.abspath(mountpoint)
    if not os.path.ismount(mountpoint):
        raise OSError(0, "not mounted", mountpoint)
    unmount(mountpoint, lazy)


__all__ = ["mount", "umount"]
