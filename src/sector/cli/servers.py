"""``sector master`` and ``sector slave``: run one server in the foreground.

``python -m sector.master`` and ``python -m sector.slave`` (what ``sector up``
starts) are these same commands. The server modules are imported only when a
command runs, so ``--help`` is instant and neither server pulls in the other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

_CONF = click.option(
    "--conf",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Sector configuration directory (e.g. /etc/sector).",
)
_LOG_STDERR = click.option(
    "--log-stderr/--no-log-stderr",
    default=True,
    show_default=True,
    help="Also write each log line to stderr (the log file is always written).",
)


@click.command()
@_CONF
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Metadata directory [default: DATA_DIRECTORY of master.conf].",
)
@click.option("--port", type=click.IntRange(0, 65535), help="Override SECTOR_PORT (0: any free).")
@_LOG_STDERR
def master(conf: Path, home: Path | None, port: int | None, log_stderr: bool) -> None:
    """Run a master server until SIGTERM or Ctrl-C.

    It reads master.conf, users/ and the ACL files from --conf, keeps its
    metadata, log (master.log, rotated at LOG_MAX_SIZE) and lock in its
    metadata directory, and refuses to start if another master holds that
    directory. Any configuration error stops it with one line naming the file
    and line, and exit status 1.

    \b
    Example:
      sector master --conf /etc/sector
      sector master --conf /etc/sector --home /var/lib/sector/master --port 6000
    """
    from ..master.run import run

    sys.exit(run(conf, home, port, log_stderr))


@click.command()
@_CONF
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory [default: DATA_DIRECTORY of slave.conf].",
)
@click.option("--master", metavar="HOST:PORT", help="Override MASTER_ADDRESS of slave.conf.")
@click.option("--port", type=click.IntRange(0, 65535), help="Override SLAVE_PORT (0: any free).")
@click.option("--bind", metavar="ADDRESS", help="Override BIND_ADDRESS of slave.conf.")
@click.option(
    "--join",
    "join_token",
    metavar="TOKEN",
    help="A join token (`sector conf join-token`), for a slave that is no member yet "
    "[default: the file join.token beside slave.conf].",
)
@_LOG_STDERR
def slave(
    conf: Path,
    data: Path | None,
    master: str | None,
    port: int | None,
    join_token: str | None,
    bind: str | None,
    log_stderr: bool,
) -> None:
    """Run a slave server, storing files in its data directory, until SIGTERM or Ctrl-C.

    It reads slave.conf and the master's certificate from --conf, registers
    with the master (and again after any restart of either), and writes its
    log (slave.log, rotated at LOG_MAX_SIZE) in the data directory. A data
    directory is served by one slave at a time: a second one refuses to start,
    naming the first one's pid. Run one slave per disk.

    The first time, the slave joins the cluster: it makes its own key and has
    the master certify it, showing a join token the operator made (the file
    join.token that `sector conf init --role slave` writes, or --join). The
    certificate is kept in the data directory (slave.cert, slave.key) and
    shown at every registration; no token is needed after that.

    \b
    Example:
      sector slave --conf /etc/sector --data /disk1/sector
      sector slave --conf /etc/sector --data /disk2/sector --master 10.0.0.1:6000
    """
    from ..slave.run import run

    sys.exit(run(conf, data, master, port, log_stderr, join_token, bind))
