"""What both examples share: connection options, logging in, checking status codes.

Kept beside the scripts (Python puts a script's folder on ``sys.path``) so
each example stays a short read of its own job.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import sector
from sector.client.connect import resolve
from sector.errors import code_name, describe


class Failed(Exception):
    """A step failed; the message says which and why."""


def check(status: object, what: str) -> None:
    """Raise :class:`Failed` when a PySector call returned a negative status code."""
    if isinstance(status, int) and not isinstance(status, bool) and status < 0:
        raise Failed(f"{what}: {code_name(status)} ({status}) - {describe(status)}")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", help="master address host:port (default: local cluster)")
    parser.add_argument("--user", help="Sector user (default: client.conf, else 'test')")
    parser.add_argument("--password", help="password (default: client.conf, else asked)")
    parser.add_argument("--cert", help="master certificate (default: $SECTOR_HOME/conf/...)")


def connect(args: argparse.Namespace) -> None:
    """``sector.init`` + ``sector.login`` with the settings :func:`resolve` finds."""
    target = resolve(master=args.master, user=args.user, password=args.password, cert=args.cert)
    password = target.password
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"Sector password for {target.user}: ")
    check(sector.init(target.host, target.port), f"init {target.host}:{target.port}")
    check(
        sector.login(target.user, password or "", str(target.cert)),
        f"login to {target.host}:{target.port} as {target.user}",
    )
