"""``sector user add|passwd|rm|list|grant``: the accounts in a master's ``conf/users/``.

These edit files on the master's machine (no session is opened); the master
rereads ``conf/users/`` at the next login after a change. Passwords are
stored only as salted hashes, are never echoed or taken from a flag: they are
asked for twice on a terminal, or read from ``SECTOR_NEW_PASSWORD`` or the
first line of stdin by scripts.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import sys
from pathlib import Path

import click

from ..config import MB, UserSettings, parse, read_users, sector_home, user_settings
from ..master.users import hash_password, is_hashed
from ..protocol.paths import InvalidPath, normalize
from ..provision import UserFile, set_values, write_file
from .output import SizeType, human_size, print_table

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
#: ``--read none``: the empty list (Sector paths always start with ``/``).
NONE = "none"


def _conf_option(function):
    return click.option(
        "--conf",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The master's configuration directory [default: $SECTOR_HOME/conf].",
    )(function)


def _users_dir(conf: Path | None) -> Path:
    return (conf or sector_home() / "conf") / "users"


def _user_file(conf: Path | None, name: str, must_exist: bool) -> Path:
    if not _NAME.fullmatch(name):
        raise click.BadParameter(
            "letters, digits and _ . @ - only (up to 64), not starting with . @ or -",
            param_hint="NAME",
        )
    path = _users_dir(conf) / name
    if must_exist and not path.is_file():
        raise click.ClickException(f"no user {name} in {path.parent}")
    if not must_exist and path.exists():
        raise click.ClickException(
            f"user {name} exists ({path}); `sector user passwd {name}` changes its password"
        )
    return path


def new_password(name: str) -> str:
    """The new password: SECTOR_NEW_PASSWORD, else asked twice on a terminal, else stdin."""
    password = os.environ.get("SECTOR_NEW_PASSWORD")
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt(
                f"New password for {name}", hide_input=True, confirmation_prompt=True, err=True
            )
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException(
            "no password given: type it on a terminal, or pass it on stdin or in "
            "SECTOR_NEW_PASSWORD"
        )
    return password


def _paths(values: tuple[str, ...], option: str) -> list[str] | None:
    """Normalised Sector paths; None when the option was not given, [] for ``none``."""
    if not values:
        return None
    if values == (NONE,):
        return []
    try:
        return [normalize(value) for value in values]
    except InvalidPath as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _networks(values: tuple[str, ...]) -> list[str] | None:
    if not values:
        return None
    if values == (NONE,):
        return []
    try:
        return [str(ipaddress.ip_network(value, strict=False)) for value in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--acl") from None


def _quota_mb(size: int | None) -> int | None:
    return None if size is None else math.ceil(size / MB)


def _rights_options(function):
    for option in reversed(
        [
            click.option(
                "--read",
                multiple=True,
                metavar="PATH",
                help="May read under PATH (repeat for several; `none` for no path).",
            ),
            click.option(
                "--write",
                multiple=True,
                metavar="PATH",
                help="May read and write under PATH (repeat; `none`).",
            ),
            click.option(
                "--acl",
                multiple=True,
                metavar="CIDR",
                help="May log in only from these addresses (repeat; `none`: from anywhere).",
            ),
            click.option(
                "--quota",
                type=SizeType(),
                default=None,
                help="Most the user may store, e.g. 500G (0: no quota; kept in MB).",
            ),
        ]
    ):
        function = option(function)
    return function


@click.group()
def user() -> None:
    """Add, change, remove and list the users of a master (its conf/users/ files).

    Run these on the master's machine; the master picks the change up at the
    next login, without a restart. Passwords are stored only as salted
    hashes.
    """


@user.command()
@_conf_option
@_rights_options
@click.option("--admin", is_flag=True, help="An administrator: may do anything.")
@click.argument("name")
def add(
    conf: Path | None,
    read: tuple[str, ...],
    write: tuple[str, ...],
    acl: tuple[str, ...],
    quota: int | None,
    admin: bool,
    name: str,
) -> None:
    """Create user NAME; the password is asked for (or read from stdin).

    \b
    Example:
      sector user add alice --read / --write /home/alice --quota 100G
      printf '%s\\n' "$PASSWORD" | sector user add --conf /etc/sector ci-bot --read /data
    """
    path = _user_file(conf, name, must_exist=False)
    account = UserFile(
        name,
        hash_password(new_password(name)),
        read=_paths(read, "--read") or [],
        write=_paths(write, "--write") or [],
        acl=_networks(acl) or [],
        quota_mb=_quota_mb(quota) or 0,
        admin=admin,
    )
    write_file(path, account.text(), secret=True)
    click.echo(f"added user {name} ({path})")
    if not (account.read or account.write or admin):
        click.echo(f"{name} may not read or write anything yet: see `sector user grant --help`")


@user.command()
@_conf_option
@click.argument("name")
def passwd(conf: Path | None, name: str) -> None:
    """Change the password of user NAME (asked for, or read from stdin).

    \b
    Example:
      sector user passwd alice
    """
    path = _user_file(conf, name, must_exist=True)
    text = set_values(path.read_text(), "PASSWORD", [hash_password(new_password(name))], path)
    write_file(path, text, secret=True)
    click.echo(f"changed the password of {name}")


@user.command()
@_conf_option
@click.argument("name")
def rm(conf: Path | None, name: str) -> None:
    """Remove user NAME: it can no longer log in (open sessions run on until they end).

    \b
    Example:
      sector user rm alice
    """
    path = _user_file(conf, name, must_exist=True)
    path.unlink()
    click.echo(f"removed user {name}")


@user.command()
@_conf_option
@_rights_options
@click.option("--admin/--no-admin", default=None, help="Make or unmake an administrator.")
@click.argument("name")
def grant(
    conf: Path | None,
    read: tuple[str, ...],
    write: tuple[str, ...],
    acl: tuple[str, ...],
    quota: int | None,
    admin: bool | None,
    name: str,
) -> None:
    """Set what user NAME may do: each option given replaces that right, others stay.

    \b
    Example:
      sector user grant alice --read / --write /home/alice --write /shared
      sector user grant alice --write none --quota 0
      sector user grant bob --acl 10.0.0.0/8 --admin
    """
    path = _user_file(conf, name, must_exist=True)
    # key -> its new values; None removes the key (no ACL: from anywhere; no QUOTA: none)
    changes: dict[str, list[str] | None] = {}
    if (paths := _paths(read, "--read")) is not None:
        changes["READ_PERMISSION"] = paths
    if (paths := _paths(write, "--write")) is not None:
        changes["WRITE_PERMISSION"] = paths
    if (networks := _networks(acl)) is not None:
        changes["ACL"] = networks or None
    megabytes = _quota_mb(quota)
    if megabytes is not None:
        changes["QUOTA"] = [str(megabytes)] if megabytes else None
    if admin is not None:
        changes["ADMIN"] = ["TRUE"] if admin else None
    if not changes:
        raise click.UsageError("give at least one of --read, --write, --acl, --quota, --admin")
    text = path.read_text()
    for key, values in changes.items():
        text = set_values(text, key, values, path)  # a bad file is reported, not rewritten
    user_settings(parse(text, path), name)  # and what we write reads back
    write_file(path, text, secret=True)
    click.echo(f"updated user {name}: " + ", ".join(sorted(changes)))


@user.command("list")
@_conf_option
@click.option("--json", "as_json", is_flag=True, help="As JSON (never with passwords).")
def list_users(conf: Path | None, as_json: bool) -> None:
    """List the users and what each may do; passwords are never shown.

    The PASSWORD column says whether a file holds a hash or, as Sector
    allowed, a clear-text password that `sector user passwd` should replace.

    \b
    Example:
      sector user list
    """
    users = read_users(_users_dir(conf))
    rows = [_describe(account) for account in users.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(
        ["USER", "ADMIN", "READ", "WRITE", "ACL", "QUOTA", "PASSWORD"],
        [
            [
                row["name"],
                "yes" if row["admin"] else "-",
                ",".join(row["read"]) or "-",
                ",".join(row["write"]) or "-",
                ",".join(row["acl"]) or "any",
                human_size(row["quota_mb"] * MB) if row["quota_mb"] else "-",
                row["password"],
            ]
            for row in rows
        ],
    )


def _describe(account: UserSettings) -> dict:
    return {
        "name": account.name,
        "admin": account.admin or account.name == "root",
        "read": account.read,
        "write": account.write,
        "acl": [str(network) for network in account.acl],
        "quota_mb": account.quota,
        "password": "hashed" if is_hashed(account.password) else "CLEAR TEXT",
    }
