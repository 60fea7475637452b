"""Sector's namespace rules, on a real SQLite store in a temporary file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.errors import (
    E_EXIST,
    E_INVALID,
    E_NOEMPTY,
    E_NOEXIST,
    E_PERMISSION,
    SectorError,
)
from sector.master.namespace import Namespace
from sector.master.store import ROOT_ID, Store
from sector.protocol.paths import MAX_PATH_BYTES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "meta.db")
    yield opened
    opened.close()


@pytest.fixture
def ns(store: Store) -> Namespace:
    return Namespace(store)


def add_file(ns: Namespace, path: str, size: int = 0) -> int:
    """Create a file the way the master commits a new one: parents made as needed."""
    with ns.store.transaction():
        return ns.create_file(path, ns.store.allocate_id(), size, 1, "").id


def code_of(excinfo: pytest.ExceptionInfo[SectorError]) -> int:
    return excinfo.value.code


# --- lookups ------------------------------------------------------------------------


def test_find_walks_the_tree_and_returns_none_for_missing_parts(ns: Namespace) -> None:
    file_id = add_file(ns, "/a/b/f")
    found = ns.find("/a/b/f")
    assert found is not None and found.id == file_id
    assert ns.find("/") is not None and ns.find("/").id == ROOT_ID
    assert ns.find("/a/x") is None
    assert ns.find("/a/b/f/under-a-file") is None


def test_stat_of_a_missing_path_is_e_noexist_naming_the_path(ns: Namespace) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        ns.stat("/nothing")
    assert caught.value.code == E_NOEXIST
    assert caught.value.path == "/nothing"


def test_file_of_a_directory_is_an_is_a_directory_error(ns: Namespace) -> None:
    ns.mkdir("/d")
    with pytest.raises(IsADirectoryError) as caught:
        ns.file("/d")
    assert caught.value.code == E_INVALID


def test_list_gives_children_by_name_and_a_file_lists_as_itself(ns: Namespace) -> None:
    for name in ("c", "a", "b"):
        add_file(ns, f"/d/{name}")
    assert ns.list("/d").names == ("a", "b", "c")
    assert ns.list("/d/b").names == ("b",)


# --- mkdir --------------------------------------------------------------------------


def test_mkdir_creates_missing_parents(ns: Namespace) -> None:
    row = ns.mkdir("/x/y/z")
    assert row.is_dir and row.name == "z"
    assert ns.stat("/x").is_dir and ns.stat("/x/y").is_dir


@pytest.mark.parametrize("path", ["/", "/d", "/d/f"])
def test_mkdir_of_an_existing_path_is_e_exist(ns: Namespace, path: str) -> None:
    add_file(ns, "/d/f")
    with pytest.raises(FileExistsError) as caught:
        ns.mkdir(path)
    assert caught.value.code == E_EXIST


def test_mkdir_through_a_file_is_not_a_directory_naming_the_file(ns: Namespace) -> None:
    add_file(ns, "/d/f")
    with pytest.raises(NotADirectoryError) as caught:
        ns.mkdir("/d/f/sub")
    assert caught.value.code == E_INVALID
    assert caught.value.path == "/d/f"
    assert ns.find("/d/f/sub") is None


def test_mkdir_updates_the_parents_mtime(ns: Namespace, store: Store) -> None:
    ns.mkdir("/p")
    store.touch(ns.stat("/p").id, mtime=1.0)
    ns.mkdir("/p/q")
    assert ns.stat("/p").mtime > 1.0


# --- new files ----------------------------------------------------------------------


def test_check_new_accepts_a_free_path_with_missing_parents(ns: Namespace) -> None:
    ns.check_new("/brand/new/file")


def test_check_new_refuses_an_existing_path(ns: Namespace) -> None:
    add_file(ns, "/f")
    with pytest.raises(FileExistsError):
        ns.check_new("/f")


def test_check_new_refuses_a_file_as_an_intermediate_component(ns: Namespace) -> None:
    add_file(ns, "/a/f")
    with pytest.raises(NotADirectoryError) as caught:
        ns.check_new("/a/f/b/c")
    assert caught.value.path == "/a/f"


def test_parent_for_new_refuses_the_root(ns: Namespace) -> None:
    with pytest.raises(FileExistsError):
        ns.parent_for_new("/")


# --- remove -------------------------------------------------------------------------


def test_remove_a_file_returns_it(ns: Namespace) -> None:
    file_id = add_file(ns, "/d/f")
    removed = ns.remove("/d/f", recursive=False)
    assert [r.id for r in removed.files] == [file_id]
    assert ns.find("/d/f") is None and ns.find("/d") is not None


def test_remove_an_empty_directory_without_recursive(ns: Namespace) -> None:
    ns.mkdir("/empty")
    assert ns.remove("/empty", recursive=False).files == []
    assert ns.find("/empty") is None


def test_remove_a_non_empty_directory_without_recursive_is_e_noempty(ns: Namespace) -> None:
    add_file(ns, "/d/f")
    with pytest.raises(SectorError) as caught:
        ns.remove("/d", recursive=False)
    assert code_of(caught) == E_NOEMPTY
    assert ns.find("/d/f") is not None


def test_recursive_remove_returns_every_file_below_and_only_files(ns: Namespace) -> None:
    ids = {add_file(ns, p) for p in ("/d/f1", "/d/sub/f2", "/d/sub/deeper/f3")}
    ns.mkdir("/d/empty-dir")
    keep = add_file(ns, "/dd/f")
    removed = ns.remove("/d", recursive=True)
    assert {r.id for r in removed.files} == ids
    assert all(not r.is_dir for r in removed.files)
    assert ns.find("/d") is None and ns.find("/d/sub/deeper") is None
    found = ns.find("/dd/f")
    assert found is not None and found.id == keep


def test_remove_the_root_is_refused(ns: Namespace) -> None:
    with pytest.raises(PermissionError) as caught:
        ns.remove("/", recursive=True)
    assert caught.value.code == E_PERMISSION


def test_remove_a_missing_path_is_e_noexist(ns: Namespace) -> None:
    with pytest.raises(FileNotFoundError):
        ns.remove("/ghost", recursive=True)


# --- move ---------------------------------------------------------------------------


def test_move_a_file_keeps_its_id(ns: Namespace) -> None:
    file_id = add_file(ns, "/a/f", size=5)
    moved, replaced = ns.move("/a/f", "/b/g")
    assert moved.id == file_id and moved.size == 5 and replaced.files == []
    assert ns.find("/a/f") is None


def test_moving_a_directory_takes_its_children_in_one_row_update(
    ns: Namespace, store: Store
) -> None:
    ids = [add_file(ns, f"/src/sub/f{i}") for i in range(50)]
    ns.mkdir("/dst")
    before = store.db.total_changes
    ns.move("/src", "/dst/moved")
    # one rename + the two parents' mtimes; nothing per child
    assert store.db.total_changes - before == 3
    assert ns.stat("/dst/moved/sub/f7").id == ids[7]
    assert ns.find("/src") is None


def test_move_onto_an_existing_path_is_e_exist(ns: Namespace) -> None:
    add_file(ns, "/a")
    add_file(ns, "/b")
    with pytest.raises(FileExistsError) as caught:
        ns.move("/a", "/b")
    assert caught.value.code == E_EXIST
    assert caught.value.path == "/b"


@pytest.mark.parametrize("dst", ["/d/inside", "/d/x/y/z"])
def test_move_a_directory_into_itself_is_e_invalid(ns: Namespace, dst: str) -> None:
    ns.mkdir("/d/x")
    with pytest.raises(ValueError) as caught:
        ns.move("/d", dst)
    assert caught.value.code == E_INVALID
    assert ns.stat("/d/x").is_dir


def test_move_to_a_sibling_with_a_shared_prefix_is_allowed(ns: Namespace) -> None:
    ns.mkdir("/d")
    ns.move("/d", "/d2")
    assert ns.stat("/d2").is_dir


def test_move_the_root_is_refused(ns: Namespace) -> None:
    with pytest.raises(PermissionError):
        ns.move("/", "/elsewhere")


def test_move_under_a_file_is_not_a_directory(ns: Namespace) -> None:
    add_file(ns, "/f")
    add_file(ns, "/g")
    with pytest.raises(NotADirectoryError):
        ns.move("/g", "/f/g")
    assert ns.find("/g") is not None


def test_move_a_missing_source_is_e_noexist(ns: Namespace) -> None:
    with pytest.raises(FileNotFoundError):
        ns.move("/ghost", "/x")


def test_remove_reports_every_copy_the_slaves_must_drop(ns: Namespace) -> None:
    first, second = add_file(ns, "/d/f1"), add_file(ns, "/d/sub/f2")
    ns.store.set_replica(first, "slave-a", 1)
    ns.store.set_replica(first, "slave-b", 1)
    ns.store.set_replica(second, "slave-a", 3)
    removal = ns.remove("/d", recursive=True)
    assert sorted(removal.copies) == [
        ("slave-a", first, 1),
        ("slave-a", second, 3),
        ("slave-b", first, 1),
    ]
    assert ns.store.replicas(first) == [] and ns.store.replicas(second) == []


def test_a_new_file_moves_its_directorys_mtime(ns: Namespace) -> None:
    ns.mkdir("/d")
    ns.store.touch(ns.stat("/d").id, mtime=1.0)
    add_file(ns, "/d/f")
    assert ns.stat("/d").mtime > 1.0


def test_create_file_refuses_a_taken_path(ns: Namespace) -> None:
    add_file(ns, "/d/f")
    with pytest.raises(FileExistsError):
        add_file(ns, "/d/f")


def test_paths_as_deep_as_the_path_limit_allows_work_without_recursion(
    ns: Namespace,
) -> None:
    """Issue 9: ~990 levels gave E_UNKNOWN and a RecursionError in the master's log.
    The deepest path MAX_PATH_BYTES allows has ~2,000 names."""
    deep = "/d" * (MAX_PATH_BYTES // 2 - 4)
    assert deep.count("/") > 2000 - 10
    ns.mkdir(deep)
    assert ns.stat(deep).is_dir
    ns._forget_dirs()  # and from cold: each level looked up in turn
    with ns.store.transaction():
        ns.create_file(deep + "/f", ns.store.allocate_id(), 1, 1, "sum")
    assert ns.list(deep).names == ("f",)
    removal = ns.remove("/d", recursive=True)
    assert len(removal.files) == 1 and ns.find(deep) is None


# --- move with replace (POSIX rename) -------------------------------------------------


def test_replacing_a_file_is_one_transaction_that_hands_back_its_copies(
    ns: Namespace, store: Store
) -> None:
    moving = add_file(ns, "/a", size=1)
    replaced_id = add_file(ns, "/b", size=2)
    with store.transaction():
        store.set_replica(replaced_id, "s1", 1)
    moved, replaced = ns.move("/a", "/b", replace=True)
    assert moved.id == moving and ns.stat("/b").id == moving
    assert [r.id for r in replaced.files] == [replaced_id]
    assert replaced.copies == [("s1", replaced_id, 1)]
    assert ns.find("/a") is None and store.get(replaced_id) is None


def test_a_directory_replaces_only_an_empty_directory(ns: Namespace) -> None:
    add_file(ns, "/src/f")
    ns.mkdir("/full/sub")
    ns.mkdir("/empty")
    with pytest.raises(OSError) as full:
        ns.move("/src", "/full", replace=True)
    assert code_of(full) == E_NOEMPTY and ns.stat("/src/f")
    ns.move("/src", "/empty", replace=True)
    assert ns.stat("/empty/f") and ns.find("/src") is None


@pytest.mark.parametrize(
    ("src_is_dir", "error"), [(False, IsADirectoryError), (True, NotADirectoryError)]
)
def test_a_file_and_a_directory_never_replace_each_other(
    ns: Namespace, src_is_dir: bool, error: type[Exception]
) -> None:
    ns.mkdir("/dir")
    add_file(ns, "/file")
    src, dst = ("/dir", "/file") if src_is_dir else ("/file", "/dir")
    with pytest.raises(error):
        ns.move(src, dst, replace=True)
    assert ns.stat("/dir").is_dir and not ns.stat("/file").is_dir


def test_a_rename_onto_itself_changes_nothing(ns: Namespace) -> None:
    file_id = add_file(ns, "/same")
    moved, replaced = ns.move("/same", "/same", replace=True)
    assert moved.id == file_id and ns.stat("/same").id == file_id and replaced.copies == []


def test_set_mtime_keeps_a_finite_time_and_refuses_others(ns: Namespace) -> None:
    add_file(ns, "/f")
    ns.set_mtime("/f", -86400.0)  # before 1970 is a time too
    assert ns.stat("/f").mtime == -86400.0
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError) as caught:
            ns.set_mtime("/f", bad)
        assert code_of(caught) == E_INVALID
    with pytest.raises(FileNotFoundError):
        ns.set_mtime("/missing", 1.0)
