"""Cluster commands: ``df``, ``sysinfo``, ``fsck`` and ``shutdown``.

Everything here is read from the master (``sysinfo``) or done by it on the
slaves (``fsck``, ``shutdown``); tables are for people and ``--json`` is for
scripts.
"""

from __future__ import annotations

import json
import time

import click

from .base import EXIT_FAILURE, SECTOR_PATH, State, pass_state
from .output import duration, human_size, local_time, plural, print_table, shown


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Raw figures (bytes) as JSON.")
@pass_state
def df(state: State, as_json: bool) -> None:
    """Cluster capacity and use: the file systems under the live slaves, each counted once.

    Slaves sharing a disk (those of a local cluster) count it once; DISKS
    says how many distinct file systems there are. The last line is what
    you own (the files whose current version you wrote) against your quota.

    \b
    Example:
      sector df
    """
    client = state.client()
    info = client.sysinfo()
    mine = client.quota()
    capacity = info["capacity"]  # counted by the master (Registry.capacity)
    total, free = capacity["total"], capacity["free"]
    figures = {
        "slaves": capacity["slaves"],
        "disks": capacity["disks"],
        "size": total,
        "used": total - free,
        "available": free,
        "stored": capacity["stored"],
        "files": info["master"]["files"],
        "user": mine,
    }
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    use = f"{100 * figures['used'] / total:.0f}%" if total else "-"
    print_table(
        ["Slaves", "Disks", "Size", "Used", "Avail", "Use%", "Stored", "Files"],
        [
            [
                f"{capacity['slaves']}/{len(info['slaves'])}",
                str(capacity["disks"]),
                human_size(total),
                human_size(figures["used"]),
                human_size(free),
                use,
                human_size(figures["stored"]),
                str(figures["files"]),
            ]
        ],
        right=range(8),
    )
    click.echo(_owned(mine))


def _owned(mine: dict) -> str:
    """``alice owns 1.2G in 40 files of a 500G quota (0%)``, or ``... (no quota)``."""
    owned = f"{mine['user']} owns {human_size(mine['used'])} in {plural(mine['files'], 'file')}"
    if not mine["quota"]:
        return f"{owned} (no quota)"
    share = 100 * mine["used"] / mine["quota"]
    return f"{owned} of a {human_size(mine['quota'])} quota ({share:.0f}%)"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Everything the master reports, as JSON.")
@pass_state
def sysinfo(state: State, as_json: bool) -> None:
    """The master's view of the cluster: totals, then one row per slave.

    \b
    Example:
      sector sysinfo
      sector sysinfo --json | jq '.slaves[] | select(.status != "alive")'
    """
    info = state.client().sysinfo()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    master = info["master"]
    slaves = info["slaves"]
    live = sum(s["status"] == "alive" for s in slaves)
    click.echo(
        f"master {master['address']}, up since {local_time(master['started'], seconds=True)} "
        f"({duration(time.time() - master['started'])})"
    )
    click.echo(
        f"{plural(master['files'], 'file')}, {master['dirs']} directories, "
        f"{human_size(master['size'])} stored; {live} of {plural(len(slaves), 'slave')} alive; "
        f"replicas wanted: {master['replica_num']}"
    )
    capacity = info["capacity"]
    click.echo(
        f"capacity {human_size(capacity['total'])}, {human_size(capacity['free'])} free, "
        f"on {plural(capacity['disks'], 'disk')} (each counted once, however many slaves share it)"
    )
    # Short names for the file systems, so the table shows which slaves share one.
    labels = {fs: f"disk{n}" for n, fs in enumerate(sorted({_fs(s) for s in slaves}), 1)}
    click.echo()
    print_table(
        ["ID", "ADDRESS", "STATUS", "DISK", "FREE", "STORED", "FILES"],
        [
            [
                s["id"] or "-",
                s["address"] or "-",
                s["status"],
                labels[_fs(s)],
                human_size(s["free"]),
                human_size(s["stored"]),
                str(s["files"]),
            ]
            for s in sorted(slaves, key=lambda s: s["address"])
        ],
        right=(4, 5, 6),
    )


def _fs(slave: dict) -> str:
    return slave.get("fs") or slave["id"]


@click.command()
@click.argument("path", default="/", type=SECTOR_PATH)
@pass_state
def fsck(state: State, path: str) -> None:
    """Have the slaves re-read every file under PATH (default /) and check its checksum.

    Prints each missing or damaged replica and exits with status 1 if there
    is any.

    \b
    Example:
      sector fsck /data
    """
    report = state.client().fsck(path)
    problems = report["problems"]
    for problem in problems:
        slave = problem["slave"]
        where = "no live slave holds it" if slave is None else f"on slave {slave or '(hidden)'}"
        click.echo(f"{problem['problem'].upper():<11} {shown(problem['path'])}  ({where})")
    click.echo(
        f"checked {plural(report['files'], 'file')} ({plural(report['replicas'], 'replica')}) "
        f"under {path}: " + (plural(len(problems), "problem") if problems else "all good")
    )
    if problems:
        kinds = sorted({p["problem"] for p in problems})
        state.err(f"sector: {path}: {plural(len(problems), 'replica')} {'/'.join(kinds)}")
        click.get_current_context().exit(EXIT_FAILURE)


@click.command()
@click.option("--all", "everything", is_flag=True, help="Stop every slave, then the master.")
@click.argument("slaves", nargs=-1)
@pass_state
def shutdown(state: State, everything: bool, slaves: tuple[str, ...]) -> None:
    """Stop slaves (by id or host:port, as sysinfo shows them) or the whole cluster.

    Only an administrator may (the user root, or one with ADMIN TRUE in its
    user file). Slaves' data stays on disk and is served again on restart.

    \b
    Example:
      SECTOR_USER=root SECTOR_PASSWORD=$(cat ~/.sector/conf/root.password) \\
        sector shutdown 127.0.0.1:40123
      sector shutdown --all
    """
    if everything == bool(slaves):
        raise click.UsageError("name the slaves to stop, or give --all (and no slaves)")
    client = state.client()
    if everything:
        stopped = client.shutdown()
        click.echo(f"stopped {plural(len(stopped) - 1, 'slave')} and the master")
        return
    for slave in slaves:
        with state.attempt(slave):
            for slave_id in client.shutdown(slave):
                click.echo(f"stopped slave {slave_id}")
