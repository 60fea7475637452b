"""Local cluster commands: ``up``, ``down``, ``status``, and the server entry points.

These drive :mod:`sector.cluster` (processes on this machine) rather than a
Sector session, so they work with no cluster running.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from ..cluster import (
    ADMIN_PASSWORD_FILE,
    ClusterError,
    Layout,
    LocalCluster,
    launcher_pid,
    read_run_file,
    running_servers,
    server_order,
    stop_home,
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


def _refuse_if_running(layout: Layout, slaves: int) -> None:
    """Stop `sector up` when it has nothing to do, or must not do it; say what to do instead."""
    launcher = launcher_pid(layout.home)
    if launcher is not None:
        raise click.ClickException(
            f"`sector up` (pid {launcher}) runs the cluster of {layout.home} in the foreground; "
            "press Ctrl-C there, or run `sector down`"
        )
    running = running_servers(layout)
    wanted = {"master", *(f"slave{n}" for n in range(1, slaves + 1))}
    if wanted <= running.keys():
        state = read_run_file(layout.home) or {}
        where = f" (master {state['master']})" if state.get("master") else ""
        raise click.ClickException(
            f"a cluster is already running from {layout.home}{where}; `sector down` stops it"
        )


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

    Servers of this home still running (say the master was killed) are
    adopted, not duplicated: what is missing is started beside them.

    \b
    Example:
      sector up                 # foreground; Ctrl-C stops everything
      sector up --detach        # background; `sector down` stops it
    """
    layout = Layout((home or sector_home()).expanduser().resolve())
    _refuse_if_running(layout, slaves)
    cluster = LocalCluster(
        home=layout.home, slaves=slaves, port=port, launcher=None if detach else os.getpid()
    )
    try:
        cluster.start()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    assert cluster.master_address is not None
    host, bound_port = cluster.master_address
    click.echo(
        f"Sector cluster up: master {host}:{bound_port}, {slaves} slaves (bound to 127.0.0.1 only)"
    )
    if cluster.adopted:
        click.echo(
            f"  adopted         : {', '.join(cluster.adopted)} (already running); "
            f"started: {', '.join(cluster.started) or 'nothing'}"
        )
    if cluster.dashboard_url:
        click.echo(f"  dashboard       : {cluster.dashboard_url} (log in as a Sector user)")
    else:
        click.echo("  dashboard       : off (set HTTP_PORT in conf/master.conf to have one)")
    if cluster.wrote_conf:
        copies = cluster.replica_num
        click.echo(
            f"  replicas        : {copies} of every file (REPLICA_NUM in conf/master.conf"
            + (", as there are two slaves or more)" if copies > 1 else ")")
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
    """Stop every server of the local cluster, including any a lost launcher left behind.

    \b
    Example:
      sector down
      sector down --home /tmp/cluster2
    """
    stopped = stop_home(home)
    if not stopped:
        click.echo("No local cluster is running.")
        return
    click.echo(f"Stopped {', '.join(stopped)}.")


@click.command()
@_home_option
def status(home: Path | None) -> None:
    """Show the local cluster's servers and whether each runs (exit 1 if any does not).

    \b
    Example:
      sector status
    """
    layout = Layout((home or sector_home()).expanduser().resolve())
    state = read_run_file(layout.home) or {}
    running = running_servers(layout)
    known: dict[str, int] = dict(state.get("pids") or {})
    if not known and not running:
        click.echo("No local cluster is running.")
        sys.exit(1)
    if state.get("master"):
        click.echo(f"master {state['master']}  certificate {state.get('cert', layout.cert)}")
    if state.get("dashboard"):
        click.echo(f"dashboard {state['dashboard']}")
    down_count = 0
    for name in sorted(known.keys() | running.keys(), key=server_order):
        if name in running:
            pid, note = running[name].pid, "running"
            if name not in known:
                note += " (not started by the last `sector up`: `sector up` adopts it)"
        else:
            pid, note = known[name], "NOT RUNNING"
            down_count += 1
        click.echo(f"  {name:<8} pid {pid:<8} {note}")
    sys.exit(1 if down_count else 0)
