"""How long a client waits for its master: silence is bounded, work is not.

Private clusters whose processes the tests stop (SIGSTOP: a master that
hangs without closing its connections, as behind a network cut) and resume.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import InvalidError, SectorConnectionError
from tests.support import PASSWORD, USER

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 2.0


def client_with_timeout(cluster: LocalCluster, timeout: float) -> Client:
    assert cluster.master_address is not None
    client = Client(*cluster.master_address, timeout=timeout)
    client.login(USER, PASSWORD, cluster.layout.cert)
    return client


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process frozen (it keeps its sockets open, answering nothing) until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidError):
        Client("127.0.0.1", 1, timeout=0)


def test_a_silent_master_fails_a_call_within_the_timeout_and_is_dialled_again_later(
    make_cluster,
) -> None:
    cluster = make_cluster(slaves=1)
    client = client_with_timeout(cluster, TIMEOUT)
    client.mkdir("/before")
    with stopped(cluster.process("master").popen.pid):
        started = time.monotonic()
        with pytest.raises(SectorConnectionError, match="said nothing for 2 s"):
            client.stat("/before")
        took = time.monotonic() - started
        assert TIMEOUT <= took < 3 * TIMEOUT  # no second wait on a retry
        started = time.monotonic()
        with pytest.raises(SectorConnectionError):  # the next call: a fresh dial, also bounded
            client.stat("/before")
        assert time.monotonic() - started < 3 * TIMEOUT
    assert client.stat("/before").isdir  # the master is back: the session is logged in again
    client.close()


def test_a_copy_longer_than_the_timeout_is_not_cut_off(make_cluster) -> None:
    cluster = make_cluster(slaves=1)
    client = client_with_timeout(cluster, TIMEOUT)
    with client.open("/source", "wb") as remote:
        remote.write(b"x" * 100_000)
    slave = cluster.process("slave1").popen.pid
    os.kill(slave, signal.SIGSTOP)  # the copy waits for the slave; the master says "working"
    resume = threading.Timer(3 * TIMEOUT, os.kill, (slave, signal.SIGCONT))
    resume.start()
    try:
        started = time.monotonic()
        client.copy("/source", "/copy")
        assert time.monotonic() - started > 2 * TIMEOUT
    finally:
        resume.join()
        os.kill(slave, signal.SIGCONT)
    with client.open("/copy") as remote:
        assert remote.read() == b"x" * 100_000
    client.close()
