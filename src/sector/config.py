"""Sector's configuration directory, parsed into typed settings.

The format is Sector's own: a line holding a KEY, then the lines indented by a
TAB (or spaces) hold its values; ``#`` starts a comment. For example::

    # the port the master listens on
    SECTOR_PORT
            6000

A ``#`` starts a comment at the start of a line or after a space or TAB, so a
value may hold one inside a word (``PASSWORD`` ``abc#def`` is ``abc#def``,
which Sector cut to ``abc``), and ``6000  # the port`` is still ``6000``. A
value written in double quotes is taken as it is, ``#``, spaces and all:
``"two words # and a hash"``; inside the quotes ``\"`` is a quote and
``\\`` a backslash. :func:`quote` writes a value that way when it must.

Every file a person edits is read through :func:`parse`, which reports a bad
line as ``file:line: what is wrong`` so that start-up can stop with one clear
message.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MB = 1024**2
_UNITS = "KMGTPE"


class ConfigError(Exception):
    """A configuration file is unreadable or holds a line we cannot accept."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class Entry:
    values: list[str]
    line: int
    #: the line each value was written on, for errors that point at one value
    value_lines: list[int] = field(default_factory=list)

    def line_of(self, value_index: int) -> int:
        return self.value_lines[value_index] if value_index < len(self.value_lines) else self.line


@dataclass
class ConfigFile:
    """One parsed file: KEY -> values, remembering where each key was written."""

    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def error(self, key: str, message: str, index: int | None = None) -> ConfigError:
        """An error at ``key``'s line, or at the line of its value number ``index``."""
        entry = self.entries[key]
        return ConfigError(
            self.path, entry.line if index is None else entry.line_of(index), message
        )

    def values(self, key: str) -> list[str]:
        return self.entries[key].values if key in self.entries else []

    def first(self, key: str, default: str | None = None) -> str | None:
        values = self.values(key)
        return values[0] if values else default

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        return int(self._number(key, default, int, minimum))

    def number(self, key: str, default: float, minimum: float | None = None) -> float:
        return float(self._number(key, default, float, minimum))

    def _number(self, key, default, kind, minimum):
        text = self._only_value(key)
        if text is None:
            return default
        try:
            value = kind(text)
        except ValueError:
            raise self.error(key, f"{key} must be a number, not {text!r}") from None
        if minimum is not None and value < minimum:
            raise self.error(key, f"{key} must be at least {minimum}")
        return value

    def port(self, key: str) -> int | None:
        """A TCP port (0: any free one), or None when ``key`` is not given."""
        if key not in self.entries:
            return None
        port = self.integer(key, 0, minimum=0)
        if port > 65535:
            raise self.error(key, f"{key} must be a port number, at most 65535")
        return port

    def size(self, key: str, default: int, unit: int = MB) -> int:
        """Bytes from ``64`` (in ``unit``: Sector's sizes are in MB) or ``500K``, ``2G``."""
        text = self._only_value(key)
        if text is None:
            return default
        try:
            return parse_size(text, unit)
        except ValueError as exc:
            raise self.error(key, f"{key}: {exc}") from None

    def _only_value(self, key: str) -> str | None:
        """The single value of ``key`` (None when absent); more or fewer is an error."""
        if key not in self.entries:
            return None
        values = self.entries[key].values
        if len(values) != 1:
            raise self.error(key, f"{key} takes exactly one value")
        return values[0]

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.entries:
            return default
        text = (self.first(key) or "").lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise self.error(key, f"{key} must be TRUE or FALSE")

    def address(self, key: str, default: tuple[str, int] | None = None) -> tuple[str, int] | None:
        text = self.first(key)
        if text is None:
            return default
        try:
            return parse_address(text)
        except ValueError as exc:
            raise self.error(key, f"{key}: {exc}") from None


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def quote(value: str) -> str:
    """``value`` as it must be written to read back unchanged (quoted only if needed)."""
    plain = value and value == value.strip() and not value.startswith('"')
    if plain and _comment_at(value) is None:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment_at(line: str) -> int | None:
    """Where a comment starts in ``line`` (a ``#`` first, or after a blank); None: nowhere."""
    for index, char in enumerate(line):
        if char == "#" and (index == 0 or line[index - 1] in " \t"):
            return index
    return None


def _split_line(raw: str, path: Path | str, number: int) -> tuple[bool, str | None]:
    """(indented, content) of a line: its text without the comment, a quoted value
    unquoted; content None for a blank or comment-only line."""
    stripped = raw.lstrip(" \t")
    indented = len(stripped) < len(raw)
    if stripped.startswith('"'):
        match = _QUOTED.match(stripped)
        rest = stripped[match.end() :].strip() if match else ""
        if match is None or (rest and not rest.startswith("#")):
            raise ConfigError(path, number, 'a quoted value must end with " (then nothing)')
        return indented, _ESCAPE.sub(r"\1", match.group(1))
    cut = _comment_at(stripped)
    content = (stripped if cut is None else stripped[:cut]).rstrip()
    return indented, content or None


def parse(text: str, path: Path | str = "<string>") -> ConfigFile:
    """Parse Sector-format text; values before any key are an error."""
    config = ConfigFile(Path(path))
    current: Entry | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        indented, line = _split_line(raw, path, number)
        if line is None:
            continue
        if indented:
            if current is None:
                raise ConfigError(path, number, "value given before any KEY line")
            current.values.append(line)
            current.value_lines.append(number)
            continue
        key = line.strip()
        if " " in key or "\t" in key:
            raise ConfigError(
                path, number, f"{key!r} is not a KEY; values go on the next line, indented"
            )
        if key in config.entries:
            raise ConfigError(path, number, f"{key} is given twice")
        current = config.entries[key] = Entry([], number)
    return config


def load(path: Path | str, required: bool = False) -> ConfigFile:
    """Parse a file; a missing optional file reads as empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(path, None, "file not found") from None
        return ConfigFile(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    return parse(text, path)


def parse_address(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` -> (host, port); ``[::1]:6000`` for IPv6."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r} needs a port, as host:port")
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return host or "127.0.0.1", port


def parse_size(text: str, unit: int = 1) -> int:
    """``500K``, ``2M``, ``1.5G`` (powers of 1024), ``100B``, or a plain number of ``unit``s."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:([KMGTPE])i?B?|(B))?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 500K, 2M or 1G")
    number, prefix, plain_bytes = match.groups()
    scale = 1 if plain_bytes else unit
    if prefix:
        scale = 1024 ** (_UNITS.index(prefix.upper()) + 1)
    return int(float(number) * scale)


def human_size(size: int | float) -> str:
    """The reverse of :func:`parse_size`, as ``ls -h`` writes sizes: 1023 -> ``1023``,
    1536 -> ``1.5K``, 10 MiB -> ``10M``."""
    value = float(size)
    if value < 1024:
        return str(int(value))
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90`` or ``90s``, ``15m``, ``24h``, ``7d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 24h or 7d")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[(unit or "s").lower()]


RUN_FILE = "cluster.json"


def read_run_file(home: Path | str | None = None) -> dict | None:
    """The state `sector up` records for the cluster it runs from ``home`` (None if none)."""
    path = Path(home or sector_home()).expanduser() / RUN_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def sector_home() -> Path:
    """``$SECTOR_HOME``, else ``~/.sector``: where `sector up` keeps its state."""
    return Path(os.environ.get("SECTOR_HOME") or Path.home() / ".sector")


@dataclass
class LogSettings:
    """Where a server's log goes and how big it may grow (see :mod:`sector.logs`)."""

    level: int = 1
    max_size: int = 64 * MB
    backups: int = 5

    @classmethod
    def load(cls, conf: ConfigFile) -> LogSettings:
        return cls(
            level=conf.integer("LOG_LEVEL", 1, minimum=0),
            max_size=conf.size("LOG_MAX_SIZE", 64 * MB),
            backups=conf.integer("LOG_BACKUPS", 5, minimum=1),
        )


def conf_path(conf_dir: Path, value: str | None, default: str) -> Path:
    """A file a conf names: relative paths are taken from the conf directory, so a
    directory copied to another machine (or place) still finds its certificate."""
    return conf_dir / Path(value or default).expanduser()


@dataclass
class MasterSettings:
    conf_dir: Path
    home: Path
    host: str = "127.0.0.1"
    port: int = 6000
    replica_num: int = 1
    slave_timeout: float = 30.0
    heartbeat_interval: float = 5.0
    token_ttl: float = 600.0
    lost_slave_retry_time: float = 600.0
    client_timeout: float = 600.0
    inventory_interval: float = 600.0
    slave_min_disk_space: int = 64 * 1024 * 1024
    log: LogSettings = field(default_factory=LogSettings)
    allow_user_without_cert: bool = True
    #: DATA_ENCRYPTION: every data connection over TLS, whatever the open mode asks.
    data_encryption: bool = False
    #: UNKNOWN_USER_ERROR E_ACCOUNT: tell a login for an unknown user so (Sector did);
    #: by default it is answered as a wrong password is (E_PASSWORD), in as long.
    reveal_unknown_users: bool = False
    cert: Path = Path()
    key: Path = Path()
    slave_acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    master_acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    topology: list[TopologyRule] = field(default_factory=list)
    replica_rules: ReplicaRules = field(default_factory=lambda: ReplicaRules())
    #: The dashboard and /metrics: their port on ``host`` (0: any free port), None: off.
    http_port: int | None = None
    #: Serve them over TLS with the master's certificate (a login sends a password).
    http_tls: bool = False
    #: /metrics asks for an administrator's name and password (HTTP Basic) when True.
    metrics_auth: bool = False

    @classmethod
    def load(cls, conf_dir: Path | str, home: Path | str | None = None) -> MasterSettings:
        conf_dir = Path(conf_dir)
        conf = load(conf_dir / "master.conf", required=True)
        data_dir = conf.first("DATA_DIRECTORY")
        resolved_home = Path(home) if home else Path(data_dir or conf_dir.parent / "master")
        return cls(
            conf_dir=conf_dir,
            home=resolved_home.expanduser(),
            host=conf.first("BIND_ADDRESS", "127.0.0.1") or "127.0.0.1",
            port=conf.integer("SECTOR_PORT", 6000, minimum=0),
            replica_num=conf.integer("REPLICA_NUM", 1, minimum=1),
            slave_timeout=conf.number("SLAVE_TIMEOUT", 30.0, minimum=0.1),
            heartbeat_interval=conf.number("HEARTBEAT_INTERVAL", 5.0, minimum=0.05),
            token_ttl=conf.number("DATA_TOKEN_TTL", 600.0, minimum=0.1),
            lost_slave_retry_time=conf.number("LOST_SLAVE_RETRY_TIME", 600.0, minimum=0),
            client_timeout=conf.number("CLIENT_TIMEOUT", 600.0, minimum=0),
            inventory_interval=conf.number("INVENTORY_INTERVAL", 600.0, minimum=0),
            slave_min_disk_space=conf.size("SLAVE_MIN_DISK_SPACE", 64 * MB),
            log=LogSettings.load(conf),
            allow_user_without_cert=conf.boolean("ALLOW_USER_WITHOUT_CERT", True),
            reveal_unknown_users=_unknown_user_error(conf),
            data_encryption=conf.boolean("DATA_ENCRYPTION", False),
            cert=conf_path(conf_dir, conf.first("CERTIFICATE"), "master_node.cert"),
            key=conf_path(conf_dir, conf.first("PRIVATE_KEY"), "master_node.key"),
            slave_acl=read_acl(conf_dir / "slave_acl.conf"),
            master_acl=read_acl(conf_dir / "master_acl.conf"),
            topology=read_topology(conf_dir / "topology.conf"),
            replica_rules=ReplicaRules.load(conf_dir / "replica.conf"),
            http_port=conf.port("HTTP_PORT"),
            http_tls=conf.boolean("HTTP_TLS", False),
            metrics_auth=conf.boolean("METRICS_AUTH", False),
        )


#: The file beside slave.conf holding a join token (``sector conf init --role slave``).
JOIN_TOKEN_FILE = "join.token"


def _unknown_user_error(conf: ConfigFile) -> bool:
    """``UNKNOWN_USER_ERROR``: E_PASSWORD (the default: reveal nothing) or E_ACCOUNT."""
    value = (conf.first("UNKNOWN_USER_ERROR") or "E_PASSWORD").upper()
    if value not in ("E_PASSWORD", "E_ACCOUNT"):
        raise conf.error("UNKNOWN_USER_ERROR", "UNKNOWN_USER_ERROR must be E_PASSWORD or E_ACCOUNT")
    return value == "E_ACCOUNT"


@dataclass
class SlaveSettings:
    conf_dir: Path
    data_dir: Path
    master: tuple[str, int] = ("127.0.0.1", 6000)
    host: str = "127.0.0.1"
    port: int = 0
    max_data_size: int = 0
    log: LogSettings = field(default_factory=LogSettings)
    #: the master's certificate, which is also the cluster's authority
    cert: Path = Path()
    #: Bytes per second the scrub re-reads stored objects at (0: no scrub).
    scrub_rate: float = 4 * MB
    #: Seconds a data connection may sit idle between requests (outside a write) before
    #: the slave closes it; and seconds a peer may leave a request half-sent, or send
    #: nothing at all after connecting. See DataConnection in slave/server.py.
    idle_timeout: float = 300.0
    stall_timeout: float = 30.0
    #: a join token given on the command line (``sector slave --join``)
    join_token: str | None = None

    @property
    def own_cert(self) -> Path:
        """This slave's membership certificate: in the data directory, like its id."""
        return self.data_dir / "slave.cert"

    @property
    def own_key(self) -> Path:
        return self.data_dir / "slave.key"

    def read_join_token(self) -> str | None:
        """``--join``, else ``join.token`` beside slave.conf (read afresh: it may be renewed)."""
        if self.join_token:
            return self.join_token.strip()
        try:
            text = (self.conf_dir / JOIN_TOKEN_FILE).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text or None

    @classmethod
    def load(cls, conf_dir: Path | str, data_dir: Path | str | None = None) -> SlaveSettings:
        conf_dir = Path(conf_dir)
        conf = load(conf_dir / "slave.conf", required=True)
        chosen = data_dir or conf.first("DATA_DIRECTORY")
        if not chosen:
            raise ConfigError(conf.path, None, "DATA_DIRECTORY is required")
        return cls(
            conf_dir=conf_dir,
            data_dir=Path(chosen).expanduser(),
            master=conf.address("MASTER_ADDRESS", ("127.0.0.1", 6000)) or ("127.0.0.1", 6000),
            host=conf.first("BIND_ADDRESS", "127.0.0.1") or "127.0.0.1",
            port=conf.integer("SLAVE_PORT", 0, minimum=0),
            max_data_size=conf.size("MAX_DATA_SIZE", 0),
            log=LogSettings.load(conf),
            cert=conf_path(conf_dir, conf.first("CERTIFICATE"), "master_node.cert"),
            scrub_rate=conf.number("SCRUB_RATE", 4.0, minimum=0) * MB,
            idle_timeout=conf.number("IDLE_TIMEOUT", 300.0, minimum=0.1),
            stall_timeout=conf.number("STALL_TIMEOUT", 30.0, minimum=0.1),
        )


@dataclass
class ClientSettings:
    master: tuple[str, int] | None = None
    user: str | None = None
    password: str | None = None
    cert: Path | None = None
    #: MASTER_TIMEOUT: seconds of silence from the master before a call fails.
    timeout: float | None = None
    #: DATA_TIMEOUT: seconds a read waits for a silent slave before trying another replica.
    data_timeout: float | None = None

    @classmethod
    def load(cls, conf_dir: Path | str | None = None) -> ClientSettings:
        conf_dir = Path(conf_dir) if conf_dir else sector_home() / "conf"
        conf = load(conf_dir / "client.conf")
        cert = conf.first("CERTIFICATE")
        # at least 2 s: the master reports progress on a long request every second
        timeout = conf.number("MASTER_TIMEOUT", 0.0, minimum=2.0)
        return cls(
            master=conf.address("MASTER_ADDRESS"),
            user=conf.first("USERNAME"),
            password=conf.first("PASSWORD"),
            cert=conf_path(conf_dir, cert, "") if cert else None,
            timeout=timeout if "MASTER_TIMEOUT" in conf else None,
            data_timeout=(
                conf.number("DATA_TIMEOUT", 0.0, minimum=0.1) if "DATA_TIMEOUT" in conf else None
            ),
        )


@dataclass
class UserSettings:
    name: str
    password: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    exec: list[str] = field(default_factory=list)
    acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    quota: int = 0
    admin: bool = False


def read_users(users_dir: Path) -> dict[str, UserSettings]:
    """Every ``users/<name>`` file; a user without PASSWORD is a configuration error."""
    users: dict[str, UserSettings] = {}
    if not users_dir.is_dir():
        return users
    for path in sorted(users_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        users[path.name] = user_settings(load(path), path.name)
    return users


def user_settings(conf: ConfigFile, name: str) -> UserSettings:
    """One user file's account (``conf`` parsed from ``users/<name>``)."""
    password = conf.first("PASSWORD")
    if password is None:
        raise ConfigError(conf.path, None, "PASSWORD is required")
    return UserSettings(
        name=name,
        password=password,
        read=_paths(conf, "READ_PERMISSION"),
        write=_paths(conf, "WRITE_PERMISSION"),
        exec=_paths(conf, "EXEC_PERMISSION"),
        acl=_networks(conf, "ACL"),
        quota=conf.integer("QUOTA", 0, minimum=0),
        admin=conf.boolean("ADMIN", False),
    )


def read_acl(path: Path) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """An ACL file, as Sector wrote them: one IP address or CIDR range per line."""
    networks = []
    for number, text in _plain_lines(path):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(path, number, f"{text!r} is not an IP address or CIDR") from None
    return networks


def address_allowed(address: str, acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether an ACL admits ``address``; an empty ACL admits everyone."""
    if not acl:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in acl)


def _paths(conf: ConfigFile, key: str) -> list[str]:
    from .protocol.paths import InvalidPath, normalize

    result = []
    for index, value in enumerate(conf.values(key)):
        try:
            result.append(normalize(value))
        except InvalidPath as exc:
            raise conf.error(key, f"{key}: {exc}", index) from None
    return result


def _networks(conf: ConfigFile, key: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    result = []
    for index, value in enumerate(conf.values(key)):
        try:
            result.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise conf.error(key, f"{value!r} is not an IP address or CIDR", index) from None
    return result


@dataclass
class TopologyRule:
    """``topology.conf``: slaves in ``network`` sit at ``location`` (``/dc1/rack2``)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    location: str


def topology_location(address: str, rules: list[TopologyRule]) -> str:
    """Where ``address`` sits by ``topology.conf``: the narrowest range that holds it (so
    ``10.0.0.0/8 /dc1`` can be refined by ``10.0.2.0/24 /dc1/rack2``), else ``/`` (the
    whole cluster: no rule says more)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "/"
    holding = [r for r in rules if ip.version == r.network.version and ip in r.network]
    if not holding:
        return "/"
    return max(holding, key=lambda r: r.network.prefixlen).location


def read_topology(path: Path) -> list[TopologyRule]:
    """One ``IP-or-CIDR  /L1/L2`` line per address range; read (and checked) at master start."""
    from .protocol.paths import InvalidPath, normalize

    rules = []
    for number, text in _plain_lines(path):
        parts = text.split()
        if len(parts) != 2:
            raise ConfigError(path, number, f"{text!r}: expected an IP or CIDR, then a /L1/L2 path")
        try:
            network = ipaddress.ip_network(parts[0], strict=False)
        except ValueError:
            raise ConfigError(path, number, f"{parts[0]!r} is not an IP address or CIDR") from None
        try:
            location = normalize(parts[1])
        except InvalidPath as exc:
            raise ConfigError(path, number, f"{parts[1]!r}: {exc}") from None
        rules.append(TopologyRule(network, location))
    return rules


@dataclass
class ReplicaRules:
    """``replica.conf``: per-path overrides as ``(path pattern, value)`` pairs, first match wins.

    ``number``: copies wanted (REPLICATION_NUMBER); ``distance``: how far apart in the
    topology they must be (REPLICATION_DISTANCE); ``location``: where they must live
    (REPLICATION_LOCATION). Patterns may use ``*`` and ``?``.
    """

    number: list[tuple[str, int]] = field(default_factory=list)
    distance: list[tuple[str, int]] = field(default_factory=list)
    location: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> ReplicaRules:
        conf = load(path)
        return cls(
            number=_rules(conf, "REPLICATION_NUMBER", _whole_number(1)),
            distance=_rules(conf, "REPLICATION_DISTANCE", _whole_number(0)),
            location=_rules(conf, "REPLICATION_LOCATION", _location),
        )


def _rules(conf: ConfigFile, key: str, convert: Callable[[str], T]) -> list[tuple[str, T]]:
    """``PATH-PATTERN VALUE`` values of ``key``; a bad one is reported at its own line."""
    rules = []
    for index, text in enumerate(conf.values(key)):
        parts = text.split()
        try:
            if len(parts) != 2 or not parts[0].startswith("/"):
                raise ValueError(f"{text!r} is not 'PATH-PATTERN VALUE'")
            rules.append((parts[0], convert(parts[1])))
        except ValueError as exc:
            raise conf.error(key, f"{key}: {exc}", index) from None
    return rules


def _whole_number(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise ValueError(f"{text!r} is not a whole number >= {minimum}")
        return int(text)

    return convert


def _location(text: str) -> str:
    from .protocol.paths import InvalidPath, normalize

    try:
        return normalize(text)
    except InvalidPath as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def _plain_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a one-item-per-line file, comments and blanks dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        _, content = _split_line(raw, path, number)
        if content and content.strip():
            lines.append((number, content.strip()))
    return lines
