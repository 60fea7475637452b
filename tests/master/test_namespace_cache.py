"""The namespace's directory-id cache never answers with a stale or uncommitted directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.master.namespace import Namespace
from sector.master.store import Store


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Namespace]:
    store = Store(tmp_path / "meta.db")
    yield Namespace(store)
    store.close()


def add_file(ns: Namespace, path: str) -> None:
    with ns.store.transaction():
        parent = ns.parent_for_new(path)
        ns.store.insert(parent.id, path.rsplit("/", 1)[1], False)


def test_moved_directory_is_found_only_at_its_new_path(ns: Namespace) -> None:
    add_file(ns, "/a/b/f")
    assert ns.find("/a/b/f") is not None  # caches /a and /a/b
    ns.move("/a/b", "/c")
    assert ns.find("/a/b/f") is None
    assert ns.find("/c/f") is not None
    add_file(ns, "/a/b/g")  # a new /a/b must be a new directory, not the moved one
    assert ns.list("/a/b").names == ("g",)
    assert ns.list("/c").names == ("f",)


def test_removed_directory_is_forgotten(ns: Namespace) -> None:
    add_file(ns, "/x/y/f")
    assert ns.find("/x/y/f") is not None
    ns.remove("/x", recursive=True)
    assert ns.find("/x/y") is None
    assert ns.find("/x/y/f") is None
    add_file(ns, "/x/y/f")
    assert ns.find("/x/y/f") is not None


def test_directories_of_a_rolled_back_transaction_are_not_remembered(ns: Namespace) -> None:
    with pytest.raises(RuntimeError), ns.store.transaction():
        ns.parent_for_new("/gone/deep/f")
        assert ns.find("/gone/deep") is not None  # seen inside the transaction
        raise RuntimeError("abort")
    assert ns.find("/gone/deep") is None
    assert ns.find("/gone") is None
    add_file(ns, "/gone/deep/f")
    assert ns.find("/gone/deep/f") is not None


def test_a_file_is_not_a_directory_even_when_cached_paths_surround_it(ns: Namespace) -> None:
    add_file(ns, "/p/file")
    assert ns.find("/p/file/child") is None
    ns.move("/p/file", "/p/other")
    assert ns.find("/p/other") is not None
    assert ns.find("/p/file") is None
