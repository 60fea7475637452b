"""df, sysinfo, fsck and shutdown, against the shared cluster and private ones."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.slave.storage import filesystem_id
from tests.support import admin, connect, root_password, wait_until

from .conftest import Sector, sector_for


def _slave_ids(cluster: LocalCluster) -> dict[str, str]:
    """Process name (slave1 ...) -> slave id, from each data directory."""
    return {
        p.name: (cluster.layout.slave_dir(int(p.name[5:])) / "slave.id").read_text().strip()
        for p in cluster.processes
        if p.name.startswith("slave")
    }


def test_df_counts_the_disk_three_local_slaves_share_once(
    cluster: LocalCluster, sector: Sector
) -> None:
    header, row, owned = sector.ok("df").splitlines()
    assert header.split() == [
        "Slaves", "Disks", "Size", "Used", "Avail", "Use%", "Stored", "Files", "Under", "Lost"
    ]  # fmt: skip
    assert row.split()[:2] == ["3/3", "1"]
    assert re.fullmatch(r"test owns \S+ in \d+ files? \(no quota\)", owned)
    figures = json.loads(sector.ok("df", "--json"))
    assert figures["user"]["user"] == "test" and figures["user"]["quota"] == 0
    assert (figures["slaves"], figures["disks"]) == (3, 1)
    assert figures["size"] == shutil.disk_usage(cluster.layout.home).total
    assert figures["size"] == figures["used"] + figures["available"] > 0


def test_df_adds_up_slaves_on_different_file_systems(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    shm = Path("/dev/shm")
    work = tmp_path_factory.getbasetemp()
    if not shm.is_dir() or shm.stat().st_dev == work.stat().st_dev:
        pytest.skip("needs /dev/shm as a file system apart from the test's temporary one")
    elsewhere = Path(tempfile.mkdtemp(dir=shm, prefix="sector-df-"))
    try:
        # slave 2 of the next private cluster keeps its data on /dev/shm
        home = work / f"df-home-{os.getpid()}"
        (home / "slaves").mkdir(parents=True)
        (home / "slaves" / "2").symlink_to(elsewhere)
        cluster = LocalCluster(home=home, slaves=2, port=0, heartbeat=0.2, slave_timeout=2.0)
        with cluster:
            figures = json.loads(sector_for(cluster).ok("df", "--json"))
        assert (figures["slaves"], figures["disks"]) == (2, 2)
        assert figures["size"] == (
            shutil.disk_usage(home).total + shutil.disk_usage(elsewhere).total
        )
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_sysinfo_shows_totals_then_one_aligned_row_per_slave(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    sector = sector_for(
        cluster, tmp_path, SECTOR_USER="root", SECTOR_PASSWORD=root_password(cluster)
    )
    lines = sector.ok("sysinfo").splitlines()
    assert cluster.master_address is not None
    assert lines[0].startswith("master {}:{}, up since ".format(*cluster.master_address))
    assert re.fullmatch(
        r"\d+ files?, \d+ directories, \S+ stored; 3 of 3 slaves alive; replicas wanted: 2",
        lines[1],
    )
    assert lines[2].startswith("replication: ")
    assert re.fullmatch(
        r"capacity \S+, \S+ free, on 1 disk \(each counted once, however many slaves share it\)",
        lines[3],
    )
    assert lines[4] == ""
    header, rows = lines[5], lines[6:]
    assert header.split() == [
        "ID", "ADDRESS", "LOCATION", "STATUS", "DISK", "FREE", "STORED", "FILES"
    ]  # fmt: skip
    assert sorted(row.split()[0] for row in rows) == sorted(_slave_ids(cluster).values())
    assert all(row.split()[2:5] == ["/", "alive", "disk1"] for row in rows)
    # aligned: each column starts at the same offset in every row
    assert len({row.index(" 127.0.0.1:") for row in rows}) == 1

    info = json.loads(sector.ok("sysinfo", "--json"))
    assert set(info) == {"master", "slaves", "capacity"}
    assert (info["capacity"]["slaves"], info["capacity"]["disks"]) == (3, 1)
    assert {s["id"] for s in info["slaves"]} == set(_slave_ids(cluster).values())
    assert {s["fs"] for s in info["slaves"]} == {filesystem_id(cluster.layout.home)}


def test_sysinfo_shows_where_slaves_are_to_administrators_only(
    cluster: LocalCluster, sector: Sector
) -> None:
    rows = sector.ok("sysinfo").splitlines()[6:]  # below the header line
    assert len(rows) == 3
    assert all(row.split()[:5] == ["-", "-", "-", "alive", "disk1"] for row in rows)
    info = json.loads(sector.ok("sysinfo", "--json"))
    assert {(s["id"], s["address"]) for s in info["slaves"]} == {("", "")}
    hostname = filesystem_id(cluster.layout.home).split("/")[0]
    assert all(hostname not in s["fs"] for s in info["slaves"])
    assert len({s["fs"] for s in info["slaves"]}) == 1  # still one disk, counted once
    assert "  3/3      1 " in sector.ok("df")


def test_fsck_of_healthy_files_exits_zero(
    sector: Sector, client: Client, remote: str, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
        client.upload(tmp_path / name, f"{remote}/{name}")
    for name in ("a", "b"):  # the second replicas follow the upload in the background
        wait_until(lambda n=name: len(client.stat(f"{remote}/{n}").slaves) == 2, what="copies")
    assert sector.ok("fsck", remote) == f"checked 2 files (4 replicas) under {remote}: all good\n"
    assert sector.fails("fsck", f"{remote}/nope") == (
        f"sector: {remote}/nope: no such file or directory (E_NOEXIST)"
    )


def test_fsck_finds_damaged_and_missing_files_then_shutdown_stops_the_cluster(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(slaves=2, replicas=1)  # one replica each: fsck sees every loss
    client = connect(cluster)
    sector = sector_for(cluster)
    root = sector_for(
        cluster,
        SECTOR_USER="root",
        SECTOR_PASSWORD=(cluster.layout.conf / "root.password").read_text().strip(),
    )
    for name in ("damaged", "gone", "fine"):
        (tmp_path / name).write_bytes(name.encode() * 5000)
        client.upload(tmp_path / name, f"/f/{name}")

    def object_file(path: str) -> Path:
        entry = client.stat(path)
        (found,) = cluster.layout.home.glob(
            f"slaves/*/objects/*/*.{entry.version}.{entry.checksum}"
        )
        return found

    damaged = object_file("/f/damaged")
    damaged.write_bytes(b"rotten" + damaged.read_bytes()[6:])
    object_file("/f/gone").unlink()

    result = root("fsck", "/f")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"DAMAGED +/f/damaged  \(on slave \w+\)", lines[0])
    assert re.fullmatch(r"MISSING +/f/gone  \(on slave \w+\)", lines[1])
    assert lines[2] == "checked 3 files (3 replicas) under /f: 2 problems"
    assert result.stderr == "sector: /f: 2 replicas damaged/missing\n"
    # which slave it is, is for administrators only (as in sysinfo)
    client.upload(tmp_path / "gone", "/g/lost")
    object_file("/g/lost").unlink()
    assert sector("fsck", "/g").stdout.splitlines()[0] == "MISSING     /g/lost  (on slave (hidden))"

    assert sector.fails("shutdown", "--all") == (
        "sector: user test is not an administrator (E_PERMISSION)"
    )
    ids = _slave_ids(cluster)
    holder = "slave" + object_file("/f/fine").parts[-4]  # .../slaves/<n>/objects/<shard>/<file>
    assert root.ok("shutdown", ids[holder]) == f"stopped slave {ids[holder]}\n"
    wait_until(lambda: cluster.process(holder).popen.poll() is not None, what=f"{holder} exit")

    lines = sector("fsck", "/f/fine").stdout.splitlines()
    assert lines[0] == "MISSING     /f/fine  (no live slave holds it)"
    assert root.fails("shutdown", "no-such-slave") == (
        "sector: no-such-slave: no slave 'no-such-slave' is known (E_NOEXIST)"
    )

    assert root.ok("shutdown", "--all") == "stopped 1 slave and the master\n"
    for process in cluster.processes:
        wait_until(lambda p=process: p.popen.poll() is not None, what=f"{process.name} exit")
    client.close()


def test_replicate_fsck_df_and_decommission_show_how_safe_the_files_are(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    sector = sector_for(cluster)
    root = sector_for(cluster, SECTOR_USER="root", SECTOR_PASSWORD=root_password(cluster))
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 20_000)
        client.upload(tmp_path / name, f"/p/{name}")

    # more replicas than slaves: kept as high as they go, reported, never an error
    assert sector.ok("replicate", "/p", "4") == "/p: 4 replicas for 2 files\n"
    wait_until(
        lambda: all(len(client.stat(f"/p/{n}").slaves) == 3 for n in "ab"), what="3 replicas"
    )
    wait_until(lambda: _health(client)["copying"] == 0, what="no copy in flight")
    result = sector("fsck", "/p")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "UNDER       /p/a  (3 of 4 replicas)",
        "UNDER       /p/b  (3 of 4 replicas)",
        "checked 2 files (6 replicas) under /p: 2 problems",
    ]
    assert result.stderr == "sector: /p: 2 replicas under-replicated\n"
    header, row, _ = sector.ok("df").splitlines()
    under, lost = row.split()[-2:]
    assert header.split()[-2:] == ["Under", "Lost"] and (under, lost) == ("2", "0")
    assert "replication: 2 files under-replicated" in root.ok("sysinfo").splitlines()[2]

    assert sector.ok("replicate", "/p", "2") == "/p: 2 replicas for 2 files\n"
    wait_until(lambda: all(len(client.stat(f"/p/{n}").slaves) == 2 for n in "ab"), what="trim")
    wait_until(lambda: _health(client)["under_replicated"] == 0, what="nothing under target")
    assert sector.ok("fsck", "/p").endswith("under /p: all good\n")

    # retiring a slave: administrators only; draining, then drained
    administrator = admin(cluster)  # slaves' ids and addresses are for administrators
    leaving = next(s for s in administrator.sysinfo()["slaves"] if s["files"])
    assert sector.fails("decommission", leaving["id"]) == (
        "sector: user test is not an administrator (E_PERMISSION)"
    )
    said = root.ok("decommission", leaving["id"])
    assert re.fullmatch(
        rf"draining slave {leaving['id']}: \d+ files? to copy elsewhere "
        r"\(sector sysinfo shows when it is drained\)\n",
        said,
    )

    def status() -> str:
        slaves = administrator.sysinfo()["slaves"]
        return next(s["status"] for s in slaves if s["id"] == leaving["id"])

    wait_until(lambda: status() == "drained", timeout=60, what="the slave drained")
    row = next(line for line in root.ok("sysinfo").splitlines() if line.startswith(leaving["id"]))
    assert row.split()[3] == "drained"
    assert root.ok("decommission", "--cancel", leaving["id"]) == (
        f"slave {leaving['id']} is no longer draining\n"
    )
    wait_until(lambda: status() == "alive", what="its replicas to count again")
    assert root.fails("decommission", "no-such-slave") == (
        "sector: no slave 'no-such-slave' is known (E_NOEXIST)"
    )
    administrator.close()
    client.close()


def _health(client: Client) -> dict:
    return client.sysinfo()["master"]["health"]
