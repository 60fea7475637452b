"""Sector's namespace semantics on top of the store.

Every method takes normalised paths (see :mod:`sector.protocol.paths`) and
raises the :mod:`sector.errors` exception a user should see. Nothing here knows
about slaves or sockets: it is the tree, and the rules for changing it.
"""

from __future__ import annotations

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
from .store import ROOT_ID, Row, Store


class Namespace:
    def __init__(self, store: Store):
        self.store = store

    def find(self, path: str) -> Row | None:
        """The entry at ``path``, or None when any part of it is missing."""
        row = self.store.get(ROOT_ID)
        for name in components(path):
            if row is None or not row.is_dir:
                return None
            row = self.store.lookup(row.id, name)
        return row

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

    def list(self, path: str) -> list[Row]:
        """A directory's children by name; a file lists as itself."""
        row = self.stat(path)
        return self.store.children(row.id) if row.is_dir else [row]

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

    def _make_dirs(self, path: str) -> Row:
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

    def remove(self, path: str, recursive: bool) -> list[Row]:
        """Delete ``path``; return the files removed, whose data must go too."""
        if path == ROOT:
            raise SectorPermissionError("the root cannot be removed", path)
        row = self.stat(path)
        below: list[Row] = []
        if row.is_dir:
            if not recursive and self.store.has_children(row.id):
                raise SectorNotEmptyError(path=path)
            below = self.store.descendants(row.id)
        with self.store.transaction():
            self.store.delete([row.id] + [r.id for r in below])
            self.store.touch(row.parent)
        return [r for r in [row, *below] if not r.is_dir]

    def move(self, src: str, dst: str) -> Row:
        """Rename; a directory moves with everything in it, as one metadata change."""
        if src == ROOT:
            raise SectorPermissionError("the root cannot be moved", src)
        row = self.stat(src)
        if self.find(dst) is not None:
            raise SectorExistsError(path=dst)
        if row.is_dir and is_within(dst, src):
            raise InvalidError("cannot move a directory into itself", dst)
        parent_path, name = split(dst)
        with self.store.transaction():
            parent = self._make_dirs(parent_path)
            self.store.rename(row.id, parent.id, name)
            self.store.touch(row.parent)
            self.store.touch(parent.id)
        return self.stat(dst)

    def check_new(self, path: str) -> None:
        """Refuse a path that exists already, or that would need a file as parent."""
        if self.find(path) is not None:
            raise SectorExistsError(path=path)
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
