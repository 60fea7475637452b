"""Sector's configuration directory, parsed into typed settings.

The format is Sector's own: a line holding a KEY, then the lines indented by a
TAB (or spaces) hold its values; ``#`` starts a comment. For example::

    # the port the master listens on
    SECTOR_PORT
            6000

Every file a person edits is read through :func:`parse`, which reports a bad
line as ``file:line: what is wrong`` so that start-up can stop with one clear
message.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass
class ConfigFile:
    """One parsed file: KEY -> values, remembering where each key was written."""

    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

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
        if key not in self.entries:
            return default
        entry = self.entries[key]
        if len(entry.values) != 1:
            raise ConfigError(self.path, entry.line, f"{key} takes exactly one value")
        try:
            value = kind(entry.values[0])
        except ValueError:
            raise ConfigError(
                self.path, entry.line, f"{key} must be a number, not {entry.values[0]!r}"
            ) from None
        if minimum is not None and value < minimum:
            raise ConfigError(self.path, entry.line, f"{key} must be at least {minimum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.entries:
            return default
        text = (self.first(key) or "").lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(self.path, self.entries[key].line, f"{key} must be TRUE or FALSE")

    def address(self, key: str, default: tuple[str, int] | None = None) -> tuple[str, int] | None:
        text = self.first(key)
        if text is None:
            return default
        try:
            return parse_address(text)
        except ValueError as exc:
            raise ConfigError(self.path, self.entries[key].line, f"{key}: {exc}") from None


def parse(text: str, path: Path | str = "<string>") -> ConfigFile:
    """Parse Sector-format text; values before any key are an error."""
    config = ConfigFile(Path(path))
    current: Entry | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if line[0] in " \t":
            if current is None:
                raise ConfigError(path, number, "value given before any KEY line")
            current.values.append(line.strip())
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
    client_timeout: float = 0.0
    slave_min_disk_space: int = 64 * 1024 * 1024
    log_level: int = 1
    allow_user_without_cert: bool = True
    cert: Path = Path()
    key: Path = Path()
    slave_acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    master_acl: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)

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
            client_timeout=conf.number("CLIENT_TIMEOUT", 0.0, minimum=0),
            slave_min_disk_space=conf.integer("SLAVE_MIN_DISK_SPACE", 64, minimum=0) * 1024**2,
            log_level=conf.integer("LOG_LEVEL", 1, minimum=0),
            allow_user_without_cert=conf.boolean("ALLOW_USER_WITHOUT_CERT", True),
            cert=Path(conf.first("CERTIFICATE") or conf_dir / "master_node.cert"),
            key=Path(conf.first("PRIVATE_KEY") or conf_dir / "master_node.key"),
            slave_acl=read_acl(conf_dir / "slave_acl.conf"),
            master_acl=read_acl(conf_dir / "master_acl.conf"),
        )


@dataclass
class SlaveSettings:
    conf_dir: Path
    data_dir: Path
    master: tuple[str, int] = ("127.0.0.1", 6000)
    host: str = "127.0.0.1"
    port: int = 0
    max_data_size: int = 0
    log_level: int = 1
    cert: Path = Path()

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
            max_data_size=conf.integer("MAX_DATA_SIZE", 0, minimum=0) * 1024**2,
            log_level=conf.integer("LOG_LEVEL", 1, minimum=0),
            cert=Path(conf.first("CERTIFICATE") or conf_dir / "master_node.cert"),
        )


@dataclass
class ClientSettings:
    master: tuple[str, int] | None = None
    user: str | None = None
    password: str | None = None
    cert: Path | None = None

    @classmethod
    def load(cls, conf_dir: Path | str | None = None) -> ClientSettings:
        conf_dir = Path(conf_dir) if conf_dir else sector_home() / "conf"
        conf = load(conf_dir / "client.conf")
        cert = conf.first("CERTIFICATE")
        return cls(
            master=conf.address("MASTER_ADDRESS"),
            user=conf.first("USERNAME"),
            password=conf.first("PASSWORD"),
            cert=Path(cert).expanduser() if cert else None,
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
        conf = load(path)
        password = conf.first("PASSWORD")
        if password is None:
            raise ConfigError(path, None, "PASSWORD is required")
        users[path.name] = UserSettings(
            name=path.name,
            password=password,
            read=_paths(conf, "READ_PERMISSION"),
            write=_paths(conf, "WRITE_PERMISSION"),
            exec=_paths(conf, "EXEC_PERMISSION"),
            acl=_networks(conf, "ACL"),
            quota=conf.integer("QUOTA", 0, minimum=0),
            admin=conf.boolean("ADMIN", False),
        )
    return users


def read_acl(path: Path) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """An ACL file, as Sector wrote them: one IP address or CIDR range per line."""
    networks = []
    try:
        conf_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for number, raw in enumerate(conf_text.splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
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
    for value in conf.values(key):
        try:
            result.append(normalize(value))
        except InvalidPath as exc:
            raise ConfigError(conf.path, conf.entries[key].line, f"{key}: {exc}") from None
    return result


def _networks(conf: ConfigFile, key: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    result = []
    for value in conf.values(key):
        try:
            result.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(
                conf.path, conf.entries[key].line, f"{value!r} is not an IP address or CIDR"
            ) from None
    return result
