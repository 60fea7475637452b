"""Helpers every test may use: the test account, waiting on conditions, making test data.

A real module (``from tests.support import ...``), where ``conftest.py`` holds
only fixtures: pytest loads conftest files itself, and importing one as a
module as well would run it twice under two names.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sector import certs
from sector.client import Client
from sector.cluster import DEFAULT_PASSWORD, DEFAULT_USER, LocalCluster, write_conf
from sector.provision import set_values

T = TypeVar("T")

#: The account ``sector up`` (and every test cluster) creates.
USER, PASSWORD = DEFAULT_USER, DEFAULT_PASSWORD


def connect(cluster: LocalCluster) -> Client:
    """A client logged in to ``cluster`` as :data:`USER`."""
    return cluster.connect()


def root_password(cluster: LocalCluster) -> str:
    """The administrator's password, which ``sector up`` keeps in ``conf/root.password``."""
    return (cluster.layout.conf / "root.password").read_text().strip()


def admin(cluster: LocalCluster) -> Client:
    """A client logged in to ``cluster`` as the administrator ``root``."""
    assert cluster.master_address is not None
    client = Client(*cluster.master_address)
    client.login("root", root_password(cluster), cluster.layout.cert)
    return client


def slave_addresses(cluster: LocalCluster) -> list[tuple[str, int]]:
    """(host, port) of each slave the cluster started, from the ready files they write
    (``sysinfo`` shows addresses to administrators only)."""
    found = []
    for process in cluster.processes:
        if process.name.startswith("slave"):
            ready = process.ready_file.with_name("slave.addr").read_text().split()
            found.append((ready[0], int(ready[1])))
    return found


def start_cluster(
    home: Path,
    slaves: int = 3,
    *,
    replicas: int | None = None,
    master_conf: dict[str, str] | None = None,
    conf_files: dict[str, str] | None = None,
    slave_hosts: list[str] | None = None,
    scrub_rate: float = 0,
) -> LocalCluster:
    """A running test cluster: quick heartbeats, a short slave timeout, verbose logs.

    ``replicas`` is REPLICA_NUM (default: ``sector up``'s, 2 with two slaves or
    more); ``master_conf`` sets more master.conf keys (short timeouts for a test),
    ``conf_files`` writes whole files of the conf directory (topology.conf ...),
    and ``slave_hosts`` gives slave n the address ``slave_hosts[n - 1]``.

    No background scrub unless asked for (``scrub_rate``, MB/s): tests that damage
    a replica on disk decide who finds it.
    """
    cluster = LocalCluster(
        home=home,
        slaves=slaves,
        port=0,
        log_level=5,
        heartbeat=0.2,
        slave_timeout=2.0,
        replicas=replicas,
        slave_hosts=slave_hosts or [],
        scrub_rate=scrub_rate,
    )
    layout = cluster.layout
    write_conf(layout, 0, 5, 0.2, 2.0, scrub_rate, cluster.replica_num)
    master = layout.conf / "master.conf"
    for key, value in (master_conf or {}).items():
        master.write_text(set_values(master.read_text(), key, [value]))
    for name, text in (conf_files or {}).items():
        (layout.conf / name).write_text(text)
    cluster.start()
    return cluster


def wait_until(condition: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # poll interval; the deadline above bounds the wait


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end hung up (reads nothing more, or reset the connection)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes (NULs included, by chance) to ``path``; return the sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * 1024 * 1024))
            out.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def processes_of(home: Path) -> list[int]:
    """Pids of the live processes whose command line names ``home`` (or a path in it)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        info = process.info
        if info["status"] == psutil.STATUS_ZOMBIE or not info["cmdline"]:
            continue
        if any(str(home) in arg for arg in info["cmdline"]):
            found.append(info["pid"])
    return found


def master_socket(
    cluster: LocalCluster, member: tuple[Path, Path] | None = None, timeout: float = 10
) -> ssl.SSLSocket:
    """A raw TLS connection to the cluster's master, as any peer can open one; with
    ``member`` (a certificate and its key), showing that certificate."""
    context = ssl.create_default_context(cafile=str(cluster.layout.cert))
    context.check_hostname = False
    if member is not None:
        context.load_cert_chain(*map(str, member))
    assert cluster.master_address is not None
    raw = socket.create_connection(cluster.master_address, timeout=timeout)
    return context.wrap_socket(raw)


def issue_member(cluster: LocalCluster, directory: Path, name: str) -> tuple[Path, Path]:
    """A slave certificate for ``name`` issued with the cluster's own key, as a join
    would give one: (certificate, key) files in ``directory``."""
    conf = cluster.layout.conf
    authority = certs.Authority.load(conf / "master_node.cert", conf / "master_node.key")
    key = directory / f"{name}.key"
    request = certs.make_request(key, name)
    cert = directory / f"{name}.cert"
    cert.write_bytes(authority.issue(request, name))
    return cert, key
