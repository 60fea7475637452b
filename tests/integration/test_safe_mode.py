"""A master never destroys what it does not know: cluster identity, safe mode, adoption.

Each test loses or replaces the master's metadata the way operators do - a
truncated ``metadata.db``, a mistyped ``--home``, an old backup restored - and
checks that not one object leaves a slave's disk until an administrator says
so, and that ``sector fsck --adopt`` brings the files back where they were.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import InvalidError
from sector.protocol.messages import READ, TRUNC, WRITE
from tests.cli.conftest import sector_for as sector_cli
from tests.support import admin, connect, root_password, wait_until

DEADLINE = 60.0


def write(client: Client, path: str, data: bytes) -> None:
    with client.open(path, WRITE | TRUNC) as remote:
        remote.write(data)


def read(client: Client, path: str) -> bytes:
    with client.open(path, READ) as remote:
        return remote.read()


def objects(cluster: LocalCluster) -> list[str]:
    """Every object file on every slave's disk (slave number / name)."""
    return sorted(
        f"{n}/{path.name}"
        for n in range(1, cluster.slaves + 1)
        for path in (cluster.layout.slave_dir(n) / "objects").rglob("*.*.*")
    )


def _object_of(client: Client, path: str) -> tuple[int, int]:
    with client.open(path, READ) as remote:
        return remote.grant.oid, remote.grant.version


def health(client: Client) -> dict:
    return client.sysinfo()["master"]["health"]


def settled(client: Client) -> bool:
    figures = health(client)
    return figures["scanned"] and not any(
        figures[k] for k in ("under_replicated", "lost", "copying", "queued", "safe_mode")
    )


def live(client: Client) -> int:
    return sum(s["status"] == "alive" for s in client.sysinfo()["slaves"])


FILES = {
    "/docs/a.txt": b"alpha" * 2000,
    "/docs/b.bin": os.urandom(300_000),
    "/deep/x/y/z": b"deep down" * 100,
}


@pytest.fixture
def cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """Three slaves, two replicas, paths refreshed on the slaves every second."""
    running = make_cluster(slaves=3, replicas=2, master_conf={"INVENTORY_INTERVAL": "1"})
    client = connect(running)
    for path, data in FILES.items():
        write(client, path, data)
    write(client, "/old/name", b"renamed later")
    client.move("/old/name", "/new/name")

    def renames_heard() -> bool:
        logs = [running.layout.slave_dir(n) / "paths.log" for n in (1, 2, 3)]
        return sum("/new/name" in log.read_text() for log in logs if log.exists()) == 2

    wait_until(renames_heard, timeout=DEADLINE, what="the slaves to note the rename")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="2 replicas of each file")
    client.close()
    return running


def test_a_truncated_metadata_file_deletes_nothing_and_adopt_brings_every_file_back(
    cluster: LocalCluster,
) -> None:
    before = objects(cluster)
    metadata = cluster.layout.master_home / "metadata.db"
    # the operator's mistake of the issue: stop the master, truncate its database
    cluster.restart_master(kill=False, meanwhile=lambda: metadata.write_bytes(b""))
    client = connect(cluster)
    wait_until(
        lambda: "seen so far: 3 slaves" in health(client)["safe_mode"],
        timeout=DEADLINE,
        what="safe mode, with all three slaves seen",
    )
    assert "belongs to cluster" in health(client)["safe_mode"]
    assert client.ls("/") == [] and live(client) == 0  # the slaves refuse a stranger
    assert objects(cluster) == before  # and nothing was deleted

    with pytest.raises(PermissionError):
        client.adopt()  # administrators only
    root = admin(cluster)
    with pytest.raises(InvalidError, match="belong to cluster"):
        root.adopt(discard=True)  # giving up another cluster's files would not make them ours
    assert health(client)["safe_mode"] and objects(cluster) == before
    result = root.adopt()
    assert (result["files"], result["lost_found"]) == (4, 0)
    wait_until(lambda: live(client) == 3, timeout=DEADLINE, what="the slaves back")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="every file at 2 replicas")
    for path, data in FILES.items():
        assert read(client, path) == data
    assert read(client, "/new/name") == b"renamed later"  # where it was renamed to
    assert not client.exists("/old")
    # no zombie and no duplicate: each file's current version, on two slaves
    current = ["{}.{}".format(*_object_of(client, path)) for path in [*FILES, "/new/name"]]
    wait_until(
        lambda: (
            sorted(name.split("/")[1].rsplit(".", 1)[0] for name in objects(cluster))
            == sorted(current * 2)
        ),
        timeout=DEADLINE,
        what="two objects per file, nothing else",
    )
    with pytest.raises(InvalidError):
        root.adopt()  # no longer in safe mode
    # the cluster works on: new files, removals
    write(client, "/after", b"new")
    client.rm("/docs/a.txt")
    assert read(client, "/after") == b"new"
    root.close()
    client.close()


def test_a_master_started_on_an_empty_home_deletes_nothing(cluster: LocalCluster) -> None:
    before = objects(cluster)
    home = cluster.layout.master_home
    kept = home.with_name("master.real")

    def mistype() -> None:  # as if --home named an empty directory
        home.rename(kept)
        home.mkdir()

    cluster.restart_master(kill=True, meanwhile=mistype)
    client = connect(cluster)
    wait_until(
        lambda: "seen so far: 3 slaves" in health(client)["safe_mode"],
        timeout=DEADLINE,
        what="safe mode",
    )
    assert objects(cluster) == before

    def fix() -> None:
        shutil.rmtree(home)
        kept.rename(home)

    cluster.restart_master(kill=True, meanwhile=fix)
    wait_until(lambda: live(client) == 3, timeout=DEADLINE, what="the slaves back")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="nothing to repair")
    for path, data in FILES.items():
        assert read(client, path) == data
    assert objects(cluster) == before
    client.close()


def test_an_old_backup_restored_puts_the_master_in_safe_mode_until_adopted(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    metadata = cluster.layout.master_home / "metadata.db"
    backup = tmp_path / "backup.db"
    with sqlite3.connect(metadata) as live_db, sqlite3.connect(backup) as copy:
        live_db.backup(copy)  # a consistent snapshot, as `sqlite3 .backup` takes
    client = connect(cluster)
    write(client, "/docs/a.txt", b"rewritten after the backup")
    write(client, "/docs/new", b"created after the backup")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="2 replicas of each file")

    def restore() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{metadata}{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, metadata)

    cluster.restart_master(kill=False, meanwhile=restore)
    wait_until(lambda: live(client) == 3, timeout=DEADLINE, what="the slaves back")
    wait_until(
        lambda: "never handed out" in health(client)["safe_mode"],
        timeout=DEADLINE,
        what="safe mode",
    )
    assert not client.exists("/docs/new")  # the backup does not know it ...
    before = objects(cluster)
    wait_until(lambda: health(client)["queued"] == 0, what="the master to look at everything")
    assert objects(cluster) == before  # ... and deletes none of its bytes

    root = admin(cluster)
    result = root.adopt()
    assert result["files"] == 2
    wait_until(lambda: settled(client), timeout=DEADLINE, what="every file at 2 replicas")
    assert read(client, "/docs/new") == b"created after the backup"
    assert read(client, "/docs/a.txt") == b"rewritten after the backup"
    root.close()
    client.close()


def test_a_metadata_file_sqlite_cannot_open_is_one_clear_line(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(slaves=1)
    home = tmp_path / "home"
    home.mkdir()
    (home / "metadata.db").write_bytes(b"this is not a database, " * 100)
    started = subprocess.run(
        [sys.executable, "-m", "sector.master", "--conf", str(cluster.layout.conf),
         "--home", str(home), "--port", "0", "--no-log-stderr"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert lines[0].startswith(f"sector master: cannot open the metadata database {home}")
    assert "file is not a database" in lines[0]
    assert (home / "metadata.db").read_bytes().startswith(b"this is not")  # left as it was


def test_leaving_safe_mode_gives_up_only_what_the_namespace_never_knew(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    # objects given up go like orphans: at an inventory once older than DATA_TOKEN_TTL
    cluster = make_cluster(
        slaves=3, replicas=2, master_conf={"INVENTORY_INTERVAL": "1", "DATA_TOKEN_TTL": "3"}
    )
    client = connect(cluster)
    for path, data in FILES.items():
        write(client, path, data)
    wait_until(lambda: settled(client), timeout=DEADLINE, what="2 replicas of each file")
    metadata = cluster.layout.master_home / "metadata.db"
    backup = tmp_path / "backup.db"
    with sqlite3.connect(metadata) as live_db, sqlite3.connect(backup) as copy:
        live_db.backup(copy)
    write(client, "/docs/new", b"created after the backup")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="2 replicas of each file")
    newer = "{}.{}.".format(*_object_of(client, "/docs/new"))
    known = [name for name in objects(cluster) if newer not in name]

    def restore() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{metadata}{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, metadata)

    cluster.restart_master(kill=False, meanwhile=restore)
    wait_until(lambda: live(client) == 3, timeout=DEADLINE, what="the slaves back")
    wait_until(lambda: health(client)["safe_mode"], timeout=DEADLINE, what="safe mode")
    root = sector_cli(cluster, SECTOR_USER="root", SECTOR_PASSWORD=root_password(cluster))
    assert root.ok("fsck", "--leave-safe-mode") == (
        "left safe mode; objects the namespace does not know will be deleted\n"
    )
    # what the backup never knew goes from every disk; everything it knew stays, readable
    wait_until(lambda: objects(cluster) == known, timeout=DEADLINE, what="the unknown objects")
    wait_until(lambda: settled(client), timeout=DEADLINE, what="nothing left to do")
    assert not client.exists("/docs/new")
    for path, data in FILES.items():
        assert read(client, path) == data
    write(client, "/docs/new", b"written again")  # ids and leases go on without a clash
    assert read(client, "/docs/new") == b"written again"
    client.close()
