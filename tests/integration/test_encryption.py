"""Encrypted data connections: SF_MODE.SECURE per file, DATA_ENCRYPTION per cluster.

A slave serves plain TCP and TLS on one port (told apart by the first byte),
with its membership certificate; a client accepts only a slave certificate the
master issued. Plain connections stay zero-copy; see the README for the cost.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector import certs, errors
from sector.client import Client
from sector.cluster import Layout, LocalCluster, write_conf
from sector.protocol.data import Read
from sector.protocol.framing import encode
from sector.protocol.master import Open
from sector.protocol.messages import HIRELIABLE, READ, SECURE, TRUNC, WRITE, Error, replies_to
from sector.transport import recv_body
from tests.support import PASSWORD, USER, connect, slave_addresses, wait_until

MiB = 1024 * 1024


def test_a_secure_file_travels_over_tls_both_ways(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    data = os.urandom(3 * MiB + 123)
    with client.open(f"{workdir}/secret", WRITE | TRUNC | SECURE) as handle:
        assert isinstance(handle._sock, ssl.SSLSocket)
        handle.write(data)
    client.close()  # no pooled connection left: what follows shows which kind is made
    client.login(USER, PASSWORD, cluster.layout.cert)
    with client.open(f"{workdir}/secret", READ | SECURE) as handle:
        assert handle.read() == data
    assert _pooled(client) == {True}  # the read's connection went back to the pool: TLS
    with client.open(f"{workdir}/secret", READ) as handle:  # the same file, in clear
        assert handle.read() == data
    assert _pooled(client) == {True, False}


def _pooled(client: Client) -> set[bool]:
    """Whether each idle data connection of ``client`` is over TLS."""
    return {isinstance(sock, ssl.SSLSocket) for idle in client._pool.values() for sock in idle}


def test_uploads_and_downloads_in_secure_mode_are_verified_as_any(
    client: Client, workdir: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(os.urandom(5 * MiB))
    with open(source, "rb") as local, client.open(f"{workdir}/up", WRITE | SECURE) as remote:
        remote.write_from_file(local)  # sendfile cannot encrypt: read and written in chunks
    target = tmp_path / "target"
    with open(target, "wb") as local, client.open(f"{workdir}/up", READ | SECURE) as remote:
        remote.read_to_file(local)
    assert target.read_bytes() == source.read_bytes()


@pytest.fixture
def master_posing_as_slave(cluster: LocalCluster) -> Iterator[tuple[str, int]]:
    """A TLS server showing the master's own certificate where a slave is expected."""
    conf = cluster.layout.conf
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(conf / "master_node.cert"), str(conf / "master_node.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(100)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    listener.close()
    thread.join(10)


def test_only_a_slave_of_the_cluster_passes_for_one(
    client: Client, master_posing_as_slave: tuple[str, int]
) -> None:
    with pytest.raises(errors.SecurityError, match="is not a slave of this cluster"):
        client.data_connection(master_posing_as_slave, secure=True)


@pytest.fixture
def encrypting(tmp_path: Path) -> Iterator[LocalCluster]:
    """A private cluster of two slaves with DATA_ENCRYPTION TRUE and two replicas a file."""
    layout = Layout(tmp_path / "home")
    write_conf(layout, port=0)
    conf = layout.conf / "master.conf"
    text = conf.read_text().replace("REPLICA_NUM\n\t1", "REPLICA_NUM\n\t2")
    conf.write_text(text + "DATA_ENCRYPTION\n\tTRUE\n")
    cluster = LocalCluster(home=layout.home, slaves=2, port=0, heartbeat=0.2, slave_timeout=2.0)
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_cluster_with_data_encryption_moves_file_bytes_over_tls_only(
    encrypting: LocalCluster,
) -> None:
    with connect(encrypting) as client:
        with client.open("/f", WRITE) as handle:  # no SECURE asked: the cluster says so
            assert isinstance(handle._sock, ssl.SSLSocket)
            handle.write(b"only ever encrypted")
        grant = client.call(Open("/f", READ))
        assert grant.secure
        with socket.create_connection(slave_addresses(encrypting)[0], timeout=10) as plain:
            plain.sendall(encode(Read(0, 5, grant.token)))
            assert replies_to(Read).decode(recv_body(plain)) == Error(
                errors.E_SECURITY,
                "this cluster encrypts its data connections (DATA_ENCRYPTION): use TLS",
            )
        with client.open("/f", READ) as handle:
            assert handle.read() == b"only ever encrypted"
        # the second replica is copied slave to slave, over TLS too
        wait_until(lambda: len(client.stat("/f").slaves) == 2, what="the second replica")
        with client.open("/chained", WRITE | HIRELIABLE) as handle:  # a chain of slaves
            handle.write(b"both at once")
        assert len(client.stat("/chained").slaves) == 2
        client.rm("/f")  # the master's orders still reach the slave (plain, signed)
        assert not client.exists("/f")


def test_a_tls_connection_to_a_slave_checks_its_issuer(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """The slave's certificate chains to the master's: a client of another cluster
    (trusting another master) does not get through."""
    certs.create(tmp_path / "other.cert", tmp_path / "other.key")
    context = ssl.create_default_context(cafile=str(tmp_path / "other.cert"))
    context.check_hostname = False
    raw = socket.create_connection(slave_addresses(cluster)[0], timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw)
    raw.close()
