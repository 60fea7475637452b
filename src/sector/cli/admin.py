"""Cluster commands: ``df``, ``sysinfo``, ``fsck``, ``replicate``, ``decommission``, ``shutdown``.

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
    says how many distinct file systems there are. UNDER counts the files
    with fewer live replicas than they want, LOST those no live slave holds.
    The last line is what you own (the files whose current version you wrote)
    against your quota.

    \b
    Example:
      sector df
    """
    client = state.client()
    info = client.sysinfo()
    mine = client.quota()
    capacity = info["capacity"]  # counted by the master (Registry.capacity)
    total, free = capacity["total"], capacity["free"]
    health = info["master"]["health"]
    figures = {
        "slaves": capacity["slaves"],
        "disks": capacity["disks"],
        "size": total,
        "used": total - free,
        "available": free,
        "stored": capacity["stored"],
        "files": info["master"]["files"],
        "under_replicated": health["under_replicated"],
        "lost": health["lost"],
        "user": mine,
    }
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    use = f"{100 * figures['used'] / total:.0f}%" if total else "-"
    print_table(
        ["Slaves", "Disks", "Size", "Used", "Avail", "Use%", "Stored", "Files", "Under", "Lost"],
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
                str(figures["under_replicated"]),
                str(figures["lost"]),
            ]
        ],
        right=range(10),
    )
    click.echo(_owned(mine))
    if health["safe_mode"]:
        state.err(f"sector: safe mode: {health['safe_mode']}")


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
    click.echo(replication_summary(master["health"]))
    if master["health"]["safe_mode"]:
        click.echo(
            f"SAFE MODE: {master['health']['safe_mode']}; nothing is deleted until an "
            "administrator runs `sector fsck --adopt` or `sector fsck --leave-safe-mode`"
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
        ["ID", "ADDRESS", "LOCATION", "STATUS", "DISK", "FREE", "STORED", "FILES"],
        [
            [
                s["id"] or "-",
                s["address"] or "-",
                s.get("location") or "-",
                s["status"],
                labels[_fs(s)],
                human_size(s["free"]),
                human_size(s["stored"]),
                str(s["files"]),
            ]
            for s in sorted(slaves, key=lambda s: s["address"])
        ],
        right=(5, 6, 7),
    )


def replication_summary(health: dict) -> str:
    """One line on how safe the files are, from sysinfo's ``health``."""
    if not health["scanned"]:
        return "replication: checking every file after the master's start..."
    parts = []
    if health["under_replicated"]:
        parts.append(f"{plural(health['under_replicated'], 'file')} under-replicated")
    if health["lost"]:
        parts.append(f"{plural(health['lost'], 'file')} lost (no live slave holds them)")
    if health["copying"] or health["queued"]:
        parts.append(f"{health['copying']} copying, {health['queued']} queued")
    if health["draining"]:
        parts.append(f"{plural(health['draining'], 'slave')} draining")
    return "replication: " + ("; ".join(parts) if parts else "every file at its target")


def _fs(slave: dict) -> str:
    return slave.get("fs") or slave["id"]


@click.command()
@click.argument("path", default="/", type=SECTOR_PATH)
@click.option(
    "--repair",
    is_flag=True,
    help="Copy damaged, missing and under-replicated files again now, before answering, "
    "instead of in the background (administrators only).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Leave safe mode, adding what the slaves hold and the namespace does not know "
    "to it (administrators only).",
)
@click.option(
    "--leave-safe-mode",
    "discard",
    is_flag=True,
    help="Leave safe mode, giving up (deleting) what the namespace does not know "
    "(administrators only).",
)
@pass_state
def fsck(state: State, path: str, repair: bool, adopt: bool, discard: bool) -> None:
    """Have the slaves re-read every file under PATH (default /) and check its checksum.

    Prints each missing or damaged replica, and each file with fewer live
    replicas than it wants (UNDER), and exits with status 1 if there is any.
    A damaged replica is set aside on its slave (quarantine/) and copied again
    from a good one in the background; --repair makes those copies now and
    exits 0 when every problem was repaired.

    A master that finds its namespace younger than its slaves' objects (a lost
    or old metadata.db, a mistyped --home) goes into safe mode and deletes
    nothing; --adopt rebuilds the namespace from what the slaves hold (each
    file at the path recorded beside it, else in /lost+found), and
    --leave-safe-mode accepts the loss instead.

    \b
    Example:
      sector fsck /data
      SECTOR_USER=root sector fsck --repair /data
      SECTOR_USER=root sector fsck --adopt
    """
    if adopt and discard:
        raise click.UsageError("give --adopt or --leave-safe-mode, not both")
    if adopt or discard:
        result = state.client().adopt(discard=discard)
        if discard:
            click.echo("left safe mode; objects the namespace does not know will be deleted")
        else:
            click.echo(
                f"adopted {plural(result['files'], 'file')} into cluster {result['cluster']}"
                + (f" ({result['lost_found']} in /lost+found)" if result["lost_found"] else "")
                + "; left safe mode"
            )
        return
    report = state.client().fsck(path, repair=repair)
    problems = report["problems"]
    for problem in problems:
        slave = problem["slave"]
        if problem.get("detail"):
            where = problem["detail"]
        elif slave is None:
            where = "no live slave holds it"
        else:
            where = f"on slave {slave or '(hidden)'}"
        kind = "UNDER" if problem["problem"] == "under-replicated" else problem["problem"].upper()
        done = "  repaired" if problem.get("repaired") else ""
        click.echo(f"{kind:<11} {shown(problem['path'])}  ({where}){done}")
    left = [p for p in problems if not p.get("repaired")]
    summary = plural(len(problems), "problem") if problems else "all good"
    if problems and repair:
        summary += ", all repaired" if not left else f", {len(left)} not repaired"
    click.echo(
        f"checked {plural(report['files'], 'file')} ({plural(report['replicas'], 'replica')}) "
        f"under {path}: {summary}"
    )
    if repair:
        problems = left
    if problems:
        kinds = sorted({p["problem"] for p in problems})
        state.err(f"sector: {path}: {plural(len(problems), 'replica')} {'/'.join(kinds)}")
        click.get_current_context().exit(EXIT_FAILURE)


@click.command()
@click.argument("path", type=SECTOR_PATH)
@click.argument("number", type=click.IntRange(0))
@click.option(
    "--hireliable/--no-hireliable",
    default=None,
    help="Writes under PATH return only once every replica holds them (or no longer).",
)
@pass_state
def replicate(state: State, path: str, number: int, hireliable: bool | None) -> None:
    """Keep NUMBER replicas of PATH and everything under it (0: the rules decide again).

    The setting stays with PATH through renames and wins over replica.conf for
    it. Files are copied or trimmed in the background; sysinfo shows the
    progress. More replicas than live slaves is allowed: files keep as many as
    there are and count as under-replicated.

    \b
    Example:
      sector replicate /precious 3 --hireliable
      sector replicate /scratch 1
    """
    files = state.client().set_replication(path, number, hireliable=hireliable)
    wanted = plural(number, "replica") if number else "the replica count of the rules"
    click.echo(f"{path}: {wanted} for {plural(files, 'file')}")


@click.command()
@click.argument("slave")
@click.option("--cancel", is_flag=True, help="Stop draining it; its replicas count again.")
@pass_state
def decommission(state: State, slave: str, cancel: bool) -> None:
    """Drain SLAVE (id or host:port): copy everything it holds to other slaves.

    It keeps serving reads meanwhile and its replicas stop counting only once
    every file has its replicas elsewhere: sysinfo shows it draining, then
    drained, when it can be stopped with no loss of safety. Administrators only.

    \b
    Example:
      SECTOR_USER=root sector decommission 10.0.0.7:7001
    """
    result = state.client().decommission(slave, cancel=cancel)
    if cancel:
        click.echo(f"slave {result['slave']} is no longer draining")
    else:
        click.echo(
            f"draining slave {result['slave']}: {plural(result['files'], 'file')} to copy "
            "elsewhere (sector sysinfo shows when it is drained)"
        )


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
