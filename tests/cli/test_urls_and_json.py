"""``sector://host:port/path`` wherever a Sector path goes, and ``--json`` on ls and stat."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from sector.client import Client
from sector.cluster import LocalCluster

from .conftest import Sector, sector_for


@pytest.fixture
def elsewhere(cluster: LocalCluster, tmp_path: Path) -> Sector:
    """The CLI with a home naming no cluster: only a URL can say where the master is."""
    empty = tmp_path / "empty-home"
    (empty / "conf").mkdir(parents=True)
    run = sector_for(cluster, cwd=tmp_path, SECTOR_PASSWORD="xxx")
    run.env["SECTOR_HOME"] = str(empty)
    run.env["SECTOR_CERT"] = str(cluster.layout.cert)
    return run


def url(cluster: LocalCluster, path: str, user: str = "") -> str:
    host, port = cluster.master_address  # type: ignore[misc]
    return f"sector://{user + '@' if user else ''}{host}:{port}{path}"


def test_urls_name_the_cluster_for_every_path_taking_command(
    elsewhere: Sector, cluster: LocalCluster, remote: str, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "f.txt").write_text("via url\n")
    elsewhere.ok("upload", str(tmp_path / "f.txt"), url(cluster, f"{remote}/f.txt", "test"))
    assert elsewhere.ok("cat", url(cluster, f"{remote}/f.txt")) == "via url\n"
    elsewhere.ok("mkdir", "-p", url(cluster, f"{remote}/d"))
    elsewhere.ok("cp", url(cluster, f"{remote}/f.txt"), url(cluster, f"{remote}/d/"))
    elsewhere.ok("mv", url(cluster, f"{remote}/d/f.txt"), url(cluster, f"{remote}/d/g.txt"))
    assert elsewhere.ok("ls", url(cluster, f"{remote}/d")) == "g.txt\n"
    elsewhere.ok("download", url(cluster, f"{remote}/d/g.txt"), str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "via url\n"
    assert elsewhere.ok("du", "-s", url(cluster, remote)).endswith(f"\t{remote}\n")
    elsewhere.ok("rm", "-r", url(cluster, f"{remote}/d"))
    assert not client.exists(f"{remote}/d")
    elsewhere.ok("fsck", url(cluster, remote))


def test_urls_naming_two_clusters_are_a_usage_error(
    elsewhere: Sector, cluster: LocalCluster
) -> None:
    result = elsewhere("cp", url(cluster, "/a"), "sector://other-host:6000/b")
    assert result.returncode == 2
    assert "name different clusters or users" in result.stderr


def test_a_password_in_a_url_is_refused(elsewhere: Sector) -> None:
    result = elsewhere("ls", "sector://test:xxx@127.0.0.1:6000/")
    assert result.returncode == 2
    assert "a password does not belong in a URL" in result.stderr


def test_ls_and_stat_json_carry_the_api_fields(
    sector: Sector, remote: str, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "a").write_bytes(b"12345")
    client.upload(tmp_path / "a", f"{remote}/sub/a")
    listing = json.loads(sector.ok("ls", "--json", "-R", remote))
    assert [e["path"] for e in listing] == [f"{remote}/sub", f"{remote}/sub/a"]
    assert listing[1] == {
        "path": f"{remote}/sub/a",
        **msgspec.structs.asdict(client.ls(f"{remote}/sub")[0]),
    }
    stats = json.loads(sector.ok("stat", "--json", f"{remote}/sub/a", f"{remote}/sub"))
    assert stats[0] == {
        "path": f"{remote}/sub/a",
        **msgspec.structs.asdict(client.stat(f"{remote}/sub/a")),
    }
    assert stats[0]["slaves"] and stats[1]["isdir"] is True
    assert json.loads(sector.ok("ls", "--json", f"{remote}/sub/a"))[0]["size"] == 5
