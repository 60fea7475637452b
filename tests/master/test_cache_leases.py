"""Cache leases: a change to what a leased ``stat`` showed is held until its holders let go.

The store and namespace are real (SQLite in a temporary directory); time is a
ManualClock where expiry is decided, and the loop's own timers where a recall
must end by itself (a lease of a few milliseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.master.cache_leases import HORIZON_KEY, CacheLeases
from sector.master.namespace import Namespace
from sector.master.sessions import Session
from sector.master.store import Store
from sector.master.users import User
from sector.protocol.master import CacheRelease, Invalidate
from sector.protocol.messages import Message


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Namespace]:
    store = Store(tmp_path / "meta.db")
    yield Namespace(store)
    store.close()


class Holder:
    """A session whose pushes are kept."""

    def __init__(self) -> None:
        self.pushed: list[Message] = []
        self.session = Session(User("test", ""), "127.0.0.1", push=self.pushed.append)

    def recalled(self) -> list[str]:
        return [path for push in self.pushed if isinstance(push, Invalidate) for path in push.paths]


def add_file(ns: Namespace, path: str) -> int:
    with ns.store.transaction():
        parent = ns.parent_for_new(path)
        return ns.store.insert(parent.id, path.rsplit("/", 1)[1], False).id


def lease(leases: CacheLeases, ns: Namespace, holder: Holder, path: str) -> float:
    row = ns.stat(path)
    return leases.grant(holder.session, path, row.id, ns.directory_ids(path))


async def change(leases: CacheLeases, act) -> list[asyncio.Future[None]]:  # noqa: ANN001
    """Do ``act`` as a request would: the recalls its acknowledgement waits for."""
    with leases.recalls() as recalls:
        act()
    return recalls


def test_a_new_version_recalls_the_files_lease_until_its_holder_releases(ns: Namespace) -> None:
    async def scenario() -> None:
        leases = CacheLeases(ns.store, ManualClock(), duration=30.0)
        holder = Holder()
        oid = add_file(ns, "/d/f")
        assert lease(leases, ns, holder, "/d/f") == 30.0
        recalls = await change(leases, lambda: ns.store.update_content(oid, 5, 2, "c"))
        assert holder.recalled() == ["/d/f"]
        assert len(recalls) == 1 and not recalls[0].done()
        (push,) = holder.pushed
        assert isinstance(push, Invalidate)
        leases.release(holder.session, CacheRelease(push.seq))
        assert recalls[0].done()
        assert leases.held() == 0

    asyncio.run(scenario())


def test_moving_a_directory_recalls_what_is_below_it_and_a_new_file_beside_does_not(
    ns: Namespace,
) -> None:
    async def scenario() -> None:
        leases = CacheLeases(ns.store, ManualClock(), duration=30.0)
        holder = Holder()
        add_file(ns, "/a/b/f")
        lease(leases, ns, holder, "/a/b/f")
        # a file appearing beside it touches /a/b's mtime: /a/b/f still names the same file
        assert await change(leases, lambda: add_file(ns, "/a/b/g")) == []
        assert holder.recalled() == []
        recalls = await change(leases, lambda: ns.move("/a", "/z"))
        assert holder.recalled() == ["/a/b/f"] and len(recalls) == 1

    asyncio.run(scenario())


def test_removing_a_tree_recalls_every_lease_in_it(ns: Namespace) -> None:
    async def scenario() -> None:
        leases = CacheLeases(ns.store, ManualClock(), duration=30.0)
        holder = Holder()
        add_file(ns, "/t/x/f")
        for path in ("/t", "/t/x", "/t/x/f"):
            lease(leases, ns, holder, path)
        await change(leases, lambda: ns.remove("/t", recursive=True))
        assert sorted(holder.recalled()) == ["/t", "/t/x", "/t/x/f"]

    asyncio.run(scenario())


def test_an_expired_lease_holds_nothing_up(ns: Namespace) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        leases = CacheLeases(ns.store, clock, duration=1.0)
        holder = Holder()
        oid = add_file(ns, "/f")
        lease(leases, ns, holder, "/f")
        clock.advance(1.0)
        assert await change(leases, lambda: ns.store.touch(oid)) == []
        assert holder.recalled() == []

    asyncio.run(scenario())


def test_a_holder_that_never_answers_is_waited_out(ns: Namespace) -> None:
    async def scenario() -> None:
        leases = CacheLeases(ns.store, duration=0.05)  # the real clock: the loop's timers
        silent = Holder()
        oid = add_file(ns, "/f")
        lease(leases, ns, silent, "/f")
        recalls = await change(leases, lambda: ns.store.drop_replica(oid, "s1"))
        assert len(recalls) == 1
        await asyncio.wait_for(asyncio.wait(recalls), timeout=5)

    asyncio.run(scenario())


def test_a_departed_session_is_waited_out_too(ns: Namespace) -> None:
    async def scenario() -> None:
        leases = CacheLeases(ns.store, ManualClock(), duration=30.0)
        gone = Holder()
        oid = add_file(ns, "/f")
        lease(leases, ns, gone, "/f")
        gone.session.push = None
        leases.ended(gone.session)
        recalls = await change(leases, lambda: ns.store.touch(oid))
        assert len(recalls) == 1 and not recalls[0].done()  # its client may not know yet

    asyncio.run(scenario())


def test_a_change_nobody_is_told_of_recalls_without_waiting(ns: Namespace) -> None:
    leases = CacheLeases(ns.store, ManualClock(), duration=30.0)
    holder = Holder()
    oid = add_file(ns, "/f")
    lease(leases, ns, holder, "/f")
    ns.store.set_replica(oid, "s1", 1)  # background replication: no request, no loop needed
    assert holder.recalled() == ["/f"]


def test_a_restarted_master_answers_no_change_before_the_old_leases_end(
    ns: Namespace,
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        before = CacheLeases(ns.store, clock, duration=0.05)
        oid = add_file(ns, "/f")
        lease(before, ns, Holder(), "/f")
        assert ns.store.get_meta(HORIZON_KEY) is not None
        after = CacheLeases(ns.store, clock, duration=0.05)  # knows no lease, but the horizon
        recalls = await change(after, lambda: ns.store.touch(oid))
        assert len(recalls) == 1 and not recalls[0].done()
        await asyncio.wait_for(asyncio.wait(recalls), timeout=5)
        clock.advance(1.0)
        fresh = CacheLeases(ns.store, clock, duration=0.05)  # past the horizon: no wait
        assert await change(fresh, lambda: ns.store.touch(oid)) == []

    asyncio.run(scenario())
