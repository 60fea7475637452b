"""``sector conf init`` and ``sector conf check``: one machine's configuration directory.

``init`` writes what one role needs and nothing more (see
:mod:`sector.provision`); ``check`` reads every file of a directory the way
the servers and clients will, so a bad line is found before a restart.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import click

from .. import provision
from ..config import (
    ClientSettings,
    MasterSettings,
    SlaveSettings,
    parse_address,
    read_users,
    sector_home,
)
from .output import DurationType

ROLES = ("master", "slave", "client")


def _default_conf() -> Path:
    return sector_home() / "conf"


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def conf() -> None:
    """Write or check the configuration directory of one machine of a cluster."""


@conf.command()
@click.option("--role", type=click.Choice(ROLES), required=True, help="What this machine runs.")
@click.option(
    "--master",
    "master",
    metavar="HOST:PORT",
    required=True,
    help="The master's address as the other machines reach it.",
)
@click.option(
    "--conf",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write [default: $SECTOR_HOME/conf].",
)
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="slave, client: the master's configuration directory, whose certificate "
    "is copied [default: $SECTOR_HOME/conf].",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="master: metadata directory [default: beside the conf, master/]; "
    "slave: data directory [default: none, give `sector slave --data`].",
)
@click.option("--user", help="client: the USERNAME to log in as (the password is never stored).")
@click.option(
    "--slave-network",
    multiple=True,
    metavar="CIDR",
    help="master: where slaves may register from (repeat) [default: the master's /24].",
)
@click.option(
    "--client-network",
    multiple=True,
    metavar="CIDR",
    help="master: where clients may log in from (repeat) [default: anywhere].",
)
@click.option(
    "--valid",
    type=DurationType(),
    default="24h",
    show_default=True,
    help="slave: how long the join token written in join.token stays usable.",
)
@click.option("--force", is_flag=True, help="Replace files that exist.")
def init(
    role: str,
    master: str,
    target: Path | None,
    source: Path | None,
    data: Path | None,
    user: str | None,
    slave_network: tuple[str, ...],
    client_network: tuple[str, ...],
    valid: float,
    force: bool,
) -> None:
    """Write the configuration one machine needs for its role, and nothing more.

    \b
    master: master.conf, a new key and certificate, the ACL files, and the
            user root with a random password (in root.password, mode 0600);
            no other user - add them with `sector user add`.
    slave:  slave.conf, the master's certificate (taken from --from) and a
            join token (join.token, 0600, valid --valid): each slave started
            from the directory makes its own key and has the master certify
            it; no private key is written here.
    client: client.conf and the master's certificate; never a password.

    Run it on the master's machine for every role, then copy each slave's or
    client's directory to its machine (as ~/.sector/conf, or anywhere given
    to --conf). Files holding secrets are mode 0600.

    \b
    Example:
      sector conf init --role master --master 10.0.0.1:6000 --conf /etc/sector
      sector conf init --role slave --master 10.0.0.1:6000 --from /etc/sector \\
          --conf ./slave-conf --data /disk1/sector
      sector conf init --role client --master 10.0.0.1:6000 --from /etc/sector \\
          --conf ./alice-conf --user alice
    """
    try:
        host, port = parse_address(master)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--master") from None
    address = master.strip()
    conf_dir = (target or _default_conf()).expanduser().absolute()
    from_dir = (source or _default_conf()).expanduser().absolute()
    try:
        if role == "master":
            written = _init_master(conf_dir, host, port, data, slave_network, client_network, force)
        elif role == "slave":
            written = provision.init_slave(conf_dir, address, from_dir, data, force, valid)
        else:
            written = provision.init_client(conf_dir, address, from_dir, user, force)
    except provision.ConfExists as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"  {stat.filemode(os.stat(path).st_mode)}  {path}")
    click.echo(_next_steps(role, conf_dir, address, data))


def _init_master(
    conf_dir: Path,
    host: str,
    port: int,
    data: Path | None,
    slave_network: tuple[str, ...],
    client_network: tuple[str, ...],
    force: bool,
) -> list[Path]:
    slaves = [_network(n) for n in slave_network]
    if not slaves:
        try:
            slaves = [provision.default_slave_network(host)]
        except (OSError, ValueError):
            raise click.UsageError(
                f"{host} does not resolve here: give the slaves' range with --slave-network"
            ) from None
    written, _ = provision.init_master(
        conf_dir,
        host,
        port,
        (data or conf_dir.parent / "master").expanduser().absolute(),
        slaves,
        [_network(n) for n in client_network],
        force,
    )
    return written


def _next_steps(role: str, conf_dir: Path, address: str, data: Path | None) -> str:
    if role == "master":
        return (
            f"Start it: sector master --conf {conf_dir}\n"
            f"Add users: sector user add --conf {conf_dir} NAME --read / --write /home/NAME\n"
            f"Administrator: root, password in {conf_dir / provision.ADMIN_PASSWORD_FILE}\n"
            f"For each other machine: sector conf init --role slave|client --master {address} "
            f"--from {conf_dir} --conf DIR, then copy DIR there"
        )
    if role == "slave":
        where = "" if data else " --data /disk1/sector (one slave per disk)"
        return (
            f"Copy {conf_dir} to the slave machine, then: sector slave --conf DIR{where}\n"
            "Each slave joins the cluster at its first start with join.token (keep it like a "
            "password; it expires); later slaves need a new one: sector conf join-token"
        )
    return (
        f"Copy {conf_dir} to the client machine as ~/.sector/conf (or set SECTOR_HOME); "
        "the password is asked for, or read from SECTOR_PASSWORD"
    )


@conf.command("join-token")
@click.option(
    "--conf",
    "conf_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The master's configuration directory [default: $SECTOR_HOME/conf].",
)
@click.option(
    "--valid",
    type=DurationType(),
    default="1h",
    show_default=True,
    help="How long the token stays usable (90s, 15m, 24h, 7d).",
)
def join_token(conf_dir: Path | None, valid: float) -> None:
    """Print a token that lets new slaves join the cluster until it expires.

    Made with the master's private key, so run it on the master's machine.
    Give it to a slave that is no member yet (`sector slave --join TOKEN`, or
    the file join.token beside its slave.conf): the slave makes its own key
    and the master certifies it. Anyone holding the token can join a slave
    until it expires: treat it as a password.

    \b
    Example:
      sector conf join-token --conf /etc/sector --valid 15m
    """
    click.echo(provision.join_token(conf_dir or _default_conf(), valid))


@conf.command()
@click.option(
    "--conf",
    "conf_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory to check [default: $SECTOR_HOME/conf].",
)
def check(conf_dir: Path | None) -> None:
    """Read every file of a configuration directory as the servers will.

    Checks master.conf with users/, the ACL files, topology.conf and
    replica.conf; slave.conf; client.conf - whichever are present. A bad line
    is reported as file:line, with exit status 1.

    \b
    Example:
      sector conf check --conf /etc/sector
    """
    directory = conf_dir or _default_conf()
    checked = []
    if (directory / "master.conf").exists():
        MasterSettings.load(directory)
        read_users(directory / "users")
        checked += ["master.conf", "users/", "ACLs", "topology.conf", "replica.conf"]
    if (directory / "slave.conf").exists():
        # DATA_DIRECTORY may be left to `sector slave --data`: stand one in for it
        SlaveSettings.load(directory, data_dir=directory / "(--data)")
        checked.append("slave.conf")
    if (directory / "client.conf").exists():
        ClientSettings.load(directory)
        checked.append("client.conf")
    if not checked:
        raise click.ClickException(f"{directory} holds no master.conf, slave.conf or client.conf")
    click.echo(f"{directory}: {', '.join(checked)}: all good")
