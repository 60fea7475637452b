"""Write leases end when their client is gone, even if its connection is not.

A client that dies closes its connection and its leases go with it; one that
is SIGSTOPped (or cut off by the network) keeps the connection open, so its
leases expire after CLIENT_TIMEOUT instead - unless its slave still sees its
bytes arriving, as it does for a client streaming a large file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import SectorBusyError
from sector.protocol.messages import READ, TRUNC, WRITE
from tests.support import connect, wait_until

TIMEOUT = 2.0


def read(client: Client, path: str) -> bytes:
    with client.open(path, READ) as remote:
        return remote.read()


def try_write(client: Client, path: str, data: bytes) -> bool:
    try:
        with client.open(path, WRITE | TRUNC) as remote:
            remote.write(data)
    except SectorBusyError:
        return False
    return True


@pytest.fixture
def cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    return make_cluster(slaves=2, master_conf={"CLIENT_TIMEOUT": str(TIMEOUT)})


def test_a_stopped_writers_lease_expires_and_the_file_keeps_its_last_version(
    cluster: LocalCluster,
) -> None:
    client = connect(cluster)
    with client.open("/f", WRITE) as remote:
        remote.write(b"committed")
    assert cluster.master_address is not None
    host, port = cluster.master_address
    script = textwrap.dedent(
        f"""
        import sys
        from sector.client import Client
        c = Client({host!r}, {port})
        c.login("test", "xxx", {str(cluster.layout.cert)!r})
        f = c.open("/f", 6)
        f.write(b"never committed" * 1000)
        f.flush()
        print("written", flush=True)
        sys.stdin.read()
        """
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"written\n"
        writer.send_signal(signal.SIGSTOP)  # alive, connected, and silent
        assert not try_write(client, "/f", b"too early")  # the lease still holds
        wait_until(
            lambda: try_write(client, "/f", b"next writer"),
            timeout=TIMEOUT * 5,
            what="the silent writer's lease to expire",
        )
        assert read(client, "/f") == b"next writer"
    finally:
        writer.send_signal(signal.SIGCONT)
        writer.kill()
        writer.wait()
    client.close()


def test_a_client_streaming_to_its_slave_keeps_its_lease(cluster: LocalCluster) -> None:
    client = connect(cluster)
    with client.open("/slow", WRITE) as remote:
        began = time.monotonic()
        while time.monotonic() - began < 2.5 * TIMEOUT:  # silent to the master meanwhile
            remote.write(b"x" * 2000)
            remote.flush()
            time.sleep(0.1)  # the pace of a slow producer, not a wait for anything
    assert read(client, "/slow").startswith(b"xx")
    client.close()


def test_a_live_client_idle_with_a_file_open_keeps_its_lease(cluster: LocalCluster) -> None:
    client = connect(cluster)
    other = connect(cluster)
    remote = client.open("/idle", WRITE)
    remote.write(b"written, then nothing for a while")
    remote.flush()
    time.sleep(3 * TIMEOUT)  # the silence this test is about: the client pings meanwhile
    assert not try_write(other, "/idle", b"too early")  # the lease still holds
    remote.close()
    assert read(other, "/idle") == b"written, then nothing for a while"
    other.close()
    client.close()
