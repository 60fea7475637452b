"""A whole Sector cluster on this machine, from one call: what ``sector up`` runs.

The state directory (``~/.sector`` unless ``--home``/``$SECTOR_HOME`` say
otherwise) holds a Sector-format ``conf/`` directory written on first use and
reused, unchanged, afterwards, so a person can edit it; the master's metadata
and log under ``master/``; and one data directory per slave under
``slaves/<n>/``. Every process is a real ``python -m sector.master`` or
``python -m sector.slave`` child; readiness is signalled by the files the
servers write once listening and registered, never guessed with sleeps.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import certs
from .client import Client
from .config import RUN_FILE, read_run_file, sector_home
from .master.users import hash_password

DEFAULT_PORT = 6000
DEFAULT_USER, DEFAULT_PASSWORD = "test", "xxx"
ADMIN_USER, ADMIN_PASSWORD_FILE = "root", "root.password"
START_TIMEOUT = 30.0


class ClusterError(Exception):
    """The cluster could not start (or stop); the message says why and where to look."""


@dataclass
class Layout:
    """Where everything of one local cluster lives."""

    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def cert(self) -> Path:
        return self.conf / "master_node.cert"

    @property
    def master_home(self) -> Path:
        return self.home / "master"

    def slave_dir(self, number: int) -> Path:
        return self.home / "slaves" / str(number)

    @property
    def run_file(self) -> Path:
        return self.home / RUN_FILE


def write_conf(
    layout: Layout,
    port: int = DEFAULT_PORT,
    log_level: int = 3,
    heartbeat: float = 2.0,
    slave_timeout: float = 10.0,
) -> bool:
    """Write a complete, commented conf directory unless one exists; True if written."""
    conf = layout.conf
    if (conf / "master.conf").exists():
        return False
    (conf / "users").mkdir(parents=True, exist_ok=True)
    client_master = (
        f"MASTER_ADDRESS\n\t127.0.0.1:{port}"
        if port
        else "# MASTER_ADDRESS is not fixed (the master takes any free port): clients\n"
        "# find it in the cluster's run file, cluster.json"
    )
    certs.create(layout.cert, conf / "master_node.key")
    files = {
        "master.conf": f"""\
# Sector master configuration, written by `sector up`. Edit freely: it is reused.
# Format: a KEY line, then its value(s) on the following TAB-indented lines.

# port the master listens on for clients and slaves
SECTOR_PORT
\t{port}

# address to bind; 127.0.0.1 keeps this cluster private to this machine
BIND_ADDRESS
\t127.0.0.1

# where the master keeps its metadata database and log
DATA_DIRECTORY
\t{layout.master_home}

# copies of each file the master aims for
REPLICA_NUM
\t1

# seconds between slave heartbeats, and of silence before a slave is declared dead
HEARTBEAT_INTERVAL
\t{heartbeat}
SLAVE_TIMEOUT
\t{slave_timeout}

# slaves need at least this much free disk (MB) to be given new files
SLAVE_MIN_DISK_SPACE
\t16

# seconds a data token (a client's pass to one file on one slave) stays valid;
# clients renew expired read tokens by themselves
DATA_TOKEN_TTL
\t600

# 0 = no log ... 9 = every request
LOG_LEVEL
\t{log_level}
""",
        "slave.conf": f"""\
# Sector slave configuration, shared by the slaves `sector up` starts
# (each gets its own data directory on the command line).

# the master to register with
MASTER_ADDRESS
\t127.0.0.1:{port}

# address to bind; 0 below for the port means any free port
BIND_ADDRESS
\t127.0.0.1
SLAVE_PORT
\t0

# default data directory (overridden per slave by `sector up`)
DATA_DIRECTORY
\t{layout.home / "slaves" / "default"}

# most data (MB) this slave may store; 0 = no limit but the disk
MAX_DATA_SIZE
\t0

LOG_LEVEL
\t{log_level}
""",
        "client.conf": f"""\
# Sector client configuration: the defaults for `sector` commands and examples.
{client_master}
USERNAME
\t{DEFAULT_USER}
PASSWORD
\t{DEFAULT_PASSWORD}
CERTIFICATE
\t{layout.cert}
""",
        "replica.conf": """\
# Per-path replication rules (used once replication lands), e.g.
# REPLICATION_NUMBER
#\t/important/*\t3
""",
        "topology.conf": """\
# Network topology: one line per address range, IP-or-CIDR then a /L1/L2 path, e.g.
# 10.0.1.0/24\t/rack1
""",
        "master_acl.conf": """\
# IP addresses or CIDR ranges allowed to reach the master (empty: any)
127.0.0.1
""",
        "slave_acl.conf": """\
# IP addresses or CIDR ranges slaves may register from (empty: any)
127.0.0.0/8
""",
        f"users/{DEFAULT_USER}": f"""\
# Sector user account `{DEFAULT_USER}` (PySector's example user; password `{DEFAULT_PASSWORD}`).
# PASSWORD may be clear text or a hash written by `sector` tools; the master keeps only hashes.
PASSWORD
\t{hash_password(DEFAULT_PASSWORD)}
READ_PERMISSION
\t/
WRITE_PERMISSION
\t/
""",
    }
    root_password = secrets.token_urlsafe(18)
    files[f"users/{ADMIN_USER}"] = f"""\
# Sector administrator `{ADMIN_USER}`: may read and write everywhere and shut slaves down.
# Its password was generated at random; the clear text is only in {ADMIN_PASSWORD_FILE}.
PASSWORD
\t{hash_password(root_password)}
READ_PERMISSION
\t/
WRITE_PERMISSION
\t/
"""
    for name, text in files.items():
        (conf / name).write_text(text)
    # Readable by the cluster's owner only: it is the one clear-text password we keep.
    fd = os.open(conf / ADMIN_PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(root_password + "\n")
    return True


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    ready_file: Path
    stderr: Path


@dataclass
class LocalCluster:
    """Start, watch and stop a master and ``slaves`` slaves under ``home``."""

    home: Path = field(default_factory=sector_home)
    slaves: int = 3
    #: None: the conf's SECTOR_PORT (DEFAULT_PORT when the conf is new)
    port: int | None = None
    log_level: int = 3
    heartbeat: float = 2.0
    slave_timeout: float = 10.0
    detach: bool = False
    processes: list[Process] = field(default_factory=list)
    master_address: tuple[str, int] | None = None

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.home).expanduser().resolve())

    def start(self) -> None:
        layout = self.layout
        layout.home.mkdir(parents=True, exist_ok=True)
        write_conf(
            layout,
            DEFAULT_PORT if self.port is None else self.port,
            self.log_level,
            self.heartbeat,
            self.slave_timeout,
        )
        try:
            self.master_address = self._start_master()
            for number in range(1, self.slaves + 1):
                self.start_slave(number)
            self._write_run_file()
        except BaseException:
            self.stop()
            raise

    def _start_master(self) -> tuple[str, int]:
        layout = self.layout
        home = layout.master_home
        ready = home / "master.addr"
        process = self._spawn(
            "master",
            [
                "-m",
                "sector.master",
                "--conf",
                str(layout.conf),
                "--home",
                str(home),
                *([] if self.port is None else ["--port", str(self.port)]),
            ],
            home,
            ready,
        )
        text = self._wait_ready(process)
        host, port = text.split()[:2]
        return host, int(port)

    def start_slave(self, number: int) -> Process:
        """Start slave ``number`` (again, after a stop: same data directory)."""
        layout = self.layout
        assert self.master_address is not None
        data = layout.slave_dir(number)
        data.mkdir(parents=True, exist_ok=True)
        (data / "slave.registered").unlink(missing_ok=True)
        process = self._spawn(
            f"slave{number}",
            [
                "-m",
                "sector.slave",
                "--conf",
                str(layout.conf),
                "--data",
                str(data),
                "--master",
                "{}:{}".format(*self.master_address),
            ],
            data,
            data / "slave.registered",
        )
        self._wait_ready(process)
        return process

    def restart_master(self, kill: bool = True) -> None:
        """Stop the master (``kill -9`` by default) and start it again on the same port."""
        master = self.process("master")
        if kill:
            master.popen.kill()
        else:
            master.popen.terminate()
        master.popen.wait(timeout=START_TIMEOUT)
        self.processes.remove(master)
        assert self.master_address is not None
        saved_port, self.port = self.port, self.master_address[1]
        try:
            self._start_master()
        finally:
            self.port = saved_port
        self._write_run_file()

    def connect(self) -> Client:
        """A client logged in to this cluster as its default user (``test``)."""
        assert self.master_address is not None, "start the cluster first"
        client = Client(*self.master_address)
        client.login(DEFAULT_USER, DEFAULT_PASSWORD, self.layout.cert)
        return client

    def process(self, name: str) -> Process:
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)

    def _spawn(self, name: str, args: list[str], home: Path, ready: Path) -> Process:
        home.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        stderr_path = home / f"{name}.stderr"
        with open(stderr_path, "wb") as stderr:
            popen = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Own session: a terminal's Ctrl-C reaches only the launcher,
                # which then stops the children in order (slaves, then master).
                start_new_session=True,
            )
        process = Process(name, popen, ready, stderr_path)
        self.processes.append(process)
        return process

    def _wait_ready(self, process: Process) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.ready_file.exists():
                text = process.ready_file.read_text().strip()
                if text:
                    return text
            if process.popen.poll() is not None:
                message = (
                    process.stderr.read_text().strip() or f"exit code {process.popen.returncode}"
                )
                raise ClusterError(f"{process.name} failed to start: {message}")
            wait_for_change(process.ready_file, 0.05)
        raise ClusterError(
            f"{process.name} did not become ready within {START_TIMEOUT:.0f}s; see {process.stderr}"
        )

    def _write_run_file(self) -> None:
        assert self.master_address is not None
        state = {
            "master": "{}:{}".format(*self.master_address),
            "pids": {p.name: p.popen.pid for p in self.processes},
            "cert": str(self.layout.cert),
            "detached": self.detach,
        }
        self.layout.run_file.write_text(json.dumps(state, indent=2))

    def stop_process(self, name: str, kill: bool = False) -> None:
        process = self.process(name)
        _terminate(process.popen, kill)
        self.processes.remove(process)

    def stop(self) -> None:
        """Stop slaves, then the master; SIGKILL whatever ignores SIGTERM for 10 s."""
        for process in sorted(self.processes, key=lambda p: p.name == "master"):
            _terminate(process.popen, kill=False)
        self.processes.clear()
        self.layout.run_file.unlink(missing_ok=True)

    def wait(self, should_stop: Callable[[], bool]) -> str | None:
        """Block until ``should_stop()`` or a child exits; returns the dead child's name."""
        while not should_stop():
            for process in self.processes:
                if process.popen.poll() is not None:
                    return process.name
            time.sleep(0.2)  # a supervisor's poll interval, not a synchronisation guess
        return None

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _terminate(popen: subprocess.Popen, kill: bool) -> None:
    if popen.poll() is not None:
        return
    if kill:
        popen.kill()
    else:
        popen.terminate()
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)


def wait_for_change(path: Path, timeout: float) -> None:
    """Pause up to ``timeout`` while waiting for ``path`` to appear (a polling step)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def stop_detached(home: Path | None = None) -> list[str]:
    """Stop a cluster started with ``sector up --detach``; returns what was stopped.

    Slaves are all asked to stop at once, then the master, each group given
    10 seconds before SIGKILL. Only processes that still run a Sector server
    are signalled, so a PID reused since then is left alone.
    """
    state = read_run_file(home)
    if state is None:
        return []
    pids: dict[str, int] = state.get("pids", {})
    ours = {name: pid for name, pid in pids.items() if _is_sector_server(pid)}
    slaves = [name for name in ours if name != "master"]
    for group in (slaves, [name for name in ours if name == "master"]):
        for name in group:
            _signal(ours[name], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(pid_alive(ours[n]) for n in group) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the processes' exit, with a deadline
        for name in group:
            if pid_alive(ours[name]):
                _signal(ours[name], signal.SIGKILL)
    Layout(Path(home or sector_home()).expanduser().resolve()).run_file.unlink(missing_ok=True)
    return sorted(ours, key=lambda name: (name == "master", name))


def _is_sector_server(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and any(
            part in ("sector.master", "sector.slave") for part in process.cmdline()
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
