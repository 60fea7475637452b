"""``sector conf init``: each machine gets what its role needs; ``conf check`` reads it all.

The test plays three machines on 127.0.0.x: it writes the master's directory,
starts a master from it, adds a user, writes a slave's and a client's
directories from the master's, and uses them - the README's "Running on
several machines", end to end.
"""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.config import load
from tests.support import wait_until

from .conftest import Sector, clean_env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=30)


def test_master_slave_and_client_directories_make_a_working_cluster(
    tmp_path: Path, servers: list[subprocess.Popen]
) -> None:
    sector = Sector(clean_env(tmp_path / "nowhere"), cwd=tmp_path)
    master_conf, meta = tmp_path / "master" / "conf", tmp_path / "master" / "meta"
    out = sector.ok(
        "conf", "init", "--role", "master", "--master", "127.0.0.1:0",
        "--conf", str(master_conf), "--data", str(meta),
    )  # fmt: skip
    assert f"-rw-------  {master_conf / 'master_node.key'}" in out
    assert sorted(p.name for p in (master_conf / "users").iterdir()) == ["root"]  # no test/xxx
    assert not (master_conf / "client.conf").exists()
    # One machine here: bind where tests may (the generated file says 0.0.0.0).
    text = (master_conf / "master.conf").read_text()
    (master_conf / "master.conf").write_text(text.replace("\t0.0.0.0", "\t127.0.0.1"))
    servers.append(sector.popen("master", "--conf", str(master_conf), "--no-log-stderr"))
    wait_until((meta / "master.addr").exists, what="the master to listen")
    address = "127.0.0.1:" + (meta / "master.addr").read_text().split()[1]

    sector.ok("user", "add", "--conf", str(master_conf), "alice", "--write", "/home/alice",
              input=b"alice-pw\n")  # fmt: skip

    slave_conf, data = tmp_path / "slave" / "conf", tmp_path / "slave" / "data"
    sector.ok(
        "conf", "init", "--role", "slave", "--master", address, "--from", str(master_conf),
        "--conf", str(slave_conf), "--data", str(data),
    )  # fmt: skip
    assert sorted(p.name for p in slave_conf.iterdir()) == [
        "join.token", "master_node.cert", "slave.conf"
    ]  # fmt: skip
    assert mode(slave_conf / "join.token") == 0o600
    text = (slave_conf / "slave.conf").read_text()
    (slave_conf / "slave.conf").write_text(text.replace("\t0.0.0.0", "\t127.0.0.2"))
    servers.append(sector.popen("slave", "--conf", str(slave_conf), "--no-log-stderr"))
    wait_until((data / "slave.registered").exists, what="the slave to register")
    # it joined with the token: its own key, made there and never copied, and its certificate
    assert mode(data / "slave.key") == 0o600 and (data / "slave.cert").exists()

    client_home = tmp_path / "client"
    out = sector.ok(
        "conf", "init", "--role", "client", "--master", address, "--from", str(master_conf),
        "--conf", str(client_home / "conf"), "--user", "alice",
    )  # fmt: skip
    client_conf = client_home / "conf" / "client.conf"
    assert sorted(p.name for p in client_conf.parent.iterdir()) == [
        "client.conf", "master_node.cert"
    ]  # fmt: skip
    assert "PASSWORD" not in load(client_conf)
    assert (mode(client_conf), mode(client_conf.parent / "master_node.cert")) == (0o644, 0o644)

    # Nothing secret left the master's directory.
    root_password = (master_conf / "root.password").read_text().strip()
    for path in [*slave_conf.iterdir(), *client_conf.parent.iterdir()]:
        text = path.read_text()
        assert root_password not in text and "scrypt$" not in text and "alice-pw" not in text
        assert "PRIVATE KEY" not in text

    alice = Sector(clean_env(client_home, SECTOR_PASSWORD="alice-pw"), cwd=tmp_path)
    (tmp_path / "hello.txt").write_text("hello from a client machine\n")
    alice.ok("upload", "hello.txt", "/home/alice/hello.txt")
    assert alice.ok("cat", "/home/alice/hello.txt") == "hello from a client machine\n"
    assert (
        alice.ok("stat", "/home/alice/hello.txt")
        .splitlines()[-1]
        .endswith("slaves: 127.0.0.2:" + (data / "slave.addr").read_text().split()[1])
    )
    assert "  1/1 " in alice.ok("df")
    for directory in (master_conf, slave_conf, client_conf.parent):
        assert sector.ok("conf", "check", "--conf", str(directory)).endswith(": all good\n")


def test_conf_init_client_writes_no_password_and_refuses_to_overwrite(tmp_path: Path) -> None:
    sector = Sector(clean_env(tmp_path / "home"), cwd=tmp_path)
    sector.ok("conf", "init", "--role", "master", "--master", "10.0.0.1:6000")
    conf = tmp_path / "home" / "conf"
    target = tmp_path / "laptop"
    args = ["conf", "init", "--role", "client", "--master", "10.0.0.1:6000", "--conf", str(target)]
    sector.ok(*args)
    text = (target / "client.conf").read_text()
    assert "MASTER_ADDRESS\n\t10.0.0.1:6000\n" in text and "PASSWORD" not in load(
        target / "client.conf"
    )
    assert (target / "master_node.cert").read_bytes() == (conf / "master_node.cert").read_bytes()
    assert sector.fails(*args) == (
        f"sector: {target / 'client.conf'} exists already; give --force to replace it"
    )
    assert "10.0.0.0/24" in (conf / "slave_acl.conf").read_text()
    for name in ("master_node.key", "root.password", "users/root"):
        assert mode(conf / name) == 0o600, name
    assert mode(conf / "master.conf") == 0o644


def test_conf_init_needs_a_usable_master_address(tmp_path: Path) -> None:
    result = Sector(clean_env(tmp_path))(
        "conf", "init", "--role", "client", "--master", "host:port", "--conf", str(tmp_path)
    )
    assert result.returncode == 2 and "Invalid value for --master" in result.stderr
