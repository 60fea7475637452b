"""Grants, leases and their tokens, on the master's own parts and a clock the test drives.

No sockets: the parts are wired as the master wires them, with a registry
holding one slave that exists only on paper (nothing here talks to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.errors import E_BUSY, E_EXPIRED, SectorError
from sector.master.files import Files
from sector.master.leases import Leases
from sector.master.links import Links
from sector.master.namespace import Namespace
from sector.master.placement import Placement
from sector.master.replication import Replication
from sector.master.safety import Safety
from sector.master.sessions import Session
from sector.master.slaves import Registry, Slave
from sector.master.store import Store
from sector.master.targets import Targets
from sector.master.users import User
from sector.protocol import tokens
from sector.protocol.master import Abort, Open, ReadGrant, Usage, WriteGrant
from sector.protocol.messages import READ, WRITE
from sector.protocol.tokens import ReadClaims, WriteClaims

KEY = b"k" * tokens.KEY_BYTES
#: The key of slave ``s1``, the one slave these tests have: what checks its tokens.
S1_KEY = tokens.slave_key(KEY, "s1")
TTL = 600.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    opened = Store(tmp_path / "meta.db", clock)
    yield opened
    opened.close()


@pytest.fixture
def registry(clock: ManualClock) -> Registry:
    return Registry(clock, timeout=30.0)


@pytest.fixture
def slave(registry: Registry) -> Slave:
    return registry.register("s1", "127.0.0.2", 7000, Usage(10**12, 10**12, 0, 0))


@pytest.fixture
def files(store: Store, registry: Registry, clock: ManualClock) -> Files:
    keys = tokens.KeyRing(KEY)
    links = Links(registry, keys, clock)
    placement = Placement(registry, store, min_free=0)
    replication = Replication(
        store, registry, placement, Targets(store, 1), links, Safety(), keys, clock, TTL, settle=0
    )
    return Files(store, Namespace(store), Leases(), placement, links, replication, keys, TTL, clock)


def session(name: str = "alice") -> Session:
    return Session(User(name, "unused", admin=True), "127.0.0.1")


def stored_file(files: Files, slave: Slave, path: str) -> int:
    with files.store.transaction():
        row = files.namespace.create_file(path, files.store.allocate_id(), 3, 1, "sum")
        files.store.set_replica(row.id, slave.id, 1)
    return row.id


def test_a_read_token_lasts_data_token_ttl_on_the_masters_clock(
    files: Files, slave: Slave, clock: ManualClock
) -> None:
    oid = stored_file(files, slave, "/f")
    grant = files.open(session(), Open("/f", READ))
    assert isinstance(grant, ReadGrant) and grant.replicas == [slave.address]
    clock.advance(TTL)
    assert tokens.verify(S1_KEY, grant.token, ReadClaims, clock.time()) == ReadClaims(oid, 1)
    clock.advance(1)
    with pytest.raises(tokens.TokenError) as expired:
        tokens.verify(S1_KEY, grant.token, ReadClaims, clock.time())
    assert expired.value.code == E_EXPIRED


def test_a_write_grant_names_the_lease_the_version_and_the_slave(
    files: Files, slave: Slave, clock: ManualClock
) -> None:
    oid = stored_file(files, slave, "/f")
    grant = files.open(session(), Open("/f", WRITE))
    assert isinstance(grant, WriteGrant) and grant.slave == slave.address
    claims = tokens.verify(S1_KEY, grant.token, WriteClaims, clock.time())
    assert claims == WriteClaims(oid, 2, base=1, lease=grant.lease, slave=slave.id, path="/f")
    assert slave.active == 1


def test_a_second_writer_is_busy_until_the_first_lets_go(files: Files, slave: Slave) -> None:
    stored_file(files, slave, "/f")
    first = session("first")
    files.open(first, Open("/f", WRITE))
    with pytest.raises(SectorError) as busy:
        files.open(session("second"), Open("/f", WRITE))
    assert busy.value.code == E_BUSY
    assert first.leases  # the lease is the first session's, and ends with it


def test_an_aborted_writes_version_is_never_given_to_the_next_writer(
    files: Files, slave: Slave
) -> None:
    """The slave is told to delete the aborted version's bytes, later and in a batch:
    that order must not name what the next writer commits."""
    stored_file(files, slave, "/f")

    async def rewrite_after_an_abort() -> list[int]:
        writer = session()
        aborted = files.open(writer, Open("/f", WRITE))
        files.abort(writer, Abort(aborted.lease))
        again = files.open(writer, Open("/f", WRITE))
        return [aborted.version, again.version]

    assert asyncio.run(rewrite_after_an_abort()) == [2, 3]
