"""``sector user``: accounts edited in conf/users/, in force at the next login."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sector.cluster import LocalCluster

from .conftest import COMMAND, Sector, clean_env, sector_for
from .test_terminal import Terminal


@pytest.fixture
def admin(cluster: LocalCluster, tmp_path: Path) -> Sector:
    """`sector` run on the master's machine (its SECTOR_HOME holds the cluster's conf)."""
    return sector_for(cluster, cwd=tmp_path)


def as_user(cluster: LocalCluster, name: str, password: str) -> Sector:
    return sector_for(cluster, SECTOR_USER=name, SECTOR_PASSWORD=password)


def test_add_then_log_in_with_the_new_password_and_the_file_holds_only_a_hash(
    cluster: LocalCluster, admin: Sector, remote: str
) -> None:
    out = admin.ok("user", "add", "ann", "--read", "/", "--write", remote, input=b"ann-pw-1\n")
    path = cluster.layout.conf / "users" / "ann"
    assert out == f"added user ann ({path})\n"
    text = path.read_text()
    assert "ann-pw-1" not in text and "\tscrypt$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    ann = as_user(cluster, "ann", "ann-pw-1")
    ann.ok("mkdir", f"{remote}/by-ann")
    assert "by-ann/" in ann.ok("ls", remote)
    assert as_user(cluster, "ann", "wrong").fails("ls", "/") == (
        "sector: incorrect user name or password (E_PASSWORD)"
    )


def test_passwd_grant_and_rm_take_effect_at_the_next_login(
    cluster: LocalCluster, admin: Sector, remote: str
) -> None:
    admin.ok("user", "add", "bo", "--write", remote, input=b"first\n")
    assert admin.ok("user", "passwd", "bo", env={"SECTOR_NEW_PASSWORD": "second"}) == (
        "changed the password of bo\n"
    )
    assert as_user(cluster, "bo", "first").fails("ls", remote).endswith("(E_PASSWORD)")
    bo = as_user(cluster, "bo", "second")
    bo.ok("mkdir", f"{remote}/one")

    assert admin.ok("user", "grant", "bo", "--write", "none", "--read", remote) == (
        "updated user bo: READ_PERMISSION, WRITE_PERMISSION\n"
    )
    assert bo.fails("mkdir", f"{remote}/two") == (
        f"sector: {remote}/two: user bo may not write here (E_PERMISSION)"
    )
    assert bo.ok("ls", remote) == "one/\n"

    assert admin.ok("user", "rm", "bo") == "removed user bo\n"
    assert bo.fails("ls", remote) == "sector: incorrect user name or password (E_PASSWORD)"


def test_grant_keeps_what_it_is_not_told_to_change(cluster: LocalCluster, admin: Sector) -> None:
    admin.ok("user", "add", "cy", "--read", "/r", "--acl", "10.0.0.0/8", input=b"pw\n")
    admin.ok("user", "grant", "cy", "--quota", "2G", "--admin")
    [row] = [u for u in json.loads(admin.ok("user", "list", "--json")) if u["name"] == "cy"]
    assert row == {
        "name": "cy", "admin": True, "read": ["/r"], "write": [], "acl": ["10.0.0.0/8"],
        "quota_mb": 2048, "password": "hashed",
    }  # fmt: skip
    admin.ok("user", "grant", "cy", "--acl", "none", "--quota", "0", "--no-admin")
    [row] = [u for u in json.loads(admin.ok("user", "list", "--json")) if u["name"] == "cy"]
    assert (row["acl"], row["quota_mb"], row["admin"], row["read"]) == ([], 0, False, ["/r"])


def test_list_shows_rights_and_flags_clear_text_passwords_without_showing_any(
    cluster: LocalCluster, admin: Sector
) -> None:
    legacy = cluster.layout.conf / "users" / "legacy"
    legacy.write_text("PASSWORD\n\tclear-secret\nREAD_PERMISSION\n\t/pub\n")
    try:
        listing = admin.ok("user", "list")
    finally:
        legacy.unlink()
    header, *rows = listing.splitlines()
    assert header.split() == ["USER", "ADMIN", "READ", "WRITE", "ACL", "QUOTA", "PASSWORD"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["legacy"] == ["legacy", "-", "/pub", "-", "any", "-", "CLEAR", "TEXT"]
    assert by_name["root"][1:3] == ["yes", "/"]
    assert by_name["test"][-1] == "hashed"
    assert "clear-secret" not in listing and "scrypt" not in listing


def test_add_asks_twice_on_a_terminal_and_never_echoes(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    env = clean_env(cluster.layout.home)
    terminal = Terminal([*COMMAND, "user", "add", "dee", "--read", "/"], env, tmp_path)
    terminal.read_until(b"New password for dee: ")
    os.write(terminal.master, b"typed-pw\n")
    terminal.read_until(b"Repeat for confirmation: ")
    os.write(terminal.master, b"typed-pw\n")
    code, text = terminal.finish()
    assert code == 0, text
    assert b"typed-pw" not in text
    assert b"added user dee" in text
    as_user(cluster, "dee", "typed-pw").ok("ls", "/")


def test_user_commands_refuse_in_one_line(cluster: LocalCluster, admin: Sector) -> None:
    assert admin.fails("user", "add", "test", input=b"pw\n") == (
        f"sector: user test exists ({cluster.layout.conf / 'users' / 'test'}); "
        "`sector user passwd test` changes its password"
    )
    assert admin.fails("user", "passwd", "nobody", input=b"pw\n") == (
        f"sector: no user nobody in {cluster.layout.conf / 'users'}"
    )
    assert admin.fails("user", "add", "empty", input=b"\n") == (
        "sector: no password given: type it on a terminal, or pass it on stdin or in "
        "SECTOR_NEW_PASSWORD"
    )
    assert not (cluster.layout.conf / "users" / "empty").exists()
    bad_name = admin("user", "add", "../evil", input=b"pw\n")
    assert bad_name.returncode == 2 and "Invalid value for NAME" in bad_name.stderr
    bad_path = admin("user", "add", "eve", "--write", "/../up", input=b"pw\n")
    assert bad_path.returncode == 2 and "Invalid value for --write" in bad_path.stderr
    assert not (cluster.layout.conf / "users" / "eve").exists()
