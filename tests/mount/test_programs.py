"""Real programs on a mounted cluster: cp, rsync, tar, git, grep, sqlite3, df.

Each test runs the program a person would run, on a directory of the mount,
and checks the result both through the mount and through Sector's own client,
so a file that only *looks* right through the kernel's caches cannot pass.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from sector.client import Client
from tests.support import random_file, sha256_of

from .conftest import Mount

pytestmark = pytest.mark.timeout(120)


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stderr}"
    return done.stdout


def make_tree(root: Path) -> dict[str, str]:
    """A small tree of text and binary files (one empty, one of 3 MB); name -> sha256."""
    sums = {}
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    for name, size in {
        "a.txt": 0,
        "b.bin": 1536,
        "docs/readme.md": 700,
        "docs/deep/er/blob": 3_000_000,
        "docs/deep/notes.txt": 65_537,
    }.items():
        sums[name] = random_file(root / name, size)
    (root / "docs" / "readme.md").write_text("needle in a haystack\n" * 20)
    sums["docs/readme.md"] = sha256_of(root / "docs" / "readme.md")
    return sums


def tree_of(root: Path) -> dict[str, tuple[int, str]]:
    """relative path -> (size, sha256) for files; directories map to (-1, "")."""
    found: dict[str, tuple[int, str]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), root)] = (-1, "")
        for name in files:
            path = Path(directory) / name
            found[os.path.relpath(path, root)] = (path.stat().st_size, sha256_of(path))
    return found


def test_cp_r_copies_a_tree_in_and_out_unchanged(
    here: Path, workdir: str, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    sums = make_tree(source)
    run("cp", "-r", source, here / "tree")
    assert tree_of(here / "tree") == tree_of(source)
    # the cluster itself holds the bytes, not just the kernel's cache
    blob = client.stat(f"{workdir}/tree/docs/deep/er/blob")
    assert blob.size == 3_000_000
    client.download(f"{workdir}/tree/docs/deep/er/blob", tmp_path / "blob")
    assert sha256_of(tmp_path / "blob") == sums["docs/deep/er/blob"]
    run("cp", "-r", here / "tree", tmp_path / "back")
    assert tree_of(tmp_path / "back") == tree_of(source)


def test_rsync_a_in_and_out_leaves_identical_trees(here: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    run("rsync", "-a", f"{source}/", f"{here}/synced/")
    assert tree_of(here / "synced") == tree_of(source)
    run("rsync", "-a", f"{here}/synced/", f"{tmp_path}/back/")
    assert tree_of(tmp_path / "back") == tree_of(source)
    # a second pass changes nothing and still succeeds
    run("rsync", "-a", "--checksum", f"{source}/", f"{here}/synced/")
    assert tree_of(here / "synced") == tree_of(source)


def test_rsync_a_keeps_times_so_a_second_pass_has_nothing_to_do(here: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    for number, path in enumerate(sorted(source.rglob("*"))):
        os.utime(path, (1_600_000_000 + number, 1_600_000_000.5 + number))
    run("rsync", "-a", f"{source}/", f"{here}/synced/")
    for path in source.rglob("*"):
        copied = here / "synced" / path.relative_to(source)
        assert abs(copied.stat().st_mtime - path.stat().st_mtime) < 1e-3, path
    changes = run("rsync", "-a", "--itemize-changes", f"{source}/", f"{here}/synced/")
    assert changes.strip() == ""


def test_tar_extracts_onto_the_mount_and_archives_from_it(here: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    run("tar", "cf", tmp_path / "in.tar", "-C", source, ".")
    (here / "unpacked").mkdir()
    run("tar", "xf", tmp_path / "in.tar", "-C", here / "unpacked")
    assert tree_of(here / "unpacked") == tree_of(source)
    run("tar", "cf", here / "out.tar", "-C", here / "unpacked", ".")
    (tmp_path / "again").mkdir()
    run("tar", "xf", here / "out.tar", "-C", tmp_path / "again")
    assert tree_of(tmp_path / "again") == tree_of(source)


def test_git_init_add_commit_in_a_directory_on_the_mount(here: Path) -> None:
    repo = here / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    run(*git, "init", "-q", cwd=repo)
    (repo / "hello.py").write_text("print('hello')\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "data.txt").write_text("one\ntwo\n")
    run(*git, "add", ".", cwd=repo)
    run(*git, "commit", "-q", "-m", "first", cwd=repo)
    (repo / "sub" / "data.txt").write_text("one\ntwo\nthree\n")
    run(*git, "commit", "-q", "-am", "second", cwd=repo)
    assert run(*git, "log", "--format=%s", cwd=repo).split() == ["second", "first"]
    assert run(*git, "status", "--porcelain", cwd=repo) == ""
    assert run(*git, "fsck", "--strict", cwd=repo) == ""
    assert run(*git, "show", "HEAD~1:sub/data.txt", cwd=repo) == "one\ntwo\n"


def test_grep_r_finds_text_across_the_tree(here: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    run("cp", "-r", source, here / "tree")
    found = run("grep", "-rl", "needle", here / "tree")
    assert found.splitlines() == [str(here / "tree" / "docs" / "readme.md")]
    assert run("grep", "-rc", "haystack", here / "tree" / "docs" / "readme.md") == "20\n"


def test_sqlite3_creates_and_updates_a_database(here: Path, workdir: str, client: Client) -> None:
    """Journal files, fsync, ftruncate and random page writes: what SQLite needs."""
    path = here / "app.db"

    def connect() -> closing[sqlite3.Connection]:
        return closing(sqlite3.connect(path))

    with connect() as db:
        db.execute("create table item (id integer primary key, name text, blob blob)")
        with db:
            db.executemany(
                "insert into item (name, blob) values (?, ?)",
                [(f"n{i}", os.urandom(300)) for i in range(500)],
            )
    with connect() as db, db:
        db.execute("update item set name = 'changed' where id % 7 = 0")
        db.execute("delete from item where id > 400")
    with connect() as db:
        db.execute("vacuum")  # rewrites pages, then shrinks the file
    with connect() as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert db.execute("select count(*) from item").fetchone() == (400,)
        assert db.execute("select count(*) from item where name = 'changed'").fetchone() == (57,)
    assert not (here / "app.db-journal").exists()
    # every connection is closed, so the cluster holds exactly what the kernel shows
    assert client.stat(f"{workdir}/app.db").size == path.stat().st_size
    if shutil.which("sqlite3"):  # the command-line shell, as a person would use it
        assert run("sqlite3", path, "select count(*) from item;") == "400\n"


def test_df_shows_the_cluster_capacity(mount: Mount, client: Client) -> None:
    out = run("df", "-B1", "--output=source,fstype,size,avail", mount.path).splitlines()
    source, fstype, size, avail = out[1].split()
    assert source.startswith("sector://127.0.0.1:")
    assert fstype == "fuse.sector"
    capacity = client.sysinfo()["capacity"]  # the three slaves share one disk: counted once
    assert capacity["disks"] == 1
    assert abs(int(size) - capacity["total"]) <= 4096
    assert 0 < int(avail) <= int(size)
    assert mount.path.name in run("df", "-h", mount.path)
