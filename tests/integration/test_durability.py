"""Nothing is lost when processes die: master kill -9, slave restarts, stale replicas."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sector.client import Client
from sector.errors import SectorError
from sector.protocol.data import CommitReply, DataSession
from sector.protocol.master import Open
from sector.protocol.messages import APPEND, READ, TRUNC, WRITE
from sector.transport import receive_reply
from tests.support import connect, wait_until


def _live_slaves(client: Client) -> int:
    return sum(s["status"] == "alive" for s in client.sysinfo()["slaves"])


def _objects(cluster, number: int) -> set[str]:
    return {p.name for p in (cluster.layout.slave_dir(number) / "objects").rglob("*.*.*")}


def test_master_kill_9_loses_nothing_and_everyone_reconnects(make_cluster, tmp_path: Path):
    cluster = make_cluster(slaves=2)
    client = connect(cluster)
    local = tmp_path / "data"
    local.write_bytes(b"\x00survives\x00" * 10_000)
    client.mkdir("/keep/empty/dir")
    client.upload(local, "/keep/file")
    for number in range(50):
        with client.open(f"/keep/many/{number}", WRITE) as handle:
            handle.write(b"%d" % number)
    before = client.stat("/keep/file")

    cluster.restart_master(kill=True)

    # The same client object carries on: it re-dials and logs in again by itself.
    after = client.stat("/keep/file")
    assert (after.size, after.version, after.checksum) == (
        before.size,
        before.version,
        before.checksum,
    )
    assert client.stat("/keep/empty/dir").isdir
    assert len(client.ls("/keep/many")) == 50
    wait_until(lambda: _live_slaves(client) == 2, what="slaves to re-register")
    assert client.stat("/keep/file") == before
    out = tmp_path / "back"
    client.download("/keep/file", out)
    assert out.read_bytes() == local.read_bytes()
    with client.open("/keep/many/7", READ) as handle:
        assert handle.read() == b"7"
    client.close()


def test_restarted_slave_rejoins_and_drops_what_changed_while_it_was_away(
    make_cluster, tmp_path: Path
) -> None:
    cluster = make_cluster(slaves=1)
    client = connect(cluster)
    for name in ("kept", "removed", "rewritten"):
        with client.open(f"/{name}", WRITE) as handle:
            handle.write(name.encode())
    stored_before = _objects(cluster, 1)
    assert len(stored_before) == 3

    cluster.stop_process("slave1")
    wait_until(lambda: _live_slaves(client) == 0, what="the master to notice the dead slave")
    # The master forgets the slave's copy of a removed file, and the rewritten file's
    # old version, though the slave is not there to be told.
    client.rm("/removed")
    cluster.start_slave(1)
    wait_until(lambda: _live_slaves(client) == 1, what="the slave to rejoin")
    with client.open("/rewritten", WRITE | TRUNC) as handle:
        handle.write(b"v2")

    with client.open("/kept", READ) as handle:
        assert handle.read() == b"kept"
    with client.open("/rewritten", READ) as handle:
        assert handle.read() == b"v2"
    wait_until(lambda: len(_objects(cluster, 1)) == 2, what="stale objects to be deleted")
    client.close()


def test_stale_replica_of_a_removed_file_is_deleted_on_rejoin(make_cluster) -> None:
    cluster = make_cluster(slaves=1)
    client = connect(cluster)
    with client.open("/gone", WRITE) as handle:
        handle.write(b"soon gone")
    cluster.stop_process("slave1")
    client.rm("/gone")
    assert not client.exists("/gone")
    cluster.start_slave(1)
    wait_until(lambda: not _objects(cluster, 1), what="the orphaned object to be deleted")
    client.close()


def _commit_without_close(client: Client, path: str, extra: bytes) -> tuple[int, int]:
    """Append ``extra`` as a new version that the slave commits but the master never
    hears of (its writer's ``close`` never comes): the (oid, version) written."""
    grant = client.call(Open(path, WRITE | APPEND))
    session = DataSession()
    with socket.create_connection(tuple(grant.slave)) as sock:
        sock.sendall(session.begin_write(grant.token))
        sock.sendall(session.put(grant.size, len(extra)) + extra)
        sock.sendall(session.commit())
        assert isinstance(receive_reply(sock, session), CommitReply)
    return grant.oid, grant.version


def test_an_append_in_flight_when_the_master_dies_hides_nothing_and_is_collected(
    make_cluster, tmp_path: Path
) -> None:
    # the session: 1 MiB, then WRITE|APPEND of 1 MiB more, flush, kill -9 the master
    cluster = make_cluster(
        slaves=2, replicas=1, master_conf={"DATA_TOKEN_TTL": "3", "INVENTORY_INTERVAL": "1"}
    )
    client = connect(cluster)
    first = os.urandom(1 << 20)
    with client.open("/grow", WRITE) as handle:
        handle.write(first)
    writer = client.open("/grow", WRITE | APPEND)
    writer.write(os.urandom(1 << 20))
    writer.flush()
    with client.open("/other", WRITE) as handle:
        handle.write(b"other")
    other = connect(cluster)
    orphan = _commit_without_close(other, "/other", b"x")  # see below

    cluster.restart_master(kill=True)

    # readable at once, from the slave holding version 1 beside the unfinished version 2
    wait_until(lambda: _live_slaves(client) == 2, what="slaves to re-register")
    assert client.stat("/grow").slaves
    with client.open("/grow", READ) as handle:
        assert handle.read() == first
    with pytest.raises(SectorError):  # its lease died with the master
        writer.close()
    with client.open("/grow", READ) as handle:
        assert handle.read() == first

    # the orphan committed on a slave and never closed goes away on its own, once older
    # than the data token lifetime - without the slave registering again
    name = "{}.{}.".format(*orphan)
    on_disk = lambda: any(n.startswith(name) for n in _all_objects(cluster))  # noqa: E731
    wait_until(lambda: not on_disk(), timeout=30, what="the orphan to be collected")
    registrations = sum(
        (cluster.layout.slave_dir(n) / "slave.log").read_text().count("registered with master")
        for n in (1, 2)
    )
    assert registrations == 4  # at the start and after the master's restart, no more
    assert _read(client, "/other") == b"other"
    other.close()
    client.close()


def _read(client: Client, path: str) -> bytes:
    with client.open(path, READ) as handle:
        return handle.read()


def _all_objects(cluster) -> list[str]:
    return [
        p.name
        for n in range(1, cluster.slaves + 1)
        for p in (cluster.layout.slave_dir(n) / "objects").rglob("*.*.*")
    ]
