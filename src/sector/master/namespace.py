"""Sector's namespace semantics on top of the store.

Every method takes normalised paths (see :mod:`sector.protocol.paths`) and
raises the :mod:`sector.errors` exception a user should see. Nothing here knows
about slaves or sockets: it is the tree, and the rules for changing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from ..errors import (
    InvalidError,
    SectorExistsError,
    SectorIsADirectoryError,
    SectorNotADirectoryError,
    SectorNotEmptyError,
    SectorNotFoundError,
    SectorPermissionError,
)
from ..protocol.paths import ROOT, components, is_within, split
from .store import ROOT_ID, Columns, Row, Store

#: Directory paths whose ids the namespace remembers (cleared wholesale when full).
DIR_CACHE_LIMIT = 100_000


@dataclass
class Removal:
    """What ``remove`` took away: the files, and (slave, oid, version) of every copy."""

    files: list[Row]
    copies: list[tuple[str, int, int]]


class Namespace:
    """The tree, with the ids of directories cached by path.

    Profiling a stat loop (``python -m bench.profile --phase stat``) showed
    every request walking the tree from the root, one SELECT per path
    component; a rename walked it four times. Directory ids never change while
    the directory stays where it is, so the cache is dropped whenever a
    directory is removed or moved, or a transaction rolls back (it may have
    cached directories that were never committed). Files are never cached.
    """

    def __init__(self, store: Store):
        self.store = store
        self._dirs: dict[str, int] = {}
        self._rollbacks = store.rollbacks

    def _forget_dirs(self) -> None:
        self._dirs.clear()
        self._rollbacks = self.store.rollbacks

    def _dir_id(self, path: str) -> int | None:
        """Id of the directory at ``path``; None when missing or not a directory.

        Up from ``path`` to the nearest directory already known, then down one
        look-up per name, caching each: a loop, not a recursion, because paths
        may be as deep as MAX_PATH_BYTES allows (~2,000 names; issue 9: ~990
        levels hit Python's recursion limit).
        """
        if self.store.rollbacks != self._rollbacks:
            self._forget_dirs()
        missing: list[str] = []  # the paths below the nearest known directory, deepest first
        here = path
        known = self._dirs.get(here)
        while known is None and here != ROOT:
            missing.append(here)
            here = split(here)[0]
            known = self._dirs.get(here)
        directory = ROOT_ID if known is None else known
        for below in reversed(missing):
            row = self.store.lookup(directory, split(below)[1])
            if row is None or not row.is_dir:
                return None
            if len(self._dirs) >= DIR_CACHE_LIMIT:
                self._dirs.clear()
            self._dirs[below] = directory = row.id
        return directory

    def find(self, path: str) -> Row | None:
        """The entry at ``path``, or None when any part of it is missing."""
        if path == ROOT:
            return self.store.get(ROOT_ID)
        parent_path, name = split(path)
        parent = self._dir_id(parent_path)
        return None if parent is None else self.store.lookup(parent, name)

    def directory_ids(self, path: str) -> list[int]:
        """Ids of the directories above ``path``, the root left out (it never moves);
        from the cache, after a ``find`` of ``path``. What a cached ``stat`` of
        ``path`` stands on besides the entry itself (:mod:`.cache_leases`)."""
        ids: list[int] = []
        parent = split(path)[0]
        while parent != ROOT:
            known = self._dir_id(parent)
            if known is not None:
                ids.append(known)
            parent = split(parent)[0]
        return ids

    def stat(self, path: str) -> Row:
        row = self.find(path)
        if row is None:
            raise SectorNotFoundError(path=path)
        return row

    def file(self, path: str) -> Row:
        row = self.stat(path)
        if row.is_dir:
            raise SectorIsADirectoryError("is a directory", path)
        return row

    def list(self, path: str) -> Columns:
        """A directory's children by name; a file lists as itself."""
        row = self.stat(path)
        return self.store.listing(row.id) if row.is_dir else Columns.of([row])

    def mkdir(self, path: str) -> Row:
        """Create ``path`` and any missing parents; E_EXIST if it is already there."""
        if self.find(path) is not None:
            raise SectorExistsError(path=path)
        with self.store.transaction():
            return self._make_dirs(path)

    def parent_for_new(self, path: str) -> Row:
        """The directory a new entry at ``path`` goes in, created if missing."""
        if path == ROOT:
            raise SectorExistsError(path=path)
        parent_path, _ = split(path)
        return self._make_dirs(parent_path)

    def create_file(
        self, path: str, entry_id: int, size: int, version: int, checksum: str, owner: str = ""
    ) -> Row:
        """Add a committed file at ``path`` (parents made as needed); inside a transaction.

        E_EXIST if something took the path meanwhile; the parent's mtime moves,
        as a directory's does when a file appears in it.
        """
        self.check_new(path)
        parent = self.parent_for_new(path)
        self.store.touch(parent.id)
        return self.store.insert(
            parent.id,
            split(path)[1],
            False,
            entry_id=entry_id,
            size=size,
            version=version,
            checksum=checksum,
            owner=owner,
        )

    def _make_dirs(self, path: str) -> Row:
        known = self._dir_id(path)
        if known is not None:
            row = self.store.get(known)
            assert row is not None
            return row
        row = self.store.get(ROOT_ID)
        assert row is not None
        walked = ""
        for name in components(path):
            walked += "/" + name
            child = self.store.lookup(row.id, name)
            if child is None:
                self.store.touch(row.id)
                child = self.store.insert(row.id, name, is_dir=True)
            elif not child.is_dir:
                raise SectorNotADirectoryError("not a directory", walked)
            row = child
        return row

    def remove(self, path: str, recursive: bool, row: Row | None = None) -> Removal:
        """Delete ``path`` (``row``: its entry, when the caller has it already).

        Returns the files removed and the copies of their bytes the slaves hold,
        read in the same transaction that forgets them.
        """
        if path == ROOT:
            raise SectorPermissionError("the root cannot be removed", path)
        row = row or self.stat(path)
        below: list[Row] = []
        if row.is_dir:
            if not recursive and self.store.has_children(row.id):
                raise SectorNotEmptyError(path=path)
            below = self.store.descendants(row.id)
            self._forget_dirs()
        with self.store.transaction():
            copies = self.store.delete([row.id] + [r.id for r in below])
            self.store.touch(row.parent)
        return Removal([r for r in [row, *below] if not r.is_dir], copies)

    def move(self, src: str, dst: str, replace: bool = False) -> tuple[Row, Removal]:
        """Rename; a directory moves with everything in it, as one metadata change.

        Something at ``dst`` is E_EXIST, unless ``replace``: then it is replaced
        the way POSIX ``rename(2)`` replaces, in the same transaction, so others
        see the old entry or the new one and never neither. Returns the moved
        entry and what was replaced (its copies are the slaves' to delete).
        """
        if src == ROOT:
            raise SectorPermissionError("the root cannot be moved", src)
        row = self.stat(src)
        if src == dst:
            return row, Removal([], [])
        target = self.find(dst)
        if target is not None and not replace:
            raise SectorExistsError(path=dst)
        if row.is_dir and is_within(dst, src):
            raise InvalidError("cannot move a directory into itself", dst)
        parent_path, name = split(dst)
        if row.is_dir:
            self._forget_dirs()
        replaced = Removal([], [])
        with self.store.transaction():
            if target is not None:
                replaced = self.clear_for(target, dst, incoming_dir=row.is_dir)
            parent = self._make_dirs(parent_path)
            self.store.rename(row.id, parent.id, name)
            self.store.touch(row.parent)
            if parent.id != row.parent:
                self.store.touch(parent.id)
        return msgspec.structs.replace(row, parent=parent.id, name=name), replaced

    def clear_for(self, target: Row, path: str, incoming_dir: bool) -> Removal:
        """Delete ``target`` (at ``path``) to put another entry there; inside a transaction.

        ``rename(2)``'s rules: a file replaces a file, a directory an empty
        directory (E_NOEMPTY for a full one); a mismatch is IsADirectoryError or
        NotADirectoryError.
        """
        if target.is_dir and not incoming_dir:
            raise SectorIsADirectoryError("is a directory: a file cannot replace it", path)
        if incoming_dir and not target.is_dir:
            raise SectorNotADirectoryError("not a directory: a directory cannot replace it", path)
        if target.is_dir:
            if self.store.has_children(target.id):
                raise SectorNotEmptyError(path=path)
            self._forget_dirs()
        return Removal([] if target.is_dir else [target], self.store.delete([target.id]))

    def set_mtime(self, path: str, mtime: float) -> None:
        """Set an entry's modification time (``utime``); E_INVALID unless finite."""
        if not math.isfinite(mtime):
            raise InvalidError(f"a time must be a finite number of seconds, not {mtime}", path)
        row = self.stat(path)
        with self.store.transaction():
            self.store.touch(row.id, mtime)

    def check_new(self, path: str) -> None:
        """Refuse a path that exists already, or that would need a file as parent."""
        if self.find(path) is not None:
            raise SectorExistsError(path=path)
        if self._dir_id(split(path)[0]) is not None:
            return  # the parent is a directory: the common case, answered from the cache
        walked = ""
        row = self.store.get(ROOT_ID)
        for name in components(split(path)[0]):
            walked += "/" + name
            assert row is not None
            row = self.store.lookup(row.id, name)
            if row is None:
                return
            if not row.is_dir:
                raise SectorNotADirectoryError("not a directory", walked)
