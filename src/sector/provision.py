"""One machine's configuration directory, written for its role.

The machines of a cluster need different files: the master holds its private
key, the users and the ACLs; a slave needs ``slave.conf``, the master's
certificate and a join token (to have its own key certified at first start);
a client needs ``client.conf`` and the certificate - and never a password.
``sector conf init`` writes exactly that for one role, and ``sector up``
writes its one-machine cluster through the same templates, so every
generated file carries the same comments.

Files holding secrets (the private key, user files with their hashes,
``root.password``, a join token, a ``client.conf`` with a password) are
created mode 0600 under a temporary name and renamed into place, so they are
never readable by others, not even for a moment, and a reader never sees half
a file.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import certs
from .config import JOIN_TOKEN_FILE, ConfigError, parse, quote
from .master.users import hash_password

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
CERT_NAME, KEY_NAME = "master_node.cert", "master_node.key"
ADMIN_USER, ADMIN_PASSWORD_FILE = "root", "root.password"
MB = 1024**2


class ConfExists(Exception):
    """A file ``conf init`` would write exists already (and --force was not given)."""


# --- writing ----------------------------------------------------------------------------


def write_file(path: Path, text: str | bytes, secret: bool = False) -> Path:
    """Replace ``path`` atomically; mode 0600 when ``secret``, else 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    temp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(
        temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_MODE if secret else PUBLIC_MODE
    )
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def entry(key: str, *values: object) -> str:
    """One KEY and its TAB-indented values, in Sector's format (quoted where a value
    would not read back as written: see :func:`sector.config.quote`)."""
    return key + "\n" + "".join(f"\t{quote(str(value))}\n" for value in values)


def set_values(text: str, key: str, values: list[str] | None, path: Path | str = "") -> str:
    """``text`` with ``key``'s values replaced (the key added at the end if new, removed
    if ``values`` is None); every other line, comments included, is kept as it was."""
    conf = parse(text, path)
    lines = text.splitlines(keepends=True)
    new = entry(key, *values) if values is not None else ""
    if key not in conf:
        if not new:
            return text
        return text + ("" if not text or text.endswith("\n") else "\n") + new
    found = conf.entries[key]
    start = found.line - 1  # the key's line, 0-based
    end = found.value_lines[-1] if found.value_lines else found.line  # just past its last value
    return "".join(lines[:start]) + new + "".join(lines[end:])


# --- the files --------------------------------------------------------------------------


@dataclass
class MasterConf:
    """What goes into ``master.conf``; the defaults are those of a multi-machine cluster."""

    port: int = 6000
    bind: str = "0.0.0.0"
    data_dir: Path = Path("/var/lib/sector/master")
    heartbeat: float = 5.0
    slave_timeout: float = 30.0
    min_disk_mb: int = 64
    log_level: int = 1
    #: The dashboard's port; None writes the key commented out (the dashboard is off).
    http_port: int | None = None
    replica_num: int = 1
    title: str = "Sector master configuration, written by `sector conf init`."

    def text(self) -> str:
        return f"""\
# {self.title}
# Format: a KEY line, then its value(s) on the following TAB-indented lines.

# port the master listens on for clients and slaves
SECTOR_PORT
\t{self.port}

# address to bind: 0.0.0.0 is every interface; 127.0.0.1 keeps the cluster on this machine
BIND_ADDRESS
\t{self.bind}

# where the master keeps its metadata database, lock and log
DATA_DIRECTORY
\t{self.data_dir}

# copies of each file the master keeps (replica.conf and `sector replicate` refine it
# per path); a file has fewer only while there are fewer live slaves
REPLICA_NUM
\t{self.replica_num}

# seconds between slave heartbeats, and of silence before a slave is declared dead
HEARTBEAT_INTERVAL
\t{self.heartbeat}
SLAVE_TIMEOUT
\t{self.slave_timeout}

# slaves need at least this much free disk (MB) to be given new files
SLAVE_MIN_DISK_SPACE
\t{self.min_disk_mb}

# seconds a data token (a client's pass to one file on one slave) stays valid;
# clients renew expired read tokens by themselves
DATA_TOKEN_TTL
\t600

# 0 = no log ... 9 = every request; the log (master.log) rotates past LOG_MAX_SIZE
# (MB, or 500K, 1G; 0 = never, for logrotate's copytruncate), keeping LOG_BACKUPS old files
LOG_LEVEL
\t{self.log_level}
LOG_MAX_SIZE
\t64
LOG_BACKUPS
\t5

{self._http()}"""

    def _http(self) -> str:
        about = (
            "# the web dashboard (log in as a Sector user) and Prometheus /metrics, on\n"
            "# BIND_ADDRESS at this port (0: any free port); no HTTP_PORT: no dashboard\n"
        )
        options = (
            "# HTTP_TLS TRUE serves them over TLS with this master's certificate: do so\n"
            "# beyond one machine, since logging in sends a password;\n"
            "# METRICS_AUTH TRUE makes /metrics ask for an administrator (HTTP Basic)\n"
            "# HTTP_TLS\n#\tTRUE\n# METRICS_AUTH\n#\tTRUE\n"
        )
        if self.http_port is None:
            return about + "# HTTP_PORT\n#\t6080\n" + options
        return about + entry("HTTP_PORT", self.http_port) + options


_DATA_DIRECTORY_EXAMPLE = """\
# DATA_DIRECTORY
#\t/disk1/sector
# (or give each slave its own: sector slave --data DIR)
"""


def slave_conf(
    master: str,
    bind: str = "0.0.0.0",
    data_dir: Path | None = None,
    log_level: int = 1,
    title: str = "Sector slave configuration, written by `sector conf init`.",
    scrub_rate: float = 4,
) -> str:
    data = entry("DATA_DIRECTORY", data_dir) if data_dir else _DATA_DIRECTORY_EXAMPLE
    return f"""\
# {title}

# the master to register with
MASTER_ADDRESS
\t{master}

# address to bind (0.0.0.0: every interface); 0 below for the port means any free port
BIND_ADDRESS
\t{bind}
SLAVE_PORT
\t0

# where this slave stores its files: one slave per disk, each with its own directory
{data}
# most data this slave may store (MB, or 500G, 2T); 0 = no limit but the disk
MAX_DATA_SIZE
\t0

# MB/s at which stored files are re-read in the background and checked against their
# checksums (a damaged copy is set aside and copied again from a good one); 0 = never
SCRUB_RATE
\t{scrub_rate:g}

# the master's certificate: {CERT_NAME} beside this file unless CERTIFICATE says otherwise
# (a relative path is taken from this directory). It is also the cluster's authority: at
# its first start a slave makes its own key and has the master certify it, showing the
# join token in {JOIN_TOKEN_FILE} beside this file (or `sector slave --join TOKEN`); the
# certificate is then kept in the data directory (slave.cert, slave.key).

# 0 = no log ... 9 = every request; slave.log rotates past LOG_MAX_SIZE, keeping LOG_BACKUPS
LOG_LEVEL
\t{log_level}
LOG_MAX_SIZE
\t64
LOG_BACKUPS
\t5
"""


def client_conf(
    master: str | None,
    user: str | None = None,
    password: str | None = None,
    cert: Path | None = None,
    title: str = "Sector client configuration, written by `sector conf init`.",
) -> str:
    parts = [f"# {title}\n# The defaults of `sector` commands and of the PySector examples.\n"]
    if master:
        parts.append(entry("MASTER_ADDRESS", master))
    else:
        parts.append(
            "# MASTER_ADDRESS is not fixed (the master takes any free port): clients\n"
            "# find it in the cluster's run file, cluster.json\n"
        )
    if user:
        parts.append(entry("USERNAME", user))
    if password is not None:
        parts.append("# this file holds a password: keep it mode 0600\n")
        parts.append(entry("PASSWORD", password))
    else:
        parts.append(
            "# no PASSWORD here: `sector` asks for it on a terminal, or reads SECTOR_PASSWORD\n"
        )
    if cert:
        parts.append(entry("CERTIFICATE", cert))
    else:
        parts.append(f"# the master's certificate: {CERT_NAME} beside this file\n")
    parts.append(
        "# seconds a read waits for a slave that sends nothing (stopped, cut off)\n"
        "# before it carries on from another replica\n" + entry("DATA_TIMEOUT", 30)
    )
    return "\n".join(parts)


def acl_file(what: str, networks: Iterable[str]) -> str:
    listed = "".join(f"{network}\n" for network in networks)
    return (
        f"# IP addresses or CIDR ranges {what} (one per line; an empty file allows any)\n{listed}"
    )


TOPOLOGY_TEMPLATE = """\
# Network topology: one line per address range, IP-or-CIDR then a /L1/L2 path, e.g.
# 10.0.1.0/24\t/dc1/rack1
"""

REPLICA_TEMPLATE = """\
# Per-path replication rules: a path pattern (* and ? match within a name; a pattern
# covers everything below what it matches), then a value. The most specific pattern
# wins; `sector replicate PATH N` sets the count at run time. For example:
#
# replicas to keep (REPLICA_NUM in master.conf for every other path)
# REPLICATION_NUMBER
#\t/important\t3
#\t/scratch/*\t1
#
# the most two replicas may be apart in topology.conf's terms (1: one rack)
# REPLICATION_DISTANCE
#\t/rack-local\t1
#
# where the replicas must live (a topology.conf location)
# REPLICATION_LOCATION
#\t/eu-data\t/dc-eu
"""


@dataclass
class UserFile:
    """The contents of ``users/<name>``: never a clear-text password, only its hash."""

    name: str
    password_hash: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    acl: list[str] = field(default_factory=list)
    quota_mb: int = 0
    admin: bool = False
    note: str = ""

    def text(self) -> str:
        parts = [f"# Sector user `{self.name}`{': ' + self.note if self.note else ''}\n"]
        parts.append(
            "# Edited by `sector user`; PASSWORD holds a salted hash, never the password.\n"
        )
        parts.append(entry("PASSWORD", self.password_hash))
        parts.append(entry("READ_PERMISSION", *self.read))
        parts.append(entry("WRITE_PERMISSION", *self.write))
        if self.acl:
            parts.append(entry("ACL", *self.acl))
        if self.quota_mb:
            parts.append(entry("QUOTA", self.quota_mb))
        if self.admin:
            parts.append(entry("ADMIN", "TRUE"))
        return "".join(parts)


# --- roles ------------------------------------------------------------------------------


def default_slave_network(host: str) -> str:
    """The range slaves may register from when none is given: the master's /24 (IPv4) or /64.

    Raises ValueError when ``host`` is a name that does not resolve here.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
    if address.is_loopback:
        return "127.0.0.0/8" if address.version == 4 else "::1/128"
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _refuse_existing(paths: Iterable[Path], force: bool) -> None:
    if force:
        return
    for path in paths:
        if path.exists():
            raise ConfExists(f"{path} exists already; give --force to replace it")


def init_master(
    conf: Path,
    host: str,
    port: int,
    data_dir: Path,
    slave_networks: list[str],
    client_networks: list[str],
    force: bool = False,
) -> tuple[list[Path], Path]:
    """The master's directory: conf files, a new key and certificate, and the user root.

    Returns the files written and the file holding root's generated password.
    """
    names = {
        "master.conf": MasterConf(port=port, data_dir=data_dir).text(),
        "slave_acl.conf": acl_file("slaves may register from", slave_networks),
        "master_acl.conf": acl_file("clients may log in from", client_networks),
        "topology.conf": TOPOLOGY_TEMPLATE,
        "replica.conf": REPLICA_TEMPLATE,
    }
    targets = [conf / n for n in [*names, CERT_NAME, KEY_NAME, ADMIN_PASSWORD_FILE]]
    _refuse_existing([*targets, conf / "users" / ADMIN_USER], force)
    written = [write_file(conf / name, text) for name, text in names.items()]
    certs.create(conf / CERT_NAME, conf / KEY_NAME, names=[host])
    written += [conf / CERT_NAME, conf / KEY_NAME]
    written += write_admin(conf)
    return written, conf / ADMIN_PASSWORD_FILE


def write_admin(conf: Path) -> list[Path]:
    """The administrator ``root`` with a random password, kept in clear only in a 0600 file."""
    password = secrets.token_urlsafe(18)
    user = UserFile(
        ADMIN_USER,
        hash_password(password),
        read=["/"],
        write=["/"],
        note=f"the administrator (may do anything); its password is in ../{ADMIN_PASSWORD_FILE}",
    )
    return [
        write_file(conf / "users" / ADMIN_USER, user.text(), secret=True),
        write_file(conf / ADMIN_PASSWORD_FILE, password + "\n", secret=True),
    ]


def _copy_certificate(source_conf: Path, conf: Path) -> Path:
    cert = source_conf / CERT_NAME
    try:
        data = cert.read_bytes()
    except OSError as exc:
        raise ConfigError(
            cert, None, f"cannot read the master's certificate: {exc.strerror}"
        ) from None
    return write_file(conf / CERT_NAME, data)


#: How long the join token ``conf init --role slave`` writes stays usable, by default.
JOIN_TOKEN_VALIDITY = 24 * 3600.0


def join_token(source_conf: Path, valid_for: float = JOIN_TOKEN_VALIDITY) -> str:
    """A new join token of the cluster whose master's directory is ``source_conf``.

    Made with the master's private key, so it is made where that key is
    readable (the master's machine); see :mod:`sector.certs`.
    """
    try:
        authority = certs.Authority.load(source_conf / CERT_NAME, source_conf / KEY_NAME)
    except certs.CertificateError as exc:
        raise ConfigError(source_conf / KEY_NAME, None, str(exc)) from None
    return authority.join_token(valid_for, time.time())


def write_join_token(conf: Path, source_conf: Path, valid_for: float) -> Path:
    """``join.token`` (0600) in ``conf``: what the slaves started from it join with."""
    token = join_token(source_conf, valid_for)
    return write_file(conf / JOIN_TOKEN_FILE, token + "\n", secret=True)


def init_slave(
    conf: Path,
    master: str,
    source_conf: Path,
    data_dir: Path | None = None,
    force: bool = False,
    valid_for: float = JOIN_TOKEN_VALIDITY,
) -> list[Path]:
    """A slave machine's directory: ``slave.conf``, the master's certificate and a join token.

    It is made from the master's directory (``source_conf``), run where that is
    readable, because the join token is signed with the master's key. Each
    slave started from the directory makes its own key at its first start and
    has the master certify it with the token (valid ``valid_for`` seconds, for
    every slave of the machine); no private key is written here.
    """
    _refuse_existing([conf / "slave.conf", conf / CERT_NAME, conf / JOIN_TOKEN_FILE], force)
    return [
        write_file(conf / "slave.conf", slave_conf(master, data_dir=data_dir)),
        _copy_certificate(source_conf, conf),
        write_join_token(conf, source_conf, valid_for),
    ]


def init_client(
    conf: Path,
    master: str,
    source_conf: Path,
    user: str | None = None,
    force: bool = False,
) -> list[Path]:
    """A client machine's directory: ``client.conf`` without a password, and the certificate."""
    _refuse_existing([conf / "client.conf", conf / CERT_NAME], force)
    return [
        write_file(conf / "client.conf", client_conf(master, user)),
        _copy_certificate(source_conf, conf),
    ]
