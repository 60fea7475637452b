"""No peer can exhaust a server: memory, descriptors and patience are all bounded.

Issue 9, findings 2 and 3: a slave allocated each frame's announced length
before any of it arrived (30 four-byte headers: 34 MB -> 1.95 GB), a master
buffered 64 MiB per connection before any login, and 2,000 idle connections
under a 1,024-descriptor limit killed a slave's accept loop for good while the
master still listed it alive.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sector.client import Client
from sector.cluster import Layout, LocalCluster, write_conf
from sector.master.connection import GREETING_TIMEOUT
from sector.protocol.framing import HEADER, encode
from sector.protocol.master import Login
from sector.protocol.messages import PROTOCOL_VERSION, READ, WRITE
from tests.support import (
    PASSWORD,
    USER,
    admin,
    closed_by_peer,
    connect,
    master_socket,
    slave_addresses,
    wait_until,
)

MiB = 1024 * 1024


def _cluster(home: Path, **slave_conf: str) -> LocalCluster:
    """A private cluster of one slave, with these keys added to its slave.conf."""
    layout = Layout(home)
    write_conf(layout, port=0, heartbeat=0.2, slave_timeout=2.0)
    conf = layout.conf / "slave.conf"
    conf.write_text(
        conf.read_text() + "".join(f"{key}\n\t{value}\n" for key, value in slave_conf.items())
    )
    cluster = LocalCluster(home=home, slaves=1, port=0, heartbeat=0.2, slave_timeout=2.0)
    cluster.start()
    return cluster


@pytest.fixture
def one_slave(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = _cluster(tmp_path / "home")
    yield cluster
    cluster.stop()


def _slave_process(cluster: LocalCluster) -> psutil.Process:
    return psutil.Process(cluster.process("slave1").popen.pid)


def _round_trip(cluster: LocalCluster, name: str) -> None:
    """A normal client writes and reads a file: the cluster serves."""
    with connect(cluster) as client:
        with client.open(name, WRITE) as handle:
            handle.write(b"served " * 1000)
        with client.open(name, READ) as handle:
            assert handle.read() == b"served " * 1000


def test_headers_announcing_64_mib_cost_the_slave_almost_nothing(
    one_slave: LocalCluster,
) -> None:
    process = _slave_process(one_slave)
    address = slave_addresses(one_slave)[0]
    _round_trip(one_slave, "/warm-up")  # the slave's own buffers, made before measuring
    before = process.memory_info().rss
    attackers = [socket.create_connection(address, timeout=10) for _ in range(30)]
    try:
        for sock in attackers:
            sock.sendall(HEADER.pack(64 * MiB) + b"a few bytes")
        _round_trip(one_slave, "/meanwhile")  # the slave has read them all by now
        grown = process.memory_info().rss - before
        assert grown < 32 * MiB, f"the slave grew by {grown / MiB:.0f} MiB"
    finally:
        for sock in attackers:
            sock.close()


def test_a_slave_at_its_descriptor_limit_keeps_serving_and_says_so(
    one_slave: LocalCluster,
) -> None:
    """2,000 idle connections to a slave limited to 1,024 descriptors."""
    process = _slave_process(one_slave)
    process.rlimit(psutil.RLIMIT_NOFILE, (1024, 1024))
    address = slave_addresses(one_slave)[0]
    held: list[socket.socket] = []
    try:
        held = _flood(address, 2000)
        with admin(one_slave) as root:
            wait_until(
                lambda: root.sysinfo()["slaves"][0]["status"] == "unhealthy",
                what="the master to hear that the slave cannot accept",
            )
            trouble = root.sysinfo()["slaves"][0]["trouble"]
            assert trouble.startswith("cannot accept connections: Too many open files")
            assert process.is_running() and process.status() != psutil.STATUS_ZOMBIE
            for sock in held:
                sock.close()
            held.clear()
            wait_until(
                lambda: root.sysinfo()["slaves"][0]["status"] == "alive",
                what="the slave to accept again",
            )
        _round_trip(one_slave, "/after-the-flood")
    finally:
        for sock in held:
            sock.close()


def test_an_unidentified_peer_may_send_only_a_small_frame_to_the_master(
    one_slave: LocalCluster,
) -> None:
    rss = psutil.Process(one_slave.process("master").popen.pid).memory_info().rss
    for announced in (60 * MiB, 128 * 1024):
        with master_socket(one_slave) as sock:
            sock.sendall(HEADER.pack(announced) + b"x" * 1000)
            assert closed_by_peer(sock)
    with master_socket(one_slave) as sock:  # a session's frames are small too
        sock.sendall(encode(Login(PROTOCOL_VERSION, USER, PASSWORD)))
        sock.recv(4096)
        sock.sendall(HEADER.pack(2 * MiB) + b"x" * 1000)
        assert closed_by_peer(sock)
    after = psutil.Process(one_slave.process("master").popen.pid).memory_info().rss
    assert after - rss < 16 * MiB
    _round_trip(one_slave, "/still")


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = _cluster(tmp_path / "home", IDLE_TIMEOUT="1", STALL_TIMEOUT="1")
    yield cluster
    cluster.stop()


def test_silent_and_idle_data_connections_are_closed_but_a_write_waits(
    impatient: LocalCluster,
) -> None:
    address = slave_addresses(impatient)[0]
    with connect(impatient) as client:
        writer = client.open("/slow-writer", WRITE)
        writer.write(b"begun")
        writer.flush()
        with socket.create_connection(address, timeout=30) as silent:
            assert closed_by_peer(silent)  # after STALL_TIMEOUT: it never said anything
        with socket.create_connection(address, timeout=30) as halfway:
            halfway.sendall(HEADER.pack(100))
            assert closed_by_peer(halfway)  # a frame begun and not finished
        writer.write(b" and finished, long after")  # the write session was left alone
        writer.close()
        with client.open("/slow-writer", READ) as handle:
            assert handle.read() == b"begun and finished, long after"


def test_a_pooled_connection_the_slave_closed_is_not_handed_out_again(
    impatient: LocalCluster,
) -> None:
    with connect(impatient) as client:
        with client.open("/pooled", WRITE) as handle:
            handle.write(b"once")
        address = slave_addresses(impatient)[0]
        pooled = _pooled(client, address)
        wait_until(lambda: closed_by_peer_quietly(pooled), what="the slave to close it")
        with client.open("/pooled", READ) as handle:  # one replica: it must not be given up
            assert handle.read() == b"once"


def _pooled(client: Client, address: tuple[str, int]) -> socket.socket:
    sock = client.data_connection(address)
    client.release_connection(address, sock)
    return sock


def closed_by_peer_quietly(sock: socket.socket) -> bool:
    """Whether the peer closed ``sock``, without consuming anything or waiting."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


def _flood(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections begun to ``address`` that will never say a word."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        if sock.connect_ex(address) not in (0, errno.EINPROGRESS):
            sock.close()
            continue
        held.append(sock)
    return held


def test_a_master_at_its_descriptor_limit_keeps_serving_and_drops_the_silent(
    one_slave: LocalCluster,
) -> None:
    """2,000 idle connections to a master limited to 256 descriptors (the kernel queues
    only a few hundred connections at a time: a lower limit than the slave's is needed
    to reach it): the sessions it has go on, the peers that never greet are dropped
    (TLS handshake, then login, each within GREETING_TIMEOUT), and it takes new logins
    once the flood has gone."""
    master = psutil.Process(one_slave.process("master").popen.pid)
    master.rlimit(psutil.RLIMIT_NOFILE, (256, 256))
    assert one_slave.master_address is not None
    held: list[socket.socket] = []
    try:
        with connect(one_slave) as client, admin(one_slave) as root:
            silent = master_socket(one_slave, timeout=3 * GREETING_TIMEOUT)  # greets never
            held = _flood(one_slave.master_address, 2000)
            wait_until(lambda: master.num_fds() >= 250, what="the master to run out")
            with client.open("/during-the-flood", WRITE) as handle:
                handle.write(b"served meanwhile")
            assert client.stat("/during-the-flood").size == 16
            assert root.sysinfo()["slaves"][0]["status"] == "alive"
            assert closed_by_peer(silent)
            silent.close()
            for sock in held:
                sock.close()
            held.clear()
        assert master.is_running() and master.status() != psutil.STATUS_ZOMBIE
        _round_trip(one_slave, "/after-the-flood")  # a new connection, a new login
    finally:
        for sock in held:
            sock.close()
