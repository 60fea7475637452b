"""Slaves trust only tokens the master signed; no client can disturb the servers."""

from __future__ import annotations

import socket
import ssl

import pytest

from sector import errors
from sector.client import Client
from sector.cluster import Layout, LocalCluster, write_conf
from sector.config import read_users
from sector.protocol import tokens
from sector.protocol.framing import encode
from sector.protocol.messages import WRITE
from sector.transport import recv_frame
from tests.conftest import connect


def _slave_address(client: Client) -> tuple[str, int]:
    host, port = client.sysinfo()["slaves"][0]["address"].split(":")
    return host, int(port)


@pytest.fixture
def slave_socket(client: Client):
    with socket.create_connection(_slave_address(client), timeout=10) as sock:
        yield sock


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _ask(sock: socket.socket, message: dict) -> dict:
    sock.sendall(encode(message))
    return recv_frame(sock)


class TestSlaveTokens:
    def test_read_without_a_token_is_refused(self, slave_socket) -> None:
        reply = _ask(slave_socket, {"op": "read", "offset": 0, "length": 10})
        assert reply["ok"] is False and reply["code"] == errors.E_SECURITY

    def test_forged_token_is_refused_and_the_connection_stays_usable(
        self, slave_socket, client: Client, workdir: str
    ) -> None:
        with client.open(f"{workdir}/secret", WRITE) as handle:
            handle.write(b"secret")
        forged = tokens.sign(b"k" * 32, {"kind": "r", "oid": 1, "v": 1})
        for _ in range(2):
            reply = _ask(slave_socket, {"op": "read", "token": forged, "offset": 0, "length": 6})
            assert reply == {"ok": False, "code": errors.E_SECURITY, "msg": "bad token signature"}

    def test_admin_operations_need_an_admin_token(self, slave_socket) -> None:
        reply = _ask(slave_socket, {"op": "delete", "token": b"x" * 40, "objects": [[1, 1]]})
        assert reply["code"] == errors.E_SECURITY

    def test_write_with_a_forged_token_commits_nothing(self, slave_socket) -> None:
        forged = tokens.sign(b"k" * 32, {"kind": "w", "oid": 99, "v": 1, "lease": 1})
        slave_socket.sendall(encode({"op": "write", "token": forged}))
        slave_socket.sendall(encode({"op": "put", "offset": 0, "length": 5}) + b"hello")
        reply = _ask(slave_socket, {"op": "commit"})
        assert reply["ok"] is False and reply["code"] == errors.E_SECURITY


class TestMisbehavingClients:
    def test_garbage_to_the_slave_drops_only_that_connection(
        self, client: Client, workdir: str
    ) -> None:
        with socket.create_connection(_slave_address(client), timeout=10) as bad:
            bad.sendall(b"\xff\xff\xff\xff not a frame")
            assert _closed_by_peer(bad)
        with client.open(f"{workdir}/still", WRITE) as handle:
            handle.write(b"served")
        assert client.stat(f"{workdir}/still").size == 6

    def test_garbage_to_the_master_drops_only_that_connection(self, cluster) -> None:
        context = ssl.create_default_context(cafile=str(cluster.layout.cert))
        context.check_hostname = False
        with (
            socket.create_connection(cluster.master_address, timeout=10) as raw,
            context.wrap_socket(raw) as bad,
        ):
            bad.sendall(b"\x00\x00\x00\x05hello")
            assert _closed_by_peer(bad)
        with socket.create_connection(cluster.master_address, timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            plain.recv(100)
        survivor = connect(cluster)
        assert survivor.stat("/").isdir
        survivor.close()

    def test_requests_before_login_are_refused(self, cluster) -> None:
        context = ssl.create_default_context(cafile=str(cluster.layout.cert))
        context.check_hostname = False
        with (
            socket.create_connection(cluster.master_address, timeout=10) as raw,
            context.wrap_socket(raw) as sock,
        ):
            reply = _ask(sock, {"op": "stat", "path": "/"})
        assert reply["ok"] is False and reply["code"] == errors.E_SECURITY

    def test_malformed_requests_get_error_codes(self, client: Client) -> None:
        with pytest.raises(errors.InvalidError):
            client.call("open", path="/x", mode=-5)
        with pytest.raises(errors.InvalidError):
            client.call("no-such-operation")
        with pytest.raises(errors.InvalidError):
            client.call("stat", path=12)
        assert client.stat("/").isdir


def test_sector_up_writes_only_password_hashes(cluster) -> None:
    users = read_users(cluster.layout.conf / "users")
    assert users["test"].password.startswith("scrypt$")


def test_master_acl_refuses_logins_from_other_addresses(tmp_path) -> None:
    layout = Layout(tmp_path / "home")
    write_conf(layout, port=0)
    (layout.conf / "master_acl.conf").write_text("# only the lab network\n10.1.0.0/16\n")
    with LocalCluster(home=layout.home, slaves=1, port=0) as cluster:
        outsider = Client(*cluster.master_address)
        with pytest.raises(errors.SecurityError) as refused:
            outsider.login("test", "xxx", layout.cert)
        assert refused.value.code == errors.E_ACL
