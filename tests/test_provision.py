"""Writing configuration: atomic files with the right modes, edits that keep the rest."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sector.config import parse, user_settings
from sector.master.users import check_password, hash_password
from sector.provision import (
    ConfExists,
    MasterConf,
    UserFile,
    default_slave_network,
    init_client,
    init_master,
    set_values,
    write_file,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_files_are_0600_and_others_0644_whatever_they_replace(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "client.conf"
    write_file(path, "public\n")
    assert (path.read_text(), mode(path)) == ("public\n", 0o644)
    write_file(path, "PASSWORD\n\tsecret\n", secret=True)
    assert mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["client.conf"]  # no temporary left


TEXT = """\
# alice's account
PASSWORD
\told
READ_PERMISSION
\t/a
\t/b
# kept: a comment after the values
WRITE_PERMISSION
\t/w
"""


def test_set_values_replaces_one_keys_values_and_keeps_every_other_line() -> None:
    edited = set_values(TEXT, "READ_PERMISSION", ["/c"])
    assert edited == TEXT.replace("\t/a\n\t/b\n", "\t/c\n")
    assert set_values(TEXT, "PASSWORD", ["new"]).splitlines()[:3] == [
        "# alice's account", "PASSWORD", "\tnew"
    ]  # fmt: skip


def test_set_values_adds_a_new_key_at_the_end_and_removes_one_given_none() -> None:
    added = set_values(TEXT, "QUOTA", ["100"])
    assert added == TEXT + "QUOTA\n\t100\n"
    removed = set_values(added, "WRITE_PERMISSION", None)
    assert parse(removed).entries.keys() == {"PASSWORD", "READ_PERMISSION", "QUOTA"}
    assert "# kept: a comment after the values" in removed
    assert set_values(TEXT, "ABSENT", None) == TEXT
    assert set_values("A\n\t1", "B", ["2"]) == "A\n\t1\nB\n\t2\n"


def test_a_user_file_reads_back_as_the_account_it_describes() -> None:
    text = UserFile(
        "alice",
        hash_password("pw"),
        read=["/"],
        write=["/home/alice"],
        acl=["10.0.0.0/8"],
        quota_mb=1024,
        admin=True,
    ).text()
    account = user_settings(parse(text, "users/alice"), "alice")
    assert check_password("pw", account.password)
    assert (account.read, account.write, account.quota, account.admin) == (
        ["/"], ["/home/alice"], 1024, True
    )  # fmt: skip
    assert [str(n) for n in account.acl] == ["10.0.0.0/8"]
    assert "pw\n" not in text


@pytest.mark.parametrize(
    ("host", "network"),
    [
        ("10.1.2.3", "10.1.2.0/24"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("fd00::5", "fd00::/64"),
    ],
)
def test_slaves_may_register_from_the_masters_network_by_default(host: str, network: str) -> None:
    assert default_slave_network(host) == network


def test_a_master_named_by_host_name_is_resolved_for_its_network() -> None:
    assert default_slave_network("localhost") in ("127.0.0.0/8", "::1/128")


def test_init_master_writes_no_example_user_and_keeps_secrets_private(tmp_path: Path) -> None:
    written, password_file = init_master(
        tmp_path, "10.0.0.1", 6000, tmp_path / "meta", ["10.0.0.0/24"], []
    )
    names = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert names == sorted([
        "master.conf", "slave_acl.conf", "master_acl.conf", "topology.conf", "replica.conf",
        "master_node.cert", "master_node.key", "users/root", "root.password",
    ])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "users").iterdir()) == ["root"]
    for path in written:
        secret = path.name in ("master_node.key", "root", "root.password")
        assert mode(path) == (0o600 if secret else 0o644), path
    password = password_file.read_text().strip()
    root = user_settings(parse((tmp_path / "users" / "root").read_text()), "root")
    assert check_password(password, root.password) and password not in root.password
    assert "10.0.0.0/24" in (tmp_path / "slave_acl.conf").read_text()


def test_init_refuses_to_replace_files_unless_forced(tmp_path: Path) -> None:
    master = tmp_path / "master"
    init_master(master, "127.0.0.1", 6000, tmp_path / "meta", ["127.0.0.0/8"], [])
    with pytest.raises(ConfExists, match="master.conf exists already; give --force"):
        init_master(master, "127.0.0.1", 6000, tmp_path / "meta", ["127.0.0.0/8"], [])
    client = tmp_path / "client"
    init_client(client, "127.0.0.1:6000", master)
    (client / "client.conf").write_text("# mine\n")
    with pytest.raises(ConfExists):
        init_client(client, "127.0.0.1:6000", master)
    init_client(client, "127.0.0.1:6000", master, force=True)
    assert "MASTER_ADDRESS" in (client / "client.conf").read_text()


def test_the_dashboard_is_off_in_a_conf_init_master_and_on_when_a_port_is_given() -> None:
    written = parse(MasterConf().text())
    assert "HTTP_PORT" not in written and "HTTP_TLS" not in written
    assert "# HTTP_PORT\n#\t6080\n" in MasterConf().text()  # there to uncomment
    enabled = parse(MasterConf(http_port=0).text())
    assert enabled.values("HTTP_PORT") == ["0"]
