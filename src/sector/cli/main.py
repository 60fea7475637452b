"""``sector``: the command line, on top of the client library and the cluster launcher.

This module is only the group and its wiring; the commands live beside it
(:mod:`.files`, :mod:`.transfer`, :mod:`.admin`, :mod:`.local`) and failures
are turned into messages and exit codes in :mod:`.base`.
"""

from __future__ import annotations

import signal

import click

from .. import DISTRIBUTION
from . import admin, conf, files, local, mount, servers, transfer, users
from .base import SectorGroup, State

COMMANDS = [
    files.ls,
    files.stat,
    files.mkdir,
    files.rm,
    files.mv,
    files.cp,
    files.cat,
    files.pipe,
    files.du,
    transfer.upload,
    transfer.download,
    admin.df,
    admin.sysinfo,
    admin.fsck,
    admin.replicate,
    admin.decommission,
    admin.shutdown,
    mount.mount,
    mount.umount,
    users.user,
    conf.conf,
    local.up,
    local.down,
    local.status,
    servers.master,
    servers.slave,
]


@click.group(
    cls=SectorGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nShell completion (bash; zsh_source and fish_source alike):\n"
    '  eval "$(_SECTOR_COMPLETE=bash_source sector)"',
)
@click.option(
    "--master",
    metavar="HOST:PORT",
    help="Master to use [env SECTOR_MASTER; client.conf; the cluster `sector up` runs].",
)
@click.option("--user", help="User to log in as [env SECTOR_USER; client.conf; test].")
@click.option(
    "--cert",
    type=click.Path(dir_okay=False),
    help="Master certificate [env SECTOR_CERT; client.conf; $SECTOR_HOME/conf].",
)
@click.option("--debug", is_flag=True, envvar="SECTOR_DEBUG", help="Show tracebacks.")
@click.version_option(package_name=DISTRIBUTION)
@click.pass_context
def cli(
    ctx: click.Context, master: str | None, user: str | None, cert: str | None, debug: bool
) -> None:
    """Sector: a distributed file system for clusters of commodity machines.

    The password comes from SECTOR_PASSWORD or client.conf ($SECTOR_HOME/conf,
    else ~/.sector/conf), or is asked for on a terminal; never from a flag.

    \b
    Start a local cluster and use it:
      sector up --detach
      sector upload -j 4 results/ /data/
      sector ls -lh /data/results
      sector download /data/results ./copy
      sector down
    """
    state = ctx.ensure_object(State)
    state.master, state.user, state.cert, state.debug = master, user, cert, debug


for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    # `sector ls | head` should stop quietly when head has read enough, as ls does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    cli()


if __name__ == "__main__":
    main()
