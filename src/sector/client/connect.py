"""Finding the cluster to talk to, the same way for every tool.

First found wins, field by field: explicit arguments (command-line flags),
then the environment (``SECTOR_MASTER``, ``SECTOR_USER``, ``SECTOR_PASSWORD``,
``SECTOR_CERT``, ``SECTOR_DATA_TIMEOUT``), then ``client.conf`` under ``$SECTOR_HOME/conf`` (or
``~/.sector/conf``), and finally the local cluster that ``sector up`` runs
from that home. The CLI and the examples all call :func:`resolve`, so they
agree on where a setting comes from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import ClientSettings, parse_address, read_run_file, sector_home
from .session import Client, data_timeout_from

DEFAULT_MASTER = ("127.0.0.1", 6000)
#: How a Sector path names its cluster: ``sector://[user@]host[:port]/path``.
SCHEME = "sector://"


@dataclass(frozen=True)
class Location:
    """A path as a person wrote it, split into the cluster it names and the path.

    ``master`` (``host:port`` as written) and ``user`` are None when the text
    is a plain Sector path or a URL without them (``sector:///data``).
    """

    path: str
    master: str | None = None
    user: str | None = None


def parse_location(text: str) -> Location:
    """Split ``sector://[user@]host[:port]/path`` (or a plain path) into a :class:`Location`.

    A plain path comes back unchanged. A password in the URL is refused with
    ``ValueError`` rather than used: URLs end up in logs, shell history and
    task graphs, so the password belongs in ``SECTOR_PASSWORD``, ``client.conf``
    or the caller's options.
    """
    if not text.startswith(SCHEME):
        return Location(text)
    netloc, slash, rest = text[len(SCHEME) :].partition("/")
    path = "/" + rest if slash else "/"
    user, at, address = netloc.rpartition("@")
    if not at:
        user, address = "", netloc
    if ":" in user:
        raise ValueError(
            f"{text!r}: a password does not belong in a URL; "
            "set SECTOR_PASSWORD or pass password= instead"
        )
    return Location(path, master=address or None, user=user or None)


@dataclass
class Target:
    """Where to connect and as whom; ``password`` may be None (ask the person)."""

    host: str
    port: int
    user: str
    password: str | None
    cert: Path
    #: Seconds the master may stay silent (None: the client's default).
    timeout: float | None = None
    #: Seconds a read waits for a silent slave (None: the Client's default).
    data_timeout: float | None = None

    def connect(self) -> Client:
        """A logged-in client (raises the Sector exception on failure)."""
        client = Client(
            self.host,
            self.port,
            **({"timeout": self.timeout} if self.timeout else {}),
            data_timeout=self.data_timeout,
        )
        client.login(self.user, self.password or "", self.cert)
        return client


def resolve(
    master: str | None = None,
    user: str | None = None,
    password: str | None = None,
    cert: str | os.PathLike | None = None,
    home: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Target:
    """Where to connect and as whom, each field from the first place that sets it.

    The order is the arguments, the environment (``environ``, default
    ``os.environ``), ``client.conf`` under ``home`` (default ``$SECTOR_HOME``
    or ``~/.sector``), then the local cluster ``sector up`` runs from there;
    127.0.0.1:6000 and user ``test`` when nothing says otherwise. Never fails:
    ``password`` is None when no source gives one (ask, or fail at login); only a
    malformed ``SECTOR_DATA_TIMEOUT`` is refused (E_INVALID).
    """
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get("SECTOR_HOME") or sector_home()).expanduser()
    conf = ClientSettings.load(home_path / "conf")
    run = read_run_file(home_path) or {}

    address = None
    for text in (master, env.get("SECTOR_MASTER")):
        if text:
            address = parse_address(text, DEFAULT_MASTER[1])
            break
    if address is None:
        address = conf.master
    if address is None and run.get("master"):
        address = parse_address(run["master"])
    address = address or DEFAULT_MASTER

    cert_path = cert or env.get("SECTOR_CERT") or conf.cert or run.get("cert")
    chosen_user = user or env.get("SECTOR_USER") or conf.user or "test"
    # client.conf's PASSWORD belongs to its USERNAME: never send it for another account.
    conf_password = conf.password if conf.user in (None, chosen_user) else None
    return Target(
        host=address[0],
        port=address[1],
        user=chosen_user,
        password=password or env.get("SECTOR_PASSWORD") or conf_password,
        cert=Path(cert_path).expanduser() if cert_path else home_path / "conf" / "master_node.cert",
        timeout=timeout or conf.timeout,
        data_timeout=(
            data_timeout_from(env["SECTOR_DATA_TIMEOUT"])
            if env.get("SECTOR_DATA_TIMEOUT")
            else conf.data_timeout
        ),
    )
