"""The namespace operations a mount and fsspec need, through ``Client`` against a real cluster.

Replacing moves and copies (POSIX ``rename(2)``): one transaction at the
master, so another client never sees the destination missing, and the
replaced file's bytes are deleted on its slave.
"""

from __future__ import annotations

import threading

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import wait_until


def put(client: Client, path: str, data: bytes) -> None:
    with client.open(path, "wb") as remote:
        remote.write(data)


def get(client: Client, path: str) -> bytes:
    with client.open(path) as remote:
        return remote.read()


def stored_objects(cluster: LocalCluster, checksum: str) -> list:
    """The files on any slave's disk holding a version with ``checksum``."""
    return [
        found
        for number in range(1, cluster.slaves + 1)
        for found in (cluster.layout.slave_dir(number) / "objects").rglob(f"*.{checksum}")
    ]


class Watcher:
    """Another client polling ``path`` the whole time, counting the moments it was missing."""

    def __init__(self, cluster: LocalCluster, path: str):
        self.session = cluster.connect()
        self.path = path
        self.missing = 0
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.session.close()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.looks += 1
            if not self.session.exists(self.path):
                self.missing += 1


def test_a_replacing_move_never_leaves_the_target_missing_and_frees_the_old_bytes(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    target = f"{workdir}/target"
    put(client, target, b"the first version")
    first = client.stat(target).checksum
    with Watcher(cluster, target) as watcher:
        for number in range(40):
            put(client, f"{workdir}/incoming", b"version %d" % number)
            client.move(f"{workdir}/incoming", target, overwrite=True)
    assert watcher.looks > 40 and watcher.missing == 0
    assert get(client, target) == b"version 39"
    wait_until(lambda: not stored_objects(cluster, first), 10, "the replaced bytes to go")


def test_a_replacing_copy_never_leaves_the_target_missing(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    target = f"{workdir}/target"
    put(client, target, b"old")
    put(client, f"{workdir}/source", b"copied over it")
    with Watcher(cluster, target) as watcher:
        for _ in range(20):
            client.copy(f"{workdir}/source", target, overwrite=True)
    assert watcher.missing == 0
    assert get(client, target) == b"copied over it"
    assert [e.name for e in client.ls(workdir)] == ["source", "target"]  # no temporaries


def test_nothing_replaces_a_file_being_written(client: Client, workdir: str) -> None:
    put(client, f"{workdir}/busy", b"committed")
    put(client, f"{workdir}/other", b"other")
    with client.open(f"{workdir}/busy", "wb") as writing:
        writing.write(b"being written")
        with pytest.raises(BlockingIOError):
            client.move(f"{workdir}/other", f"{workdir}/busy", overwrite=True)
        with pytest.raises(BlockingIOError):
            client.copy(f"{workdir}/other", f"{workdir}/busy", overwrite=True)
    assert get(client, f"{workdir}/busy") == b"being written"
    assert get(client, f"{workdir}/other") == b"other"


def test_replacing_follows_renames_rules_for_directories(client: Client, workdir: str) -> None:
    client.mkdir(f"{workdir}/full/inside")
    client.mkdir(f"{workdir}/empty")
    client.mkdir(f"{workdir}/moving")
    put(client, f"{workdir}/file", b"f")
    with pytest.raises(IsADirectoryError):
        client.move(f"{workdir}/file", f"{workdir}/empty", overwrite=True)
    with pytest.raises(NotADirectoryError):
        client.move(f"{workdir}/moving", f"{workdir}/file", overwrite=True)
    with pytest.raises(OSError, match="E_NOEMPTY"):
        client.move(f"{workdir}/moving", f"{workdir}/full", overwrite=True)
    with pytest.raises(FileExistsError):
        client.move(f"{workdir}/moving", f"{workdir}/empty")
    client.move(f"{workdir}/moving", f"{workdir}/empty", overwrite=True)
    assert [e.name for e in client.ls(workdir)] == ["empty", "file", "full"]


def test_a_set_modification_time_holds_until_the_next_commit(client: Client, workdir: str) -> None:
    put(client, f"{workdir}/f", b"x")
    client.set_mtime(f"{workdir}/f", 1_234_567_890.5)
    assert client.stat(f"{workdir}/f").timestamp == 1_234_567_890.5
    client.mkdir(f"{workdir}/d")
    client.set_mtime(f"{workdir}/d", 1000)
    assert client.stat(f"{workdir}/d").timestamp == 1000.0
    assert [e.timestamp for e in client.ls(workdir)] == [1000.0, 1_234_567_890.5]
    put(client, f"{workdir}/f", b"y")
    assert client.stat(f"{workdir}/f").timestamp > 1_234_567_890.5
    with pytest.raises(ValueError, match="finite"):
        client.set_mtime(f"{workdir}/f", float("nan"))
    with pytest.raises(FileNotFoundError):
        client.set_mtime(f"{workdir}/missing", 1.0)


def test_the_login_tells_the_client_what_its_user_may_do(cluster: LocalCluster) -> None:
    session = cluster.connect()
    assert session.rights.can_read("/any/path") and session.rights.can_write("/tests")
    session.logout()
    assert not session.rights.can_read("/")
