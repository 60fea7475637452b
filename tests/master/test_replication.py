"""The repair queue and the decisions of replication, on a clock the test drives.

The master's parts are wired as the master wires them, over a real store,
with slaves that exist only on paper: these tests look at what the master
decides (which file first, from where to where, when to retry, what to
trim), not at copies; the copies themselves are the integration tests' job
(tests/integration/test_replication.py), with real slaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.config import ReplicaRules
from sector.errors import E_CONNECTION, E_NODISK
from sector.master.links import Links
from sector.master.placement import Placement
from sector.master.replication import COPIES_PER_SLAVE, RETRY_MIN, RepairQueue, Replication
from sector.master.safety import Safety
from sector.master.slaves import Registry, Slave
from sector.master.store import Row, Store
from sector.master.targets import Targets
from sector.protocol import tokens
from sector.protocol.master import Usage
from sector.protocol.messages import Error

KEY = b"k" * tokens.KEY_BYTES
MiB = 1024 * 1024


# --- the queue on its own ---------------------------------------------------------------


def test_the_queue_serves_the_most_endangered_first_then_in_arrival_order() -> None:
    queue = RepairQueue()
    for oid, live in ((10, 2), (11, 1), (12, 2), (13, 1)):
        queue.push(oid, live)
    assert [queue.pop() for _ in range(4)] == [11, 13, 10, 12]
    assert queue.pop() is None and len(queue) == 0


def test_a_file_is_queued_once_at_its_most_urgent() -> None:
    queue = RepairQueue()
    queue.push(1, 2)
    queue.push(2, 1)
    queue.push(1, 2)  # no change
    queue.push(1, 0)  # more urgent now: moves ahead
    assert len(queue) == 2 and 1 in queue
    assert queue.pop() == 1 and queue.pop() == 2
    queue.push(3, 1)
    queue.discard(3)
    assert queue.pop() is None


# --- the master's decisions -------------------------------------------------------------


class Cluster:
    """A store, a registry and replication wired as in the master; slaves on paper."""

    def __init__(self, tmp_path: Path, replica_num: int = 2, rules: ReplicaRules | None = None):
        self.clock = ManualClock()
        self.store = Store(tmp_path / "meta.db", self.clock)
        self.registry = Registry(self.clock, 30.0)
        self.placement = Placement(self.registry, self.store, min_free=0)
        self.safety = Safety()
        self.replication = Replication(
            self.store,
            self.registry,
            self.placement,
            Targets(self.store, replica_num, rules),
            Links(self.registry, tokens.KeyRing(KEY), self.clock),
            self.safety,
            tokens.KeyRing(KEY),
            self.clock,
            token_ttl=600.0,
            settle=0,
        )
        self.replication.scanned = True  # as after the first scan

    def slave(self, name: str, free: int = 1000 * MiB) -> Slave:
        return self.registry.register(
            name, f"10.0.0.{len(self.registry.slaves) + 1}", 7000, Usage(2000 * MiB, free, 0, 0)
        )

    def file(self, name: str, *holders: Slave, size: int = MiB) -> Row:
        with self.store.transaction():
            row = self.store.insert(1, name, False, size=size, version=1, checksum="c")
            for slave in holders:
                self.store.set_replica(row.id, slave.id, 1)
        return row

    def judge_all(self) -> None:
        asyncio.run(self.replication.scan())

    def holders(self, row: Row) -> set[str]:
        return set(self.store.current_holders(row))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    yield made
    made.store.close()


def test_a_file_below_target_is_queued_and_copied_to_another_slave(cluster: Cluster) -> None:
    a, b = cluster.slave("a"), cluster.slave("b")
    row = cluster.file("f", a)
    cluster.judge_all()
    health = cluster.replication.health()
    assert (health.under_replicated, health.lost, health.queued) == (1, 0, 1)
    [plan] = cluster.replication.next_copies()
    assert (plan.oid, plan.source, plan.target) == (row.id, a, b)
    assert cluster.replication.health().copying == 1
    assert cluster.replication.copied(plan, "c")
    assert cluster.holders(row) == {"a", "b"}
    assert cluster.replication.health().under_replicated == 0


def test_one_live_replica_is_repaired_before_two(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, replica_num=3)
    a, b, c = cluster.slave("a"), cluster.slave("b"), cluster.slave("c")
    cluster.slave("d")
    safer = cluster.file("safer", a, b)
    endangered = cluster.file("endangered", c)
    cluster.judge_all()
    first = cluster.replication.next_copies()[0]
    assert first.oid == endangered.id
    assert safer.id in cluster.replication.queue or safer.id in cluster.replication.copying


def test_a_file_whose_every_holder_is_dead_is_lost_until_one_returns(cluster: Cluster) -> None:
    a, b = cluster.slave("a"), cluster.slave("b")
    row = cluster.file("f", a)
    a.alive = False
    cluster.replication.slave_lost(a)
    cluster.replication.recheck()
    health = cluster.replication.health()
    assert (health.lost, health.under_replicated, health.queued) == (1, 0, 0)
    assert cluster.replication.next_copies() == []
    cluster.registry.update(a, Usage(2000 * MiB, 1000 * MiB, 0, 0))  # a heartbeat
    cluster.replication.slave_joined(a, [row.id])
    cluster.replication.recheck()
    assert cluster.replication.health().lost == 0
    assert [p.target for p in cluster.replication.next_copies()] == [b]


def test_copies_in_flight_per_slave_are_bounded(cluster: Cluster) -> None:
    a = cluster.slave("a")
    cluster.slave("b")
    for n in range(10):
        cluster.file(f"f{n}", a)
    cluster.judge_all()
    plans = cluster.replication.next_copies()
    assert len(plans) == COPIES_PER_SLAVE
    assert cluster.replication.next_copies() == []  # a and b have no free slot
    cluster.replication.copied(plans[0], "c")
    assert len(cluster.replication.next_copies()) == 1
    assert cluster.replication.busy["a"] == COPIES_PER_SLAVE


def test_a_failed_copy_is_retried_after_a_back_off_and_a_full_target_avoided(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.slave("a"), cluster.slave("b"), cluster.slave("c")
    cluster.file("f", a)
    cluster.judge_all()
    [plan] = cluster.replication.next_copies()
    cluster.replication.copy_failed(plan, Error(E_NODISK, "full"))
    assert cluster.replication.next_copies() == []  # backing off
    cluster.clock.advance(RETRY_MIN)
    cluster.replication._release_due()
    [again] = cluster.replication.next_copies()
    assert again.target is not plan.target  # the full one is left alone for a while
    cluster.replication.copy_failed(again, Error(E_CONNECTION, "gone"))
    cluster.clock.advance(RETRY_MIN)
    cluster.replication._release_due()
    assert cluster.replication.next_copies() == []  # the second back-off is longer
    cluster.clock.advance(RETRY_MIN)
    cluster.replication._release_due()
    assert len(cluster.replication.next_copies()) == 1
    assert {a.id, b.id, c.id} >= {again.target.id}


def test_a_copy_of_a_version_rewritten_meanwhile_is_not_counted(cluster: Cluster) -> None:
    a = cluster.slave("a")
    cluster.slave("b")
    row = cluster.file("f", a)
    cluster.judge_all()
    [plan] = cluster.replication.next_copies()
    with cluster.store.transaction():
        cluster.store.update_content(row.id, MiB, 2, "other")
        cluster.store.set_replica(row.id, "a", 2)

    async def finish() -> bool:
        return cluster.replication.copied(plan, "c")

    assert not asyncio.run(finish())
    assert cluster.store.replicas(row.id) == [("a", 2)]


def test_a_replica_found_damaged_is_forgotten_at_once_and_replaced(cluster: Cluster) -> None:
    a, b, c = cluster.slave("a"), cluster.slave("b"), cluster.slave("c")
    row = cluster.file("f", a, b)
    cluster.judge_all()
    assert cluster.replication.health().under_replicated == 0
    cluster.replication.replica_lost(row.id, 1, "b")
    assert cluster.holders(row) == {"a"}  # no reader is sent to b any more
    cluster.replication.recheck()
    [plan] = cluster.replication.next_copies()
    assert plan.source is a and plan.target in (b, c)


def test_a_draining_slave_is_a_source_but_does_not_count(cluster: Cluster) -> None:
    a, b, c = cluster.slave("a"), cluster.slave("b"), cluster.slave("c")
    row = cluster.file("f", a, b)

    async def drain() -> None:
        cluster.replication.decommission(a)

    asyncio.run(drain())
    cluster.replication.recheck()
    assert not cluster.replication.drained("a")
    assert cluster.replication.health().draining == 1
    [plan] = cluster.replication.next_copies()
    assert (plan.source, plan.target) == (a, c)
    cluster.replication.copied(plan, "c")
    assert cluster.holders(row) == {"a", "b", "c"}
    assert cluster.replication.drained("a")
    assert cluster.replication.health().draining == 0


def test_surplus_is_trimmed_when_a_slave_comes_back_but_never_in_safe_mode(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.slave("a"), cluster.slave("b"), cluster.slave("c")
    row = cluster.file("f", a, b, c)

    async def judge() -> None:
        cluster.replication.judge(row.id)

    cluster.safety.enter("test")
    asyncio.run(judge())
    assert len(cluster.holders(row)) == 3
    cluster.safety.leave()
    asyncio.run(judge())
    assert len(cluster.holders(row)) == 2


def test_the_target_comes_from_the_most_specific_rule(tmp_path: Path) -> None:
    rules = ReplicaRules(number=[("/keep", 3), ("/keep/tmp*", 1)])
    cluster = Cluster(tmp_path, replica_num=2, rules=rules)
    targets = cluster.replication.targets
    with cluster.store.transaction():
        keep = cluster.store.insert(1, "keep", True)
        deep = cluster.store.insert(keep.id, "sub", True)
        kept = cluster.store.insert(deep.id, "a", False)
        scratch = cluster.store.insert(keep.id, "tmp1", False)
        plain = cluster.store.insert(1, "plain", False)
    assert targets.policy(kept).number == 3
    assert targets.policy(scratch).number == 1
    assert targets.policy(plain).number == 2
    with cluster.store.transaction():
        cluster.store.set_replication(deep.id, 5, True)
    assert targets.policy(kept) == targets.policy(kept).__class__(5, hireliable=True)
    assert targets.policy_for_new("/keep/sub/new/x", lambda p: None).number == 3
    cluster.store.close()


def test_nothing_is_judged_before_the_first_scan(cluster: Cluster) -> None:
    a = cluster.slave("a")
    cluster.slave("b")
    cluster.replication.scanned = False
    row = cluster.file("f", a)
    cluster.replication.changed(row.id)
    assert cluster.replication.recheck() == 0
    assert not cluster.replication.health().scanned
