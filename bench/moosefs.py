"""The peer: MooseFS 3 (master + one chunkserver + FUSE mount) on 127.0.0.1, started by us.

Built on ``shared/peers/moosefs_and_baselines.sh``. MooseFS refuses 127.x for
the chunkserver-to-master link (hard-coded checks in the chunkserver and
master), so the traffic is kept on loopback the way that script does it: the
chunkserver dials MASTER_HOST=0.0.0.0 while bound to 127.0.0.1 (Linux routes
0.0.0.0 to the local host), and the master remaps the chunkserver's 127.0.0.1
to 0.0.0.0 (REMAP_BITS=32) so the client dials 0.0.0.0:port -> 127.0.0.1:port.
Goal 1 (one copy), trash time 0, default mount options (fsync before close);
:meth:`MooseFS.add_chunkserver` and :meth:`MooseFS.set_goal` make a second copy
possible, for the replication figures (goal 2 beside Sector's 2 replicas).
Everything started here is stopped by PID and unmounted in :meth:`stop`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil

from .common import log

PACKAGES = ("moosefs-master", "moosefs-chunkserver", "moosefs-client", "iperf3")
BINARIES = ("mfsmaster", "mfschunkserver", "mfsmount", "mfssetgoal", "mfssettrashtime")


class PeerUnavailable(Exception):
    """MooseFS cannot run here; the message says why (printed as the skip reason)."""


def _installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in done.stdout


def install() -> None:
    """apt-get install the peer packages (and iperf3) when missing; raise PeerUnavailable."""
    if shutil.which("dpkg-query") is None:
        raise PeerUnavailable("not a Debian system (no dpkg): cannot install MooseFS")
    missing = [p for p in PACKAGES if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise PeerUnavailable(f"{' '.join(missing)} not installed and we are not root")
    log(f"apt-get install {' '.join(missing)}")
    # keep the packages' postinst scripts from starting daemons with stock (0.0.0.0) configs
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"],
                       env=env, capture_output=True, check=False, timeout=900)
        done = subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", *missing],
            env=env, capture_output=True, text=True, check=False, timeout=1800,
        )
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"apt-get install failed: {done.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        for c in psutil.net_connections(kind="tcp")
    )


class MooseFS:
    """One MooseFS cluster under ``root``: :meth:`start`, use :attr:`mount`, :meth:`stop`."""

    def __init__(self, root: Path):
        self.root = root
        self.mount = root / "mnt"
        self.procs: dict[str, subprocess.Popen] = {}
        self.chunkservers = 0
        self.ports = {name: _free_port() for name in ("ml", "cs", "cl", "csserv")}

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def start(self) -> None:
        for binary in BINARIES:
            if shutil.which(binary) is None:
                raise PeerUnavailable(f"{binary} not found after installing {PACKAGES}")
        if not os.path.exists("/dev/fuse"):
            raise PeerUnavailable("/dev/fuse is missing: cannot mount MooseFS")
        try:
            self._start()
        except PeerUnavailable:
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.root / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)

    def _wait(self, what: str, condition, seconds: float, logfile: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                tail = (self.root / logfile).read_text(errors="replace")[-600:]
                raise PeerUnavailable(f"MooseFS: {what} (log tail: {tail!r})")
            time.sleep(0.1)

    def _start(self) -> None:
        root, ports = self.root, self.ports
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (root.parent, root):  # the daemons run as user mfs: let them traverse
            folder.chmod(folder.stat().st_mode | 0o755)
        (root / "master").mkdir()
        self.mount.mkdir()
        empty = Path("/var/lib/mfs/metadata.mfs.empty")
        if empty.exists():
            shutil.copy(empty, root / "master" / "metadata.mfs")
        else:
            (root / "master" / "metadata.mfs").write_bytes(b"MFSM NEW")
        (root / "mfsexports.cfg").write_text("127.0.0.1  /  rw,alldirs,admin,maproot=0:0\n")
        (root / "mfstopology.cfg").write_text("")
        (root / "mfsmaster.cfg").write_text(
            f"DATA_PATH = {root / 'master'}\n"
            f"EXPORTS_FILENAME = {root / 'mfsexports.cfg'}\n"
            f"TOPOLOGY_FILENAME = {root / 'mfstopology.cfg'}\n"
            f"MATOML_LISTEN_HOST = 127.0.0.1\nMATOML_LISTEN_PORT = {ports['ml']}\n"
            f"MATOCS_LISTEN_HOST = 127.0.0.1\nMATOCS_LISTEN_PORT = {ports['cs']}\n"
            f"MATOCL_LISTEN_HOST = 127.0.0.1\nMATOCL_LISTEN_PORT = {ports['cl']}\n"
            "REMAP_BITS = 32\nREMAP_SOURCE_IP_CLASS = 127.0.0.1\n"
            "REMAP_DESTINATION_IP_CLASS = 0.0.0.0\n"
        )
        (root / "mfsmount.cfg").write_text("")
        subprocess.run(["chown", "-R", "mfs:mfs", str(root / "master")], check=True)
        self._spawn("mfsmaster", ["mfsmaster", "-f", "-c", str(root / "mfsmaster.cfg")])
        self._wait("mfsmaster did not listen", lambda: _listening(ports["cl"]), 30,
                   "mfsmaster.log")
        self.add_chunkserver()
        self._spawn("mfsmount", ["mfsmount", "-f", str(self.mount), "-H", "127.0.0.1", "-P",
                                 str(ports["cl"]), "-o", f"mfscfgfile={root / 'mfsmount.cfg'}"])
        self._wait("mfsmount did not mount", lambda: os.path.ismount(self.mount), 15,
                   "mfsmount.log")
        subprocess.run(["mfssettrashtime", "-r", "0", str(self.mount)], capture_output=True,
                       check=False)
        subprocess.run(["mfssetgoal", "-r", "1", str(self.mount)], capture_output=True,
                       check=True)
        warm = self.mount / "warmup.bin"  # first chunk creation on a fresh cluster: untimed
        with open(warm, "wb") as out:
            out.write(os.urandom(16 * 1024 * 1024))
            out.flush()
            os.fsync(out.fileno())
        warm.unlink()

    def add_chunkserver(self) -> None:
        """Start one more chunkserver (its own data, port and log), and wait for it."""
        root, number = self.root, self.chunkservers + 1
        name = "cs" if number == 1 else f"cs{number}"
        data = root / name
        (data / "hdd").mkdir(parents=True)
        port = self.ports["csserv"] if number == 1 else _free_port()
        (root / f"{name}.hdd.cfg").write_text(f"{data / 'hdd'}\n")
        (root / f"{name}.cfg").write_text(
            f"DATA_PATH = {data}\nHDD_CONF_FILENAME = {root / f'{name}.hdd.cfg'}\n"
            f"BIND_HOST = 127.0.0.1\nMASTER_HOST = 0.0.0.0\n"
            f"MASTER_PORT = {self.ports['cs']}\n"
            f"CSSERV_LISTEN_HOST = 127.0.0.1\nCSSERV_LISTEN_PORT = {port}\n"
        )
        subprocess.run(["chown", "-R", "mfs:mfs", str(data)], check=True)
        process = "mfschunkserver" if number == 1 else f"mfschunkserver{number}"
        self._spawn(process, ["mfschunkserver", "-f", "-c", str(root / f"{name}.cfg")])
        self._wait(
            f"chunkserver {number} did not register",
            lambda: (root / "mfsmaster.log").read_bytes().count(b"register end") >= number,
            30,
            "mfsmaster.log",
        )
        self.chunkservers = number

    def set_goal(self, folder: Path, goal: int, timeout: float = 60.0) -> None:
        """Keep ``goal`` copies of every chunk under ``folder`` (MooseFS's REPLICA_NUM), and
        wait until a new file there is written with that many at once.

        A chunkserver just started reports no space for a while, and a file written
        meanwhile gets fewer copies, made up later by the master's slow chunk loop
        (minutes): measured writes must not start before every copy is written
        with them.
        """
        subprocess.run(["mfssetgoal", "-r", str(goal), str(folder)], capture_output=True,
                       check=True)
        probe = folder / ".goal-probe"
        deadline = time.monotonic() + timeout
        while True:
            with open(probe, "wb") as out:
                out.write(os.urandom(1024 * 1024))
                out.flush()
                os.fsync(out.fileno())
            info = subprocess.run(["mfsfileinfo", str(probe)], capture_output=True, text=True,
                                  check=False).stdout
            probe.unlink()
            if info.count("copy ") >= goal:
                return
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"MooseFS wrote fewer than {goal} copies: {info!r}")
            time.sleep(0.5)  # the new chunkserver's space report comes on its own time

    def stop(self) -> None:
        if os.path.ismount(self.mount):
            for command in (["umount", str(self.mount)], ["fusermount3", "-u", str(self.mount)],
                            ["umount", "-l", str(self.mount)]):
                if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                    break
        chunkservers = sorted(n for n in self.procs if n.startswith("mfschunkserver"))
        for name in ("mfsmount", *chunkservers, "mfsmaster"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=60 if name == "mfsmaster" else 20)
            except subprocess.TimeoutExpired:
                log(f"{name} ({proc.pid}) did not stop: SIGKILL")
                proc.kill()
                proc.wait()

    def check_loopback(self) -> int:
        """How many of the peer's established sockets have a non-127.0.0.1 end (want 0)."""
        ports = set(self.ports.values())
        bad = 0
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status != psutil.CONN_ESTABLISHED or not conn.raddr:
                continue
            if conn.laddr.port in ports or conn.raddr.port in ports:
                bad += conn.laddr.ip != "127.0.0.1" or conn.raddr.ip != "127.0.0.1"
        return bad
