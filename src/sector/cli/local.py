"""Local cluster commands: ``up``, ``down``, ``status``, and the server entry points.

These drive :mod:`sector.cluster` (processes on this machine) rather than a
Sector session, so they work with no cluster running.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..cluster import (
    ADMIN_PASSWORD_FILE,
    ClusterError,
    LocalCluster,
    pid_alive,
    read_run_file,
    stop_detached,
)
from ..config import sector_home


def _home_option(function):
    return click.option(
        "--home",
        type=click.Path(path_type=Path),
        envvar="SECTOR_HOME",
        default=None,
        help="State directory (default: $SECTOR_HOME or ~/.sector).",
    )(function)


@click.command()
@_home_option
@click.option("--slaves", default=3, show_default=True, help="Number of slaves to start.")
@click.option(
    "--port",
    type=int,
    default=None,
    help="Master port (0: any free port); default: SECTOR_PORT of conf/master.conf, "
    "6000 for a new one.",
)
@click.option("--detach", is_flag=True, help="Start in the background and return.")
def up(home: Path | None, slaves: int, port: int | None, detach: bool) -> None:
    """Start a master and slaves on this machine (bound to 127.0.0.1 only).

    \b
    Example:
      sector up                 # foreground; Ctrl-C stops everything
      sector up --detach        # background; `sector down` stops it
    """
    home = (home or sector_home()).expanduser().resolve()
    state = read_run_file(home)
    if state and pid_alive(state["pids"].get("master", -1)):
        raise click.ClickException(
            f"a cluster is already running from {home} (master {state['master']}); "
            "`sector down` stops it"
        )
    cluster = LocalCluster(home=home, slaves=slaves, port=port, detach=detach)
    try:
        cluster.start()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    layout = cluster.layout
    assert cluster.master_address is not None
    host, bound_port = cluster.master_address
    click.echo(
        f"Sector cluster up: master {host}:{bound_port}, {slaves} slaves (bound to 127.0.0.1 only)"
    )
    click.echo(f"  state directory : {layout.home}")
    click.echo(f"  configuration   : {layout.conf}")
    click.echo(f"  certificate     : {layout.cert}")
    click.echo(f"  master log      : {layout.master_home / 'master.log'}")
    click.echo(f"  slave logs      : {layout.home / 'slaves'}/<n>/slave.log")
    click.echo(
        "  user test, password xxx:  sector.init('localhost', "
        f"{bound_port}); sector.login('test', 'xxx', '{layout.cert}')"
    )
    click.echo(f"  administrator   : root, password in {layout.conf / ADMIN_PASSWORD_FILE}")
    if detach:
        click.echo("Running in the background; `sector down` stops it.")
        return
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: stopping.append(number))
    click.echo("Press Ctrl-C to stop.")
    dead = cluster.wait(lambda: bool(stopping))
    if dead:
        click.echo(f"{dead} exited unexpectedly; stopping the cluster", err=True)
    click.echo("Stopping the cluster...")
    cluster.stop()
    click.echo("Stopped.")


@click.command()
@_home_option
def down(home: Path | None) -> None:
    """Stop the local cluster started with `sector up --detach`.

    \b
    Example:
      sector down
      sector down --home /tmp/cluster2
    """
    stopped = stop_detached(home)
    if not stopped:
        click.echo("No local cluster is running.")
        return
    click.echo(f"Stopped {', '.join(stopped)}.")


@click.command()
@_home_option
def status(home: Path | None) -> None:
    """Show whether the local cluster is running, and its processes (exit 1 if not).

    \b
    Example:
      sector status
    """
    state = read_run_file(home)
    if not state:
        click.echo("No local cluster is running.")
        sys.exit(1)
    click.echo(f"master {state['master']}  certificate {state['cert']}")
    down_count = 0
    for name, pid in state["pids"].items():
        alive = pid_alive(pid)
        down_count += not alive
        click.echo(f"  {name:<8} pid {pid:<8} {'running' if alive else 'NOT RUNNING'}")
    sys.exit(1 if down_count else 0)


@click.command(context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def master(args: tuple[str, ...]) -> None:
    """Run a master server; its own options follow (`sector master --help`)."""
    from ..master.__main__ import main as master_main

    sys.exit(master_main(list(args)))


@click.command(context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def slave(args: tuple[str, ...]) -> None:
    """Run a slave server; its own options follow (`sector slave --help`)."""
    from ..slave.__main__ import main as slave_main

    sys.exit(slave_main(list(args)))
