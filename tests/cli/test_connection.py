"""Where the CLI finds its cluster: flags, then environment, then client.conf, then `sector up`."""

from __future__ import annotations

from pathlib import Path

from sector.cluster import LocalCluster

from .conftest import Sector, clean_env


def _address(cluster: LocalCluster) -> str:
    assert cluster.master_address is not None
    return "{}:{}".format(*cluster.master_address)


def test_flags_beat_the_environment_which_beats_the_local_cluster(
    cluster: LocalCluster, sector: Sector, remote: str
) -> None:
    wrong = {"SECTOR_MASTER": "127.0.0.1:1"}
    line = sector.fails("ls", remote, env=wrong)
    assert line.startswith("sector: cannot reach the master at 127.0.0.1:1")
    assert line.endswith("(E_CONNECTION)")
    assert sector.ok("--master", _address(cluster), "ls", remote, env=wrong) == ""

    stranger = {"SECTOR_USER": "nobody", "SECTOR_PASSWORD": "xxx"}
    assert sector.fails("ls", remote, env=stranger) == (
        "sector: incorrect user name or password (E_PASSWORD)"
    )
    assert sector.ok("--user", "test", "ls", remote, env=stranger) == ""

    assert sector.fails("--cert", "/nonexistent.cert", "ls", remote) == (
        "sector: certificate /nonexistent.cert not found (E_NOCERT)"
    )
    assert sector.ok("ls", remote, env={"SECTOR_CERT": str(cluster.layout.cert)}) == ""


def test_client_conf_alone_is_enough_and_its_password_stays_with_its_user(
    cluster: LocalCluster, remote: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "client.conf").write_text(
        f"# written by a person\nMASTER_ADDRESS\n\t{_address(cluster)}\n"
        f"USERNAME\n\ttest\nPASSWORD\n\txxx\nCERTIFICATE\n\t{cluster.layout.cert}\n"
    )
    sector = Sector(clean_env(home))
    assert sector.ok("ls", remote) == ""
    assert sector.fails("--user", "root", "ls", remote) == (
        "sector: no password for user root: set SECTOR_PASSWORD or PASSWORD "
        "in client.conf (E_PASSWORD)"
    )
    root_password = (cluster.layout.conf / "root.password").read_text().strip()
    assert sector.ok("--user", "root", "ls", remote, env={"SECTOR_PASSWORD": root_password}) == ""
    assert sector.fails("ls", remote, env={"SECTOR_PASSWORD": "wrong"}) == (
        "sector: incorrect user name or password (E_PASSWORD)"
    )


def test_root_password_file_is_private_to_the_owner(cluster: LocalCluster) -> None:
    password_file = cluster.layout.conf / "root.password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert "PASSWORD" in (cluster.layout.conf / "users" / "root").read_text()
    assert (
        password_file.read_text().strip()
        not in (cluster.layout.conf / "users" / "root").read_text()
    )
