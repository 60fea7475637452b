"""The metadata store: SQLite rows keyed by (parent, name), ids that are never reused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.master import store as store_module
from sector.master.store import ROOT_ID, Columns, Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "meta.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store(db_path)
    yield opened
    opened.close()


def test_a_new_store_holds_only_the_root_directory(store: Store) -> None:
    root = store.get(ROOT_ID)
    assert root is not None and root.is_dir and root.name == ""
    assert store.children(ROOT_ID) == []
    assert store.totals() == (0, 0, 0)
    assert store.path_of(ROOT_ID) == "/"


def test_the_database_uses_wal_journaling(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_allocated_ids_are_distinct_and_never_the_root(store: Store) -> None:
    ids = [store.allocate_id() for _ in range(3000)]
    assert len(set(ids)) == len(ids)
    assert ROOT_ID not in ids


def test_ids_are_never_reused_across_a_reopen(db_path: Path) -> None:
    first = Store(db_path)
    handed_out = {first.allocate_id() for _ in range(5)}
    with first.transaction():
        row = first.insert(ROOT_ID, "f", False)
    handed_out.add(row.id)
    with first.transaction():
        first.delete([row.id])
    first.close()

    reopened = Store(db_path)
    again = {reopened.allocate_id() for _ in range(5000)}
    reopened.close()
    assert handed_out.isdisjoint(again)


def test_ids_of_deleted_files_are_not_reused_after_a_rolled_back_transaction(
    db_path: Path,
) -> None:
    """A rolled-back transaction must not also roll back the record of handed-out ids.

    If the id block is reserved inside a transaction that fails, ids later handed
    out from that block (and committed, then deleted) must still never come back
    after a restart, or a stale replica on a slave could pass for a new file.
    """
    first = Store(db_path)
    with pytest.raises(RuntimeError), first.transaction():
        first.allocate_id()
        raise RuntimeError("abandon this change")
    used = first.allocate_id()
    with first.transaction():
        first.insert(ROOT_ID, "short-lived", False, entry_id=used)
    with first.transaction():
        first.delete([used])
    first.close()

    reopened = Store(db_path)
    again = [reopened.allocate_id() for _ in range(10)]
    reopened.close()
    assert used not in again


def test_a_transaction_that_raises_leaves_no_trace(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.insert(ROOT_ID, "ghost", True)
        raise RuntimeError
    assert store.lookup(ROOT_ID, "ghost") is None


def test_committed_changes_survive_a_reopen(db_path: Path) -> None:
    first = Store(db_path)
    with first.transaction():
        d = first.insert(ROOT_ID, "d", True)
        f = first.insert(d.id, "f", False, size=10, version=1, checksum="abc")
        first.set_replica(f.id, "slave-a", 1)
    first.close()

    reopened = Store(db_path)
    try:
        row = reopened.lookup(d.id, "f")
        assert row == f
        assert reopened.replicas(f.id) == [("slave-a", 1)]
        assert reopened.path_of(f.id) == "/d/f"
    finally:
        reopened.close()


def test_names_are_unique_within_a_directory(store: Store) -> None:
    import sqlite3

    with store.transaction():
        store.insert(ROOT_ID, "a", True)
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.insert(ROOT_ID, "a", False)


def test_renaming_a_directory_is_one_row_update_and_children_follow(store: Store) -> None:
    with store.transaction():
        a = store.insert(ROOT_ID, "a", True)
        b = store.insert(a.id, "b", True)
        files = [store.insert(b.id, f"f{i}", False) for i in range(100)]
        new_parent = store.insert(ROOT_ID, "z", True)
    before = store.db.total_changes
    with store.transaction():
        store.rename(a.id, new_parent.id, "renamed")
    assert store.db.total_changes - before == 1
    assert store.path_of(files[7].id) == "/z/renamed/b/f7"
    assert [r.name for r in store.children(b.id)][:3] == ["f0", "f1", "f10"]


# --- listings: columns, cached while nothing changes ---------------------------------


def _files(store: Store, parent: int, *names: str) -> None:
    with store.transaction():
        for name in names:
            store.insert(parent, name, False, size=len(name), version=1, checksum="c")


def test_a_listing_is_the_children_as_columns_in_name_order(store: Store) -> None:
    _files(store, ROOT_ID, "b", "a")
    with store.transaction():
        empty = store.insert(ROOT_ID, "d", True)
    listed = store.listing(ROOT_ID)
    assert listed == Columns.of(store.children(ROOT_ID))
    assert listed.names == ("a", "b", "d")
    assert listed.is_dir == (False, False, True)
    assert listed.sizes == (1, 1, 0)
    assert len(store.listing(empty.id)) == 0


def test_an_unchanged_directory_is_listed_from_the_cache(store: Store) -> None:
    _files(store, ROOT_ID, "a")
    assert store.listing(ROOT_ID) is store.listing(ROOT_ID)


def test_every_change_is_in_the_next_listing(store: Store) -> None:
    _files(store, ROOT_ID, "a", "b")
    b = store.lookup(ROOT_ID, "b")
    assert b is not None
    changes = [
        lambda: store.insert(ROOT_ID, "c", False),
        lambda: store.update_content(b.id, 99, 2, "new", mtime=5.0),
        lambda: store.rename(b.id, ROOT_ID, "z"),
        lambda: store.touch(b.id, 7.0),
        lambda: store.delete([b.id]),
    ]
    for change in changes:
        store.listing(ROOT_ID)  # cached
        with store.transaction():
            change()
        assert store.listing(ROOT_ID) == Columns.of(store.children(ROOT_ID))


def test_a_listing_read_in_a_transaction_that_rolls_back_is_not_kept(store: Store) -> None:
    _files(store, ROOT_ID, "a")
    with pytest.raises(RuntimeError), store.transaction():
        store.insert(ROOT_ID, "ghost", False)
        assert store.listing(ROOT_ID).names == ("a", "ghost")
        raise RuntimeError("rolled back")
    assert store.listing(ROOT_ID).names == ("a",)


def test_directories_beyond_the_cache_limit_still_list_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "LISTING_CACHE_ENTRIES", 3)
    with store.transaction():
        small, big = store.insert(ROOT_ID, "s", True), store.insert(ROOT_ID, "b", True)
    _files(store, small.id, "1", "2")
    _files(store, big.id, *"abcde")
    for _ in range(2):
        assert store.listing(small.id).names == ("1", "2")
        assert store.listing(big.id).names == tuple("abcde")
        assert store.listing(ROOT_ID).names == ("b", "s")


def test_descendants_lists_everything_below_but_not_the_entry(store: Store) -> None:
    with store.transaction():
        a = store.insert(ROOT_ID, "a", True)
        b = store.insert(a.id, "b", True)
        f1 = store.insert(a.id, "f1", False)
        f2 = store.insert(b.id, "f2", False)
        store.insert(ROOT_ID, "outside", False)
    assert {r.id for r in store.descendants(a.id)} == {b.id, f1.id, f2.id}
    assert store.has_children(a.id) and not store.has_children(f1.id)


def test_delete_also_forgets_replicas(store: Store) -> None:
    with store.transaction():
        f = store.insert(ROOT_ID, "f", False, version=2)
        store.set_replica(f.id, "s1", 2)
        store.set_replica(f.id, "s2", 2)
        store.delete([f.id])
    assert store.get(f.id) is None
    assert store.replicas(f.id) == []


def test_replicas_are_one_per_slave_and_listed_by_slave(store: Store) -> None:
    with store.transaction():
        f = store.insert(ROOT_ID, "f", False, version=1)
        g = store.insert(ROOT_ID, "g", False, version=1)
        store.set_replica(f.id, "s1", 1)
        store.set_replica(f.id, "s1", 2)
        store.set_replica(g.id, "s1", 1)
        store.set_replica(g.id, "s2", 1)
        store.drop_replica(g.id, "s2")
    assert store.replicas(f.id) == [("s1", 2)]
    assert sorted(store.replicas_on("s1")) == sorted([(f.id, 2), (g.id, 1)])
    assert list(store.replicas_on("s2")) == []


def test_versions_reports_only_files_still_in_the_namespace(store: Store) -> None:
    with store.transaction():
        d = store.insert(ROOT_ID, "d", True)
        files = [store.insert(ROOT_ID, f"f{i}", False, version=i) for i in range(1, 1201)]
        store.delete([files[0].id])
    wanted = [d.id, 999_999] + [f.id for f in files]
    found = store.versions(wanted)
    assert len(found) == 1199
    assert found[files[1].id] == 2
    assert d.id not in found and files[0].id not in found


def test_update_content_records_size_version_and_checksum(store: Store) -> None:
    with store.transaction():
        f = store.insert(ROOT_ID, "f", False)
        store.update_content(f.id, 123, 4, "sum", mtime=1000.0)
    row = store.get(f.id)
    assert row is not None
    assert (row.size, row.version, row.checksum, row.mtime) == (123, 4, "sum", 1000.0)


def test_totals_count_files_directories_and_bytes_without_the_root(store: Store) -> None:
    with store.transaction():
        d = store.insert(ROOT_ID, "d", True)
        store.insert(d.id, "f", False, size=100)
        store.insert(ROOT_ID, "g", False, size=23)
    assert store.totals() == (2, 1, 123)


def test_meta_values_round_trip(store: Store) -> None:
    assert store.get_meta("absent") is None
    store.set_meta("key", b"\x00bytes")
    store.set_meta("key", "text")
    assert store.get_meta("key") == "text"


def test_versions_issued_to_writers_are_never_issued_again(db_path: Path) -> None:
    """An aborted write keeps its number: the delete sent for its bytes must not
    reach the bytes of the next writer (tests/integration/test_abort_then_rewrite.py)."""
    first = Store(db_path)
    with first.transaction():
        f = first.insert(ROOT_ID, "f", False, version=1)
    assert first.issue_version(f.id) == 2  # a writer that aborts
    assert first.issue_version(f.id) == 3  # the next writer
    with first.transaction():
        first.update_content(f.id, 1, 3, "sum")
    first.close()
    reopened = Store(db_path)
    try:
        assert reopened.issue_version(f.id) == 4
        with pytest.raises(KeyError):
            reopened.issue_version(999_999)
    finally:
        reopened.close()


_FIRST_RELEASE_SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name TEXT NOT NULL,
    is_dir INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, mtime REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0, checksum TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX entries_by_name ON entries (parent, name);
INSERT INTO entries VALUES (1, 0, '', 1, 0, 100.0, 0, '');
INSERT INTO entries VALUES (2, 1, 'once', 0, 3, 200.0, 1, 'a');
INSERT INTO entries VALUES (3, 1, 'rewritten', 0, 3, 300.0, 5, 'b');
INSERT INTO entries VALUES (4, 1, 'dir', 1, 0, 400.0, 0, '');
"""


def test_a_metadata_db_of_the_first_release_gains_the_new_columns(db_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(db_path)
    old.executescript(_FIRST_RELEASE_SCHEMA)
    old.close()
    store = Store(db_path)
    try:
        once, rewritten, directory = (
            store.lookup(ROOT_ID, n) for n in ("once", "rewritten", "dir")
        )
        assert once is not None and rewritten is not None and directory is not None
        assert once.created == 200.0  # its only commit created it
        assert rewritten.created == 0.0 and directory.created == 0.0  # not recorded
        assert (rewritten.version, rewritten.checksum) == (5, "b")
        assert store.issue_version(rewritten.id) == 6
        # owned by nobody (files of that release were never attributed), until rewritten
        assert once.owner == "" and store.usage("") == (0, 0)
        with store.transaction():
            store.update_content(rewritten.id, 70, 6, "c", owner="alice")
        assert store.usage("alice") == (70, 1)
    finally:
        store.close()
    Store(db_path).close()  # and opening it again changes nothing


def test_what_each_user_owns_follows_every_change_and_every_rollback(store: Store) -> None:
    with store.transaction():
        a = store.insert(ROOT_ID, "a", False, size=10, owner="alice")
        b = store.insert(ROOT_ID, "b", False, size=5, owner="alice")
        store.insert(ROOT_ID, "d", True, owner="alice")  # directories count for nothing
    assert store.usage("alice") == (15, 2)
    with store.transaction():
        store.update_content(a.id, 30, 2, "x", owner="alice")  # rewritten, bigger
        store.update_content(b.id, 7, 2, "y", owner="bob")  # rewritten by bob: his now
        store.rename(a.id, ROOT_ID, "renamed")  # a rename changes nothing
    assert (store.usage("alice"), store.usage("bob")) == ((30, 1), (7, 1))
    with pytest.raises(RuntimeError), store.transaction():
        store.delete([a.id])
        raise RuntimeError("rolled back")
    assert store.usage("alice") == (30, 1)
    with store.transaction():
        store.delete([a.id, b.id])
    assert (store.usage("alice"), store.usage("bob")) == ((0, 0), (0, 0))
    assert store.usage("nobody") == (0, 0)
