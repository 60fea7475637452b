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
from sector.errors import E_BUSY, E_EXIST, E_EXPIRED, E_NOEXIST, SectorError, SecurityError
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
from sector.protocol.data import LeaseEnd
from sector.protocol.master import Abort, Close, Open, ReadGrant, Usage, WriteGrant
from sector.protocol.messages import READ, WRITE
from sector.protocol.tokens import ReadClaims, Receipt, WriteClaims

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


def test_exclusive_create_is_decided_by_the_master_alone(files: Files, slave: Slave) -> None:
    stored_file(files, slave, "/taken")
    with pytest.raises(SectorError) as exists:
        files.open(session(), Open("/taken", WRITE, "exclusive"))
    assert exists.value.code == E_EXIST
    files.open(session("first"), Open("/new", WRITE, "exclusive"))
    with pytest.raises(SectorError) as racing:  # the first creator holds the path until close
        files.open(session("second"), Open("/new", WRITE, "exclusive"))
    assert racing.value.code == E_EXIST
    with pytest.raises(SectorError) as busy:  # an ordinary open still waits its turn
        files.open(session("third"), Open("/new", WRITE))
    assert busy.value.code == E_BUSY


def test_create_never_refuses_a_missing_file_and_opens_an_existing_one(
    files: Files, slave: Slave
) -> None:
    with pytest.raises(SectorError) as missing:
        files.open(session(), Open("/missing", READ | WRITE, "never"))
    assert missing.value.code == E_NOEXIST
    stored_file(files, slave, "/there")
    assert isinstance(files.open(session(), Open("/there", READ | WRITE, "never")), WriteGrant)


def receipt(lease_grant: WriteGrant, size: int = 5) -> bytes:
    """The receipt slave s1 would sign at the commit of ``lease_grant``'s write."""
    claims = Receipt(lease_grant.oid, lease_grant.version, size, "sum", "s1", lease_grant.lease)
    return tokens.sign(S1_KEY, claims, None)


def test_a_receipt_of_an_earlier_lease_of_the_same_file_is_refused(
    files: Files, slave: Slave
) -> None:
    stored_file(files, slave, "/f")

    async def replay() -> None:
        writer = session()
        earlier = files.open(writer, Open("/f", WRITE))
        old_receipt = receipt(earlier)
        files.abort(writer, Abort(earlier.lease))
        now = files.open(writer, Open("/f", WRITE))
        with pytest.raises(SecurityError, match="does not match the open file"):
            files.close(writer, Close(now.lease, old_receipt))
        files.close(writer, Close(now.lease, receipt(now)))  # its own receipt does
        with pytest.raises(SectorError, match="no such open file"):  # and only once
            files.close(writer, Close(now.lease, receipt(now)))

    asyncio.run(replay())


def test_an_aborted_lease_is_announced_to_its_slave_so_its_token_dies(
    files: Files, slave: Slave, clock: ManualClock
) -> None:
    """The slave may never have seen the token (the client aborted before writing):
    the order that deletes the bytes also names the lease, until its token expires."""

    async def abort_then_look() -> tuple[list[LeaseEnd], int]:
        writer = session()
        grant = files.open(writer, Open("/new", WRITE))
        files.abort(writer, Abort(grant.lease))
        link = files.links.to(slave)
        return [*link._ended], grant.lease

    ended, lease = asyncio.run(abort_then_look())
    assert ended == [LeaseEnd(lease, clock.time() + TTL)]


def test_lease_ids_are_never_reused_by_a_restarted_master(tmp_path: Path) -> None:
    first = Store(tmp_path / "meta.db")
    bases = [first.lease_base(), first.lease_base()]
    first.close()
    again = Store(tmp_path / "meta.db")
    bases.append(again.lease_base())
    again.close()
    assert bases == sorted(set(bases)) and bases[1] - bases[0] >= 2**32
    assert Leases(first_id=bases[2]).grant(session(), 1, 1, "/a", True, "s1").id == bases[2]


def test_a_read_grant_carries_one_token_per_replica_each_for_its_slave(
    files: Files, slave: Slave, registry: Registry, clock: ManualClock
) -> None:
    other = registry.register("s2", "127.0.0.3", 7000, Usage(10**12, 10**12, 0, 0))
    oid = stored_file(files, slave, "/f")
    with files.store.transaction():
        files.store.set_replica(oid, other.id, 1)
    grant = files.open(session(), Open("/f", READ))
    assert isinstance(grant, ReadGrant) and len(grant.tokens) == 2
    for address, key in ((slave.address, S1_KEY), (other.address, tokens.slave_key(KEY, "s2"))):
        token = grant.token_for(address)
        assert tokens.verify(key, token, ReadClaims, clock.time()) == ReadClaims(oid, 1)
    with pytest.raises(tokens.TokenError, match="bad token signature"):
        tokens.verify(S1_KEY, grant.token_for(other.address), ReadClaims, clock.time())
