"""A whole Sector cluster on this machine, from one call: what ``sector up`` runs.

The state directory (``~/.sector`` unless ``--home``/``$SECTOR_HOME`` say
otherwise) holds a Sector-format ``conf/`` directory written on first use and
reused, unchanged, afterwards, so a person can edit it; the master's metadata
and log under ``master/``; and one data directory per slave under
``slaves/<n>/``. Every process is a real ``python -m sector.master`` or
``python -m sector.slave`` child; readiness is signalled by the files the
servers write once listening and registered, never guessed with sleeps. Its
slaves become members the way any slave does: ``sector up`` writes a fresh
join token beside ``slave.conf`` (it holds the master's key), and each slave
joins with it at its first start (see :mod:`sector.certs`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import certs, provision
from .client import Client
from .config import RUN_FILE, parse_address, read_run_file, sector_home
from .lifecycle import MASTER_READY
from .locks import MASTER_LOCK, SLAVE_LOCK, recorded_holder
from .master.users import hash_password
from .slave.server import REGISTERED_FILE

DEFAULT_PORT = 6000
DEFAULT_HTTP_PORT = 6080
DEFAULT_USER, DEFAULT_PASSWORD = "test", "xxx"
ADMIN_USER, ADMIN_PASSWORD_FILE = provision.ADMIN_USER, provision.ADMIN_PASSWORD_FILE
START_TIMEOUT = 30.0
#: The join token ``sector up`` writes each time it starts: its slaves join within minutes.
JOIN_TOKEN_VALIDITY = 3600.0


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
    scrub_rate: float = 4,
    replica_num: int = 1,
) -> bool:
    """Write a complete, commented conf directory unless one exists; True if written.

    This is the one-machine convenience: everything binds to 127.0.0.1, and
    PySector's example user ``test``/``xxx`` exists with that password in
    ``client.conf`` (mode 0600). ``sector conf init`` writes the directories
    of a real cluster, which carry neither.
    """
    conf = layout.conf
    if (conf / "master.conf").exists():
        # Written by an older `sector up` (0644)? A clear-text password is for us alone.
        for name in ("client.conf", provision.ADMIN_PASSWORD_FILE):
            path = conf / name
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(provision.SECRET_MODE)
        return False
    certs.create(layout.cert, conf / provision.KEY_NAME)
    public = {
        "master.conf": provision.MasterConf(
            port=port,
            bind="127.0.0.1",
            data_dir=layout.master_home,
            heartbeat=heartbeat,
            slave_timeout=slave_timeout,
            min_disk_mb=16,
            log_level=log_level,
            # the dashboard beside the master: 6080 beside 6000, any free port beside any
            http_port=DEFAULT_HTTP_PORT if port == DEFAULT_PORT else 0,
            replica_num=replica_num,
            title="Sector master configuration, written by `sector up`. Edit freely: it is reused.",
        ).text(),
        "slave.conf": provision.slave_conf(
            f"127.0.0.1:{port}",
            bind="127.0.0.1",
            data_dir=layout.home / "slaves" / "default",
            log_level=log_level,
            title="Sector slave configuration, shared by the slaves `sector up` starts\n"
            "# (each gets its own data directory, slaves/<n>, on the command line).",
            scrub_rate=scrub_rate,
        ),
        "replica.conf": provision.REPLICA_TEMPLATE,
        "topology.conf": provision.TOPOLOGY_TEMPLATE,
        "master_acl.conf": provision.acl_file("clients may log in from", ["127.0.0.1"]),
        "slave_acl.conf": provision.acl_file("slaves may register from", ["127.0.0.0/8"]),
    }
    for name, text in public.items():
        provision.write_file(conf / name, text)
    client = provision.client_conf(
        f"127.0.0.1:{port}" if port else None,
        DEFAULT_USER,
        DEFAULT_PASSWORD,
        layout.cert,
        title="Sector client configuration for the cluster `sector up` runs.",
    )
    provision.write_file(conf / "client.conf", client, secret=True)
    test_user = provision.UserFile(
        DEFAULT_USER,
        hash_password(DEFAULT_PASSWORD),
        read=["/"],
        write=["/"],
        note=f"PySector's example user, password `{DEFAULT_PASSWORD}` (local clusters only)",
    )
    provision.write_file(conf / "users" / DEFAULT_USER, test_user.text(), secret=True)
    provision.write_admin(conf)
    return True


class Adopted:
    """A server an earlier ``sector up`` started, now looked after by this one.

    It is not our child, so it is watched through psutil; it offers the few
    ``subprocess.Popen`` methods :class:`LocalCluster` uses, so an adopted
    server and a started one are handled alike.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:  # exited since it was found: reported as a failed start
            self._process = None

    def poll(self) -> int | None:
        if self.returncode is None and (self._process is None or not pid_alive(self.pid)):
            self.returncode = -1  # not our child: its exit status is not ours to read
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        try:
            if self._process is not None:
                self._process.wait(timeout)
        except psutil.TimeoutExpired:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0) from None
        except psutil.NoSuchProcess:
            pass
        self.returncode = -1 if self.returncode is None else self.returncode
        return self.returncode

    def _signal(self, number: int) -> None:
        try:
            if self._process is not None:
                self._process.send_signal(number)
        except psutil.NoSuchProcess:
            pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen | Adopted
    ready_file: Path
    stderr: Path

    @property
    def adopted(self) -> bool:
        return isinstance(self.popen, Adopted)


@dataclass(frozen=True)
class Running:
    """A server of a home found running: it holds the lock of one of the home's directories."""

    name: str
    pid: int
    directory: Path

    def cmdline_option(self, option: str) -> str | None:
        """The value the server was started with for ``option`` (``--master``), if any."""
        try:
            args = psutil.Process(self.pid).cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        for index, arg in enumerate(args):
            if arg == option and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(option + "="):
                return arg.split("=", 1)[1]
        return None


def running_servers(layout: Layout) -> dict[str, Running]:
    """Every server now serving a directory of this home on this machine, by name.

    The locks decide (see :mod:`sector.locks`): a process counts when the pid a
    lock file records is alive *and* has that lock file open, so neither a
    stale record nor a reused pid is mistaken for a server. Processes a run
    file forgot (an earlier ``sector up`` whose master was killed, a slave
    started by hand on ``slaves/<n>``) are found all the same.
    """
    candidates = [("master", layout.master_home, MASTER_LOCK)]
    slaves = layout.home / "slaves"
    if slaves.is_dir():
        for directory in sorted(slaves.iterdir(), key=_slave_order):
            if directory.is_dir():
                candidates.append((_slave_name(directory.name), directory, SLAVE_LOCK))
    found: dict[str, Running] = {}
    for name, directory, lock_name in candidates:
        holder = recorded_holder(directory / lock_name)
        if holder is None or holder.host != socket.gethostname():
            continue  # on another machine (a shared mount): its own lock guards it
        if _holds_open(holder.pid, directory / lock_name):
            found[name] = Running(name, holder.pid, directory)
    return found


def _slave_name(directory_name: str) -> str:
    return f"slave{directory_name}" if directory_name.isdigit() else f"slave:{directory_name}"


def _slave_order(directory: Path) -> tuple[int, str]:
    return (int(directory.name), "") if directory.name.isdigit() else (1 << 30, directory.name)


def _holds_open(pid: int, path: Path) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        target = str(path.resolve())
        return any(f.path == target for f in process.open_files())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another user's live process: assume the worst, its lock will tell


@dataclass
class LocalCluster:
    """Start, watch and stop a master and ``slaves`` slaves under ``home``.

    Servers of this home that are already running (after a launcher or a
    master was killed) are adopted rather than duplicated: a dead master is
    started again on the port the running slaves expect, and missing slaves
    are started beside the running ones.
    """

    home: Path = field(default_factory=sector_home)
    slaves: int = 3
    #: None: the conf's SECTOR_PORT (DEFAULT_PORT when the conf is new)
    port: int | None = None
    log_level: int = 3
    heartbeat: float = 2.0
    slave_timeout: float = 10.0
    #: MB/s of the slaves' background scrub (SCRUB_RATE), for a conf written now
    scrub_rate: float = 4
    #: REPLICA_NUM of a new conf; None: 2 with two slaves or more, else 1
    replicas: int | None = None
    #: The address slave ``n`` binds to is ``slave_hosts[n - 1]`` (default: the conf's,
    #: 127.0.0.1): 127.0.0.2, .3 ... give each slave its own host, for topology.conf
    slave_hosts: list[str] = field(default_factory=list)
    #: the pid of a ``sector up`` supervising this cluster in the foreground, recorded
    #: in the run file so that another ``sector up`` or ``sector down`` can find it
    launcher: int | None = None
    processes: list[Process] = field(default_factory=list)
    master_address: tuple[str, int] | None = None
    #: Whether start() wrote a new conf directory (False: an existing one was reused).
    wrote_conf: bool = False
    #: The master's dashboard, "" when its HTTP_PORT is not set.
    dashboard_url: str = ""

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.home).expanduser().resolve())

    @property
    def replica_num(self) -> int:
        """REPLICA_NUM for a new conf: two copies as soon as there are two slaves."""
        if self.replicas is not None:
            return self.replicas
        return 2 if self.slaves >= 2 else 1

    @property
    def adopted(self) -> list[str]:
        return [p.name for p in self.processes if p.adopted]

    @property
    def started(self) -> list[str]:
        return [p.name for p in self.processes if not p.adopted]

    def start(self) -> None:
        layout = self.layout
        layout.home.mkdir(parents=True, exist_ok=True)
        self.wrote_conf = write_conf(
            layout,
            DEFAULT_PORT if self.port is None else self.port,
            self.log_level,
            self.heartbeat,
            self.slave_timeout,
            self.scrub_rate,
            self.replica_num,
        )
        # a fresh join token beside slave.conf: a new slave joins with it at its first start
        provision.write_join_token(layout.conf, layout.conf, JOIN_TOKEN_VALIDITY)
        running = running_servers(layout)
        master = running.pop("master", None)
        try:
            if master is not None:
                self._master_ready(self._adopt(master, MASTER_READY))
            else:
                # The running slaves still count themselves registered with the dead
                # master until a heartbeat fails; the file each writes once registered
                # with the new one is what we wait for below.
                for slave in running.values():
                    (slave.directory / REGISTERED_FILE).unlink(missing_ok=True)
                self._start_master(self._port_for(running))
            for slave in running.values():
                self._adopt(slave, REGISTERED_FILE)
            for number in range(1, self.slaves + 1):
                if f"slave{number}" not in running:
                    self.start_slave(number)
            self._write_run_file()
        except BaseException:
            self._stop_started()
            raise

    def _port_for(self, running: dict[str, Running]) -> int | None:
        """The port a new master takes: the one running slaves expect, if any."""
        expected = {
            address
            for slave in running.values()
            if (address := slave.cmdline_option("--master")) is not None
        }
        if not expected:
            return self.port
        if len(expected) > 1:
            raise ClusterError(
                f"the running slaves of {self.layout.home} expect masters at "
                f"{', '.join(sorted(expected))}; `sector down` stops them all"
            )
        address = expected.pop()
        try:
            port = parse_address(address)[1]
        except ValueError as exc:
            raise ClusterError(f"running slaves expect the master at {address}: {exc}") from None
        if self.port not in (None, 0, port):
            raise ClusterError(
                f"slaves of {self.layout.home} are running and expect the master on port {port}: "
                f"run `sector up --port {port}`, or `sector down` first"
            )
        return port

    def _master_ready(self, text: str) -> None:
        """Read the master's ready file: ``host port pid [dashboard URL]``."""
        fields = text.split()
        self.master_address = (fields[0], int(fields[1]))
        self.dashboard_url = fields[3] if len(fields) > 3 else ""

    def _start_master(self, port: int | None) -> None:
        layout = self.layout
        home = layout.master_home
        ready = home / MASTER_READY
        process = self._spawn(
            "master",
            [
                "-m",
                "sector.master",
                "--conf",
                str(layout.conf),
                "--home",
                str(home),
                "--no-log-stderr",
                *([] if port is None else ["--port", str(port)]),
            ],
            home,
            ready,
        )
        self._master_ready(self._wait_ready(process))

    def _adopt(self, server: Running, ready_name: str) -> str:
        """Take a running server into this cluster once it is ready; its ready file's text."""
        directory = server.directory
        stderr = directory / f"{server.name}.stderr"
        process = Process(server.name, Adopted(server.pid), directory / ready_name, stderr)
        self.processes.append(process)
        return self._wait_ready(process)

    def start_slave(self, number: int) -> Process:
        """Start slave ``number`` (again, after a stop: same data directory)."""
        layout = self.layout
        assert self.master_address is not None
        data = layout.slave_dir(number)
        data.mkdir(parents=True, exist_ok=True)
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
                "--no-log-stderr",
                *(
                    ["--bind", self.slave_hosts[number - 1]]
                    if number <= len(self.slave_hosts)
                    else []
                ),
            ],
            data,
            data / REGISTERED_FILE,
        )
        self._wait_ready(process)
        return process

    def restart_master(
        self, kill: bool = True, meanwhile: Callable[[], object] | None = None
    ) -> None:
        """Stop the master (``kill -9`` by default) and start it again on the same port;
        ``meanwhile`` runs while it is down (a test's fault: a lost metadata file...)."""
        master = self.process("master")
        if kill:
            master.popen.kill()
        else:
            master.popen.terminate()
        master.popen.wait(timeout=START_TIMEOUT)
        self.processes.remove(master)
        if meanwhile is not None:
            meanwhile()
        assert self.master_address is not None
        self._start_master(self.master_address[1])
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
                message = _last_line(process.stderr) or f"exit code {process.popen.returncode}"
                raise ClusterError(f"{process.name} failed to start: {message}")
            wait_for_change(process.ready_file, 0.05)
        raise ClusterError(
            f"{process.name} did not become ready within {START_TIMEOUT:.0f}s; see {process.stderr}"
        )

    def _write_run_file(self) -> None:
        assert self.master_address is not None
        state = {
            "master": "{}:{}".format(*self.master_address),
            "dashboard": self.dashboard_url,
            "pids": {p.name: p.popen.pid for p in self.processes},
            "cert": str(self.layout.cert),
        }
        if self.launcher is not None:
            state["launcher"] = self.launcher
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

    def _stop_started(self) -> None:
        """After a failed start: stop what this call started, leave what it adopted running."""
        for process in sorted(self.processes, key=lambda p: p.name == "master"):
            if not process.adopted:
                _terminate(process.popen, kill=False)
        self.processes.clear()

    def wait(self, should_stop: Callable[[], bool]) -> str | None:
        """Block until ``should_stop()`` or a server exits; returns the dead server's name."""
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


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _terminate(popen: subprocess.Popen | Adopted, kill: bool) -> None:
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


def launcher_pid(home: Path) -> int | None:
    """The pid of a ``sector up`` running this home's cluster in the foreground, if one is.

    A pid reused since by another program is not taken for it: the process
    must still be a ``sector ... up`` command.
    """
    state = read_run_file(home) or {}
    pid = state.get("launcher")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    try:
        args = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid if "up" in args and any("sector" in arg for arg in args) else None


def stop_home(home: Path | None = None) -> list[str]:
    """Stop every server of a home - those ``sector up`` started and any orphans; their names.

    A foreground ``sector up`` is asked to stop first (it stops its servers in
    order); then every server still holding a lock in the home, and any the
    run file names, gets SIGTERM: slaves all at once, then the master, each
    group given 10 seconds before SIGKILL. Only processes proven to be this
    home's servers are signalled, so a pid reused since is left alone.
    """
    layout = Layout(Path(home or sector_home()).expanduser().resolve())
    stopped: list[str] = []
    launcher = launcher_pid(layout.home)
    if launcher is not None:
        _stop_pids({"launcher": launcher}, grace=START_TIMEOUT)
    servers = {name: server.pid for name, server in running_servers(layout).items()}
    state = read_run_file(layout.home) or {}
    for name, pid in (state.get("pids") or {}).items():
        if name not in servers and _is_sector_server(pid):
            servers[name] = pid
    slaves = {name: pid for name, pid in servers.items() if name != "master"}
    stopped += _stop_pids(slaves)
    stopped += _stop_pids({n: p for n, p in servers.items() if n == "master"})
    layout.run_file.unlink(missing_ok=True)
    return stopped


def _stop_pids(pids: dict[str, int], grace: float = 10.0) -> list[str]:
    """SIGTERM each, wait up to ``grace`` seconds for all, SIGKILL the rest; their names."""
    for pid in pids.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the processes' exit, with a deadline
    for pid in pids.values():
        if pid_alive(pid):
            _signal(pid, signal.SIGKILL)
    return sorted(pids, key=lambda name: (name == "master", server_order(name)))


def server_order(name: str) -> tuple[bool, int, str]:
    """Sort key for server names: master, slave1, slave2, ..., slave10, other slaves."""
    number = name.removeprefix("slave")
    return (name != "master", int(number) if number.isdigit() else 1 << 30, name)


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
