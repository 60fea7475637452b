"""The metadata store: SQLite in WAL mode, behind one narrow class.

The namespace is a tree of rows keyed by (parent id, name), so renaming a
directory that holds a million files is one UPDATE. A file's row id is also
the name of its data on the slaves (``<id>.<version>``), which is why ids are
never reused: they come from a persistent counter, so a replica left on a
slave that was away can never be mistaken for a newer file, and an id at or
above the counter can only come from a namespace this one does not know.

Only this module speaks SQL: the rest of the master calls :class:`Store`'s
methods and nothing else, so another database would be another class with
these methods. Not a drop-in one, though: the SQL below is SQLite's dialect
(``INSERT OR REPLACE``, ``RETURNING``, ``WITHOUT ROWID``), and the namespace's
directory cache (:mod:`.namespace`) trusts that this master is the only
writer, which several masters sharing PostgreSQL would have to revisit.
Timestamps come from an injected clock (:mod:`sector.clock`).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..clock import SYSTEM, Clock

ROOT_ID = 1


class MetadataError(Exception):
    """The metadata database cannot be opened; the message is the one line to show."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id       INTEGER PRIMARY KEY,
    parent   INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    is_dir   INTEGER NOT NULL,
    size     INTEGER NOT NULL DEFAULT 0,
    mtime    REAL    NOT NULL,
    version  INTEGER NOT NULL DEFAULT 0,
    checksum TEXT    NOT NULL DEFAULT '',
    issued   INTEGER NOT NULL DEFAULT 0,
    created  REAL    NOT NULL DEFAULT 0,
    owner    TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_name ON entries (parent, name);
CREATE TABLE IF NOT EXISTS replicas (
    oid     INTEGER NOT NULL,
    slave   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (oid, slave)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replicas_by_slave ON replicas (slave);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS replication (
    id         INTEGER PRIMARY KEY,
    number     INTEGER,
    hireliable INTEGER
);
"""

#: What each user owns, kept by SQLite itself: the triggers run inside the very
#: statement that adds, resizes, hands over or deletes a file, so the sums can never
#: disagree with the entries (a rolled-back transaction rolls them back too). Files
#: with no owner ('': written before ownership was recorded) count for nobody.
_USAGE = """
CREATE TABLE IF NOT EXISTS usage (
    owner TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS usage_on_insert AFTER INSERT ON entries
WHEN NEW.is_dir = 0 AND NEW.owner != '' BEGIN
    INSERT INTO usage VALUES (NEW.owner, NEW.size, 1)
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + NEW.size, files = files + 1;
END;
CREATE TRIGGER IF NOT EXISTS usage_on_delete AFTER DELETE ON entries
WHEN OLD.is_dir = 0 AND OLD.owner != '' BEGIN
    UPDATE usage SET bytes = bytes - OLD.size, files = files - 1 WHERE owner = OLD.owner;
END;
CREATE TRIGGER IF NOT EXISTS usage_on_update AFTER UPDATE OF size, owner ON entries
WHEN NEW.is_dir = 0 BEGIN
    UPDATE usage SET bytes = bytes - OLD.size, files = files - 1
    WHERE owner = OLD.owner AND OLD.owner != '';
    INSERT INTO usage SELECT NEW.owner, NEW.size, 1 WHERE NEW.owner != ''
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + NEW.size, files = files + 1;
END;
"""

#: Columns added to ``entries`` after its first release: (name, definition, what fills
#: them in rows that predate the column, if the default will not do). A metadata.db
#: written by an older master gets them at start-up: upgrading is restarting the master.
_ADDED_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    # the highest version ever handed to a writer; 0 reads as "the current one"
    # (see Store.issue_version)
    ("issued", "INTEGER NOT NULL DEFAULT 0", None),
    # when the entry appeared; 0 = not recorded (older files that were rewritten since)
    (
        "created",
        "REAL NOT NULL DEFAULT 0",
        # a file never rewritten was created by its only commit
        "UPDATE entries SET created = mtime WHERE is_dir = 0 AND version = 1",
    ),
    # who wrote the current version (whose QUOTA it counts against); '' = nobody: files
    # of an older release were never attributed, and count for no one until rewritten
    ("owner", "TEXT NOT NULL DEFAULT ''", None),
)


class Row(msgspec.Struct, frozen=True, gc=False):
    """One namespace entry as stored.

    A frozen msgspec Struct, not a frozen dataclass: every request makes one
    or more, and a frozen dataclass's ``__init__`` sets each of its ten fields
    through ``object.__setattr__``, ~25x the cost (timeit: 7.1 against 0.26 µs
    on the shared VM). ``gc=False``: it holds only numbers and strings.
    """

    id: int
    parent: int
    name: str
    is_dir: bool
    size: int
    mtime: float
    version: int
    checksum: str
    #: When the entry appeared (its first commit, for a file); 0 when not recorded.
    created: float = 0.0
    #: The user who wrote the current version (or copied it there); '' for nobody.
    owner: str = ""


_COLUMNS = "id, parent, name, is_dir, size, mtime, version, checksum, created, owner"


def _row(values: tuple) -> Row:
    return Row(values[0], values[1], values[2], bool(values[3]), *values[4:])


#: Called with the ids of rows whose ``stat`` changes, and whether they moved or went away
#: (``True``: every path through them now names something else) or only their
#: attributes changed (``False``: size, version, mtime, owner, replicas).
ChangeObserver = Callable[[Iterable[int], bool], None]


def _unobserved(entry_ids: Iterable[int], moved: bool) -> None:
    pass


@dataclass(frozen=True)
class Columns:
    """Entries as columns, one list per field, in name order: what ``ls`` sends.

    Why columns and not a :class:`Row` per entry: a listing is read, sent and
    dropped, and making the Rows cost more than SQLite's own work (``python -m
    bench.profile --phase ls``: 36% of the master's time in ``_row``). Tuples,
    because :meth:`Store.listing` hands the same ones to every caller.
    """

    names: tuple[str, ...]
    is_dir: tuple[bool, ...]
    sizes: tuple[int, ...]
    mtimes: tuple[float, ...]
    versions: tuple[int, ...]
    checksums: tuple[str, ...]
    created: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, rows: Iterable[Row]) -> Columns:
        rows = list(rows)
        return cls(
            tuple(r.name for r in rows),
            tuple(r.is_dir for r in rows),
            tuple(r.size for r in rows),
            tuple(r.mtime for r in rows),
            tuple(r.version for r in rows),
            tuple(r.checksum for r in rows),
            tuple(r.created for r in rows),
        )


_LISTED = "name, is_dir, size, mtime, version, checksum, created"
#: Entries the listing cache holds at most, over all directories (~300 bytes each).
LISTING_CACHE_ENTRIES = 50_000


class Store:
    """All metadata reads and writes. Not thread-safe: the master's event loop owns it.

    Every write that changes what ``stat`` shows calls :attr:`changed` - the master's
    cache leases (:mod:`.cache_leases`) hang on it: here, where no caller can forget.
    """

    def __init__(self, path: Path | str, clock: Clock = SYSTEM):
        self.path = Path(path)
        self.clock = clock
        self.changed: ChangeObserver = _unobserved
        self._next_id = 0
        self._id_ceiling = 0
        self.rollbacks = 0
        try:
            self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL keeps every commit across a process crash (kill -9); only a power
            # loss can drop the last transactions, and that is what replicas are for.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")
            self.db.executescript(_SCHEMA)
            self._add_missing_columns()
            self.db.executescript(_USAGE)
            with self.transaction():
                self.db.execute(
                    "INSERT OR IGNORE INTO entries (id, parent, name, is_dir, mtime, created) "
                    "VALUES (?, 0, '', 1, ?, ?)",
                    (ROOT_ID, clock.time(), clock.time()),
                )
                if self.get_meta("cluster_id") is None:
                    self.set_meta("cluster_id", uuid.uuid4().hex)
        except sqlite3.DatabaseError as exc:
            raise MetadataError(
                f"cannot open the metadata database {self.path}: {exc} (restore it from a "
                "backup, or move it away and rebuild the namespace with `sector fsck --adopt`)"
            ) from None
        self._has_settings = self._count_settings() > 0
        self._listings: dict[int, Columns] = {}
        self._listed_entries = 0
        self._listings_stamp = -1

    @property
    def cluster_id(self) -> str:
        """The cluster's identity, made with the namespace: slaves serve only its master."""
        return str(self.get_meta("cluster_id"))

    def adopt_cluster_id(self, cluster_id: str) -> None:
        """Take over another namespace's identity (``fsck --adopt`` of its slaves)."""
        self.set_meta("cluster_id", cluster_id)

    def id_ceiling(self) -> int:
        """Every id this namespace ever handed out is below this (see :meth:`allocate_id`)."""
        stored = int(self.get_meta("id_ceiling") or 0)
        current_max = self.db.execute("SELECT max(id) FROM entries").fetchone()[0] or ROOT_ID
        return max(stored, current_max + 1, self._id_ceiling)

    @property
    def adopted(self) -> range:
        """Ids adopted from slaves (``fsck --adopt``) come from this range: one in it that
        is not in the namespace may be a file of a slave not seen yet, not a deleted one."""
        low, high = self.get_meta("adopted_from"), self.get_meta("adopted_below")
        return range(int(low or 0), int(high or 0))

    def mark_adopted(self, low: int, high: int) -> None:
        known = self.adopted
        if known:
            low, high = min(low, known.start), max(high, known.stop)
        self.set_meta("adopted_from", low)
        self.set_meta("adopted_below", high)

    def raise_id_ceiling(self, above: int) -> None:
        """Never hand out ids up to ``above`` (objects adopted from slaves keep theirs)."""
        if int(self.get_meta("id_ceiling") or 0) <= above:
            self.set_meta("id_ceiling", above + 1)
        self._next_id = self._id_ceiling = 0

    def is_empty(self) -> bool:
        """True for a namespace that holds nothing but its root and never handed out an id."""
        has_entry = self.db.execute("SELECT 1 FROM entries WHERE id != ? LIMIT 1", (ROOT_ID,))
        return has_entry.fetchone() is None and self.get_meta("id_ceiling") is None

    def close(self) -> None:
        self.db.close()

    def _add_missing_columns(self) -> None:
        """Bring a metadata.db of an older release up to this schema, in one transaction."""
        present = {row[1] for row in self.db.execute("PRAGMA table_info(entries)")}
        missing = [column for column in _ADDED_COLUMNS if column[0] not in present]
        if not missing:
            return
        with self.transaction():
            for name, definition, backfill in missing:
                self.db.execute(f"ALTER TABLE entries ADD COLUMN {name} {definition}")
                if backfill:
                    self.db.execute(backfill)

    def transaction(self) -> _Transaction:
        return _Transaction(self.db, self._forget_id_block)

    def _forget_id_block(self) -> None:
        """After a rollback the ceiling's update may be undone too: read it afresh.

        ``rollbacks`` counts them, so caches of rows read inside a transaction
        (the namespace's directory ids) know to drop what may never have existed.
        """
        self._next_id = self._id_ceiling = 0
        self.rollbacks += 1

    def lookup(self, parent: int, name: str) -> Row | None:
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? AND name = ?", (parent, name)
        ).fetchone()
        return _row(found) if found else None

    def get(self, entry_id: int) -> Row | None:
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()
        return _row(found) if found else None

    def children(self, parent: int) -> list[Row]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? ORDER BY name", (parent,)
        ).fetchall()
        return [_row(r) for r in rows]

    def listing(self, parent: int) -> Columns:
        """``parent``'s children as :class:`Columns`, from a cache while nothing changed.

        Why a cache: reading 2,000 rows out of SQLite into Python objects takes
        ~2.2 ms here, ~1.1 µs an entry, a ceiling of ~0.9M entries/s whatever
        the wire does; a directory listed again unchanged costs a look-up.
        Coherence: the cache is dropped whenever the connection's
        ``total_changes`` has moved (any row inserted, updated or deleted, in
        any table, even by a transaction later rolled back), and nothing read
        inside a transaction is kept, since it may yet be rolled back. Like the
        namespace's directory cache it trusts that this master is the
        database's only writer.
        """
        stamp = self.db.total_changes
        if stamp != self._listings_stamp:
            self._listings.clear()
            self._listed_entries = 0
            self._listings_stamp = stamp
        cached = self._listings.get(parent)
        if cached is not None:
            return cached
        rows = self.db.execute(
            f"SELECT {_LISTED} FROM entries WHERE parent = ? ORDER BY name", (parent,)
        ).fetchall()
        if rows:
            names, is_dir, sizes, mtimes, versions, checksums, created = zip(*rows, strict=True)
            columns = Columns(
                names, tuple(map(bool, is_dir)), sizes, mtimes, versions, checksums, created
            )
        else:
            columns = Columns((), (), (), (), (), (), ())
        if not self.db.in_transaction and len(columns) <= LISTING_CACHE_ENTRIES:
            if self._listed_entries + len(columns) > LISTING_CACHE_ENTRIES:
                self._listings.clear()
                self._listed_entries = 0
            self._listings[parent] = columns
            self._listed_entries += len(columns)
        return columns

    def has_children(self, parent: int) -> bool:
        return (
            self.db.execute("SELECT 1 FROM entries WHERE parent = ? LIMIT 1", (parent,)).fetchone()
            is not None
        )

    def descendants(self, entry_id: int) -> list[Row]:
        """Every entry below ``entry_id`` (not itself), files and directories."""
        rows = self.db.execute(
            f"""WITH RECURSIVE below(id) AS (
                    SELECT id FROM entries WHERE parent = ?
                    UNION ALL
                    SELECT e.id FROM entries e JOIN below b ON e.parent = b.id)
                SELECT {_COLUMNS} FROM entries WHERE id IN (SELECT id FROM below)""",
            (entry_id,),
        ).fetchall()
        return [_row(r) for r in rows]

    def path_of(self, entry_id: int) -> str:
        names = []
        row = self.get(entry_id)
        while row is not None and row.id != ROOT_ID:
            names.append(row.name)
            row = self.get(row.parent)
        return "/" + "/".join(reversed(names))

    def paths(self, entry_ids: Iterable[int]) -> dict[int, str]:
        """The path of each of ``entry_ids`` still in the namespace, each directory above
        them looked up once however many of them it holds."""
        dirs: dict[int, str] = {ROOT_ID: ""}

        def dir_path(dir_id: int) -> str | None:
            chain: list[Row] = []
            while dir_id not in dirs:
                row = self.get(dir_id)
                if row is None:
                    return None
                chain.append(row)
                dir_id = row.parent
            for row in reversed(chain):
                dirs[row.id] = dirs[row.parent] + "/" + row.name
            return dirs[chain[0].id] if chain else dirs[dir_id]

        found: dict[int, str] = {}
        batch = list(entry_ids)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for entry_id, parent, name in self.db.execute(
                f"SELECT id, parent, name FROM entries WHERE id IN ({marks})", chunk
            ):
                above = dir_path(parent)
                if above is not None:
                    found[entry_id] = above + "/" + name
        return found

    def allocate_id(self) -> int:
        """A fresh entry id, never handed out before, even across restarts.

        The ceiling is written with every id (one small commit, ~60 µs here,
        measured against ~1.9 ms for a whole create): so every object id a
        slave holds that is at or above it was handed out by a namespace this
        one never was - a backup restored, a database lost - which puts the
        master in safe mode instead of taking the object for garbage.
        """
        if not self._next_id:
            stored = self.get_meta("id_ceiling")
            current_max = self.db.execute("SELECT max(id) FROM entries").fetchone()[0] or ROOT_ID
            self._next_id = max(int(stored or 0), current_max + 1)
        allocated = self._next_id
        self._next_id += 1
        self._id_ceiling = self._next_id
        self.set_meta("id_ceiling", self._next_id)
        return allocated

    def insert(
        self,
        parent: int,
        name: str,
        is_dir: bool,
        *,
        entry_id: int | None = None,
        size: int = 0,
        mtime: float | None = None,
        version: int = 0,
        checksum: str = "",
        owner: str = "",
    ) -> Row:
        """Add an entry, created now (at ``mtime``), with ``version`` also the highest issued;
        a file counts against its ``owner``'s quota."""
        entry_id = entry_id if entry_id is not None else self.allocate_id()
        mtime = self.clock.time() if mtime is None else mtime
        values = (entry_id, parent, name, int(is_dir), size, mtime, version, checksum, mtime, owner)
        self.db.execute(
            f"INSERT INTO entries ({_COLUMNS}, issued) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, version),
        )
        return Row(entry_id, parent, name, is_dir, size, mtime, version, checksum, mtime, owner)

    def usage(self, owner: str) -> tuple[int, int]:
        """(bytes, files) of the current versions ``owner`` wrote."""
        found = self.db.execute(
            "SELECT bytes, files FROM usage WHERE owner = ?", (owner,)
        ).fetchone()
        return (int(found[0]), int(found[1])) if found else (0, 0)

    def lease_base(self) -> int:
        """The first lease id of this run of the master: above every id an earlier run
        could have handed out (each run takes a block of 2**32)."""
        with self.transaction():
            run = int(self.get_meta("lease_runs") or 0) + 1  # type: ignore[call-overload]
            self.set_meta("lease_runs", run)
        return run << 32

    def leap_lease_runs(self, runs: int = 1 << 16) -> int:
        """Skip ``runs`` runs' lease ids: a new first lease id (see :meth:`lease_base`).

        For a namespace that may be younger than its cluster (``fsck --adopt``):
        its run counter may be behind the one its slaves saw lease ids from,
        and a slave takes each lease's token once.
        """
        with self.transaction():
            run = int(self.get_meta("lease_runs") or 0) + runs  # type: ignore[call-overload]
            self.set_meta("lease_runs", run)
        return run << 32

    def issue_version(self, entry_id: int) -> int:
        """The next version number of a file for a new writer: never handed out before.

        A write that is aborted does not give its number back. Its bytes may
        already sit on a slave, and the order to delete them is sent later
        (batched: see ``links.py``); had the next writer been given the same
        number, that order would delete the next writer's committed bytes.
        Persisted, so a restarted master does not hand it out again either.
        """
        issued = self.db.execute(
            "UPDATE entries SET issued = max(issued, version) + 1 WHERE id = ? RETURNING issued",
            (entry_id,),
        ).fetchone()
        if issued is None:
            raise KeyError(entry_id)
        return int(issued[0])

    def update_content(
        self,
        entry_id: int,
        size: int,
        version: int,
        checksum: str,
        mtime: float | None = None,
        owner: str | None = None,
    ) -> None:
        """A new version of a file; with ``owner``, the user who wrote it now owns it."""
        self.changed((entry_id,), False)
        mtime = self.clock.time() if mtime is None else mtime
        if owner is None:
            self.db.execute(
                "UPDATE entries SET size = ?, version = ?, checksum = ?, mtime = ? WHERE id = ?",
                (size, version, checksum, mtime, entry_id),
            )
            return
        self.db.execute(
            "UPDATE entries SET size = ?, version = ?, checksum = ?, mtime = ?, owner = ? "
            "WHERE id = ?",
            (size, version, checksum, mtime, owner, entry_id),
        )

    def rename(self, entry_id: int, parent: int, name: str) -> None:
        self.changed((entry_id,), True)
        self.db.execute(
            "UPDATE entries SET parent = ?, name = ? WHERE id = ?", (parent, name, entry_id)
        )

    def touch(self, entry_id: int, mtime: float | None = None) -> None:
        self.changed((entry_id,), False)
        self.db.execute(
            "UPDATE entries SET mtime = ? WHERE id = ?",
            (self.clock.time() if mtime is None else mtime, entry_id),
        )

    def delete(self, entry_ids: Iterable[int]) -> list[tuple[str, int, int]]:
        """Delete entries and their replica records; (slave, oid, version) of each copy,
        whose bytes the slaves must now drop."""
        ids = [(i,) for i in entry_ids]
        self.changed([i for (i,) in ids], True)
        self.db.executemany("DELETE FROM entries WHERE id = ?", ids)
        if self._has_settings:
            self.db.executemany("DELETE FROM replication WHERE id = ?", ids)
        copies: list[tuple[str, int, int]] = []
        for oid in ids:
            copies += self.db.execute(
                "DELETE FROM replicas WHERE oid = ? RETURNING slave, oid, version", oid
            ).fetchall()
        return copies

    def replicas(self, oid: int) -> list[tuple[str, int]]:
        """(slave id, version) for every recorded copy of object ``oid``."""
        return self.db.execute(
            "SELECT slave, version FROM replicas WHERE oid = ?", (oid,)
        ).fetchall()

    def set_replica(self, oid: int, slave: str, version: int) -> None:
        self.changed((oid,), False)
        self.db.execute(
            "INSERT OR REPLACE INTO replicas (oid, slave, version) VALUES (?, ?, ?)",
            (oid, slave, version),
        )

    def drop_replica(self, oid: int, slave: str) -> None:
        self.changed((oid,), False)
        self.db.execute("DELETE FROM replicas WHERE oid = ? AND slave = ?", (oid, slave))

    def replicas_on(self, slave: str) -> Iterator[tuple[int, int]]:
        """(oid, version) of every replica recorded on ``slave``."""
        yield from self.db.execute("SELECT oid, version FROM replicas WHERE slave = ?", (slave,))

    def versions(self, oids: Iterable[int]) -> dict[int, int]:
        """Current version of each of ``oids`` that is still a file in the namespace."""
        found: dict[int, int] = {}
        batch = list(oids)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for oid, version in self.db.execute(
                f"SELECT id, version FROM entries WHERE is_dir = 0 AND id IN ({marks})", chunk
            ):
                found[oid] = version
        return found

    def files_with_replicas(self, batch: int = 2000) -> Iterator[list[tuple[Row, list[str]]]]:
        """Every file with the slaves recorded as holding its current version, in batches
        (ordered by id), so that a scan of a large namespace can yield between them."""
        after = 0
        while True:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE is_dir = 0 AND id > ? ORDER BY id LIMIT ?",
                (after, batch),
            ).fetchall()
            if not rows:
                return
            found = [_row(r) for r in rows]
            after = found[-1].id
            holders: dict[int, list[str]] = {}
            marks = ",".join("?" * len(found))
            for oid, slave in self.db.execute(
                "SELECT r.oid, r.slave FROM replicas r JOIN entries e "
                f"ON e.id = r.oid AND e.version = r.version WHERE r.oid IN ({marks})",
                [r.id for r in found],
            ):
                holders.setdefault(oid, []).append(slave)
            yield [(row, holders.get(row.id, [])) for row in found]

    def current_holders(self, row: Row) -> list[str]:
        """Ids of the slaves recorded as holding ``row``'s current version."""
        return [
            slave
            for (slave,) in self.db.execute(
                "SELECT slave FROM replicas WHERE oid = ? AND version = ?", (row.id, row.version)
            )
        ]

    def ancestry(self, entry_id: int) -> list[Row]:
        """The entries from the root down to ``entry_id`` (itself last); [] if it is gone."""
        rows = self.db.execute(
            f"""WITH RECURSIVE up(id, depth) AS (
                    SELECT ?, 0
                    UNION ALL
                    SELECT e.parent, u.depth + 1 FROM entries e JOIN up u ON e.id = u.id
                    WHERE e.id != {ROOT_ID})
                SELECT {", ".join("e." + c for c in _COLUMNS.split(", "))}
                FROM up JOIN entries e ON e.id = up.id ORDER BY up.depth DESC""",
            (entry_id,),
        ).fetchall()
        return [_row(r) for r in rows]

    # --- per-path replication settings (``sector replicate``) ---------------------------

    def _count_settings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM replication").fetchone()[0])

    @property
    def has_replication_settings(self) -> bool:
        """Whether any entry carries a setting (when none does, nobody needs its path)."""
        return self._has_settings

    def replication_settings(
        self, entry_ids: list[int]
    ) -> dict[int, tuple[int | None, bool | None]]:
        """``{id: (number, hireliable)}`` for those of ``entry_ids`` that carry a setting."""
        if not self._has_settings or not entry_ids:
            return {}
        marks = ",".join("?" * len(entry_ids))
        return {
            entry_id: (number, None if hireliable is None else bool(hireliable))
            for entry_id, number, hireliable in self.db.execute(
                f"SELECT id, number, hireliable FROM replication WHERE id IN ({marks})",
                entry_ids,
            )
        }

    def set_replication(self, entry_id: int, number: int | None, hireliable: bool | None) -> None:
        """Set (or with both None, clear) an entry's replication setting."""
        if number is None and hireliable is None:
            self.db.execute("DELETE FROM replication WHERE id = ?", (entry_id,))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO replication (id, number, hireliable) VALUES (?, ?, ?)",
                (entry_id, number, None if hireliable is None else int(hireliable)),
            )
        self._has_settings = self._count_settings() > 0

    def current(self, oids: Iterable[int]) -> dict[int, tuple[int, str, int]]:
        """(version, checksum, highest version issued) of each of ``oids`` that is still a
        file in the namespace."""
        found: dict[int, tuple[int, str, int]] = {}
        batch = list(oids)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for oid, version, checksum, issued in self.db.execute(
                "SELECT id, version, checksum, max(issued, version) FROM entries "
                f"WHERE is_dir = 0 AND id IN ({marks})",
                chunk,
            ):
                found[oid] = (version, checksum, issued)
        return found

    def raise_issued(self, entry_id: int, version: int) -> None:
        """Count ``version`` of a file as issued (so that it is never issued again)."""
        self.db.execute(
            "UPDATE entries SET issued = max(issued, ?) WHERE id = ?", (version, entry_id)
        )

    def totals(self) -> tuple[int, int, int]:
        """(files, directories, bytes) in the whole namespace."""
        files, dirs, size = self.db.execute(
            "SELECT sum(is_dir = 0), sum(is_dir = 1), sum(size) FROM entries"
        ).fetchone()
        return int(files or 0), int(dirs or 0) - 1, int(size or 0)

    def member_key(self, slave_id: str) -> str | None:
        """The fingerprint of the key slave ``slave_id`` joined with (None: never joined
        since keys were pinned): only that key may have the id certified again."""
        found = self.get_meta(f"member_key:{slave_id}")
        return None if found is None else str(found)

    def pin_member_key(self, slave_id: str, fingerprint: str) -> None:
        with self.transaction():
            self.set_meta(f"member_key:{slave_id}", fingerprint)

    def get_meta(self, key: str) -> object:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class _Transaction:
    """``with store.transaction():`` - one atomic, durable unit of change."""

    def __init__(self, db: sqlite3.Connection, on_rollback: Callable[[], None]):
        self.db = db
        self.on_rollback = on_rollback

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        if exc_type:
            self.on_rollback()
