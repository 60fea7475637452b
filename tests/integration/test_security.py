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
from sector.protocol.data import Commit, DeleteObjects, ObjectId, Put, Read, Write
from sector.protocol.framing import encode
from sector.protocol.master import Login, Open, Stat
from sector.protocol.messages import (
    PROTOCOL_VERSION,
    READ,
    WRITE,
    Done,
    Error,
    Request,
    replies_to,
)
from sector.protocol.tokens import ReadClaims, WriteClaims
from sector.transport import recv_body
from tests.support import PASSWORD, USER, closed_by_peer, connect, slave_addresses


@pytest.fixture
def slave_socket(cluster):
    with socket.create_connection(slave_addresses(cluster)[0], timeout=10) as sock:
        yield sock


def _ask(sock: socket.socket, request: Request) -> object:
    """Send ``request`` on a raw connection; the reply, decoded as one it may get."""
    sock.sendall(encode(request))
    return replies_to(type(request)).decode(recv_body(sock))


class TestSlaveTokens:
    def test_read_without_a_token_is_refused(self, slave_socket) -> None:
        reply = _ask(slave_socket, Read(0, 10))
        assert isinstance(reply, Error) and reply.code == errors.E_SECURITY

    def test_forged_token_is_refused_and_the_connection_stays_usable(
        self, slave_socket, client: Client, workdir: str
    ) -> None:
        with client.open(f"{workdir}/secret", WRITE) as handle:
            handle.write(b"secret")
        forged = tokens.sign(b"k" * 32, ReadClaims(1, 1))
        for _ in range(2):
            reply = _ask(slave_socket, Read(0, 6, forged))
            assert reply == Error(errors.E_SECURITY, "bad token signature")

    def test_admin_operations_need_an_admin_token(self, slave_socket) -> None:
        reply = _ask(slave_socket, DeleteObjects([ObjectId(1, 1)], token=b"x" * 40))
        assert isinstance(reply, Error) and reply.code == errors.E_SECURITY

    def test_a_read_token_does_not_allow_a_write(self, client: Client, workdir: str) -> None:
        with client.open(f"{workdir}/kept", WRITE) as handle:
            handle.write(b"kept")
        grant = client.call(Open(f"{workdir}/kept", READ))
        with socket.create_connection(tuple(grant.replicas[0]), timeout=10) as sock:
            sock.sendall(encode(Write(grant.token)) + encode(Put(0, 4)) + b"lost")
            reply = _ask(sock, Commit())
        assert reply == Error(errors.E_SECURITY, "token is not valid for this operation")
        assert client.stat(f"{workdir}/kept").size == 4

    def test_write_with_a_forged_token_commits_nothing(self, slave_socket) -> None:
        forged = tokens.sign(b"k" * 32, WriteClaims(99, 1, 0, 1, "any-slave"))
        slave_socket.sendall(encode(Write(forged)))
        slave_socket.sendall(encode(Put(0, 5)) + b"hello")
        reply = _ask(slave_socket, Commit())
        assert isinstance(reply, Error) and reply.code == errors.E_SECURITY


class TestMisbehavingClients:
    def test_garbage_to_the_slave_drops_only_that_connection(
        self, cluster, client: Client, workdir: str
    ) -> None:
        with socket.create_connection(slave_addresses(cluster)[0], timeout=10) as bad:
            bad.sendall(b"\xff\xff\xff\xff not a frame")
            assert closed_by_peer(bad)
        with client.open(f"{workdir}/still", WRITE) as handle:
            handle.write(b"served")
        assert client.stat(f"{workdir}/still").size == 6

    def test_garbage_to_the_master_drops_only_that_connection(self, cluster) -> None:
        with _master_socket(cluster) as bad:
            bad.sendall(b"\x00\x00\x00\x05hello")
            assert closed_by_peer(bad)
        with socket.create_connection(cluster.master_address, timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            plain.recv(100)
        survivor = connect(cluster)
        assert survivor.stat("/").isdir
        survivor.close()

    def test_requests_before_login_are_refused(self, cluster) -> None:
        with _master_socket(cluster) as sock:
            reply = _ask(sock, Stat("/"))
            assert reply == Error(errors.E_SECURITY, "log in (or register) first")
            assert closed_by_peer(sock)

    def test_malformed_requests_get_error_codes_and_the_session_goes_on(
        self, client: Client
    ) -> None:
        with pytest.raises(errors.InvalidError, match="bad open mode"):
            client.call(Open("/x", -5))
        with pytest.raises(errors.InvalidError, match="'no-such-operation' is not one of"):
            client.call(NoSuchOperation())
        with pytest.raises(errors.InvalidError, match="Expected `str`, got `int` - at `path`"):
            client.call(Stat(path=12))  # type: ignore[arg-type] - what a buggy peer sends
        assert client.stat("/").isdir


class NoSuchOperation(Request, tag="no-such-operation"):
    """A request no master knows, as a newer or buggy client might send."""

    replies = (Done,)


def _master_socket(cluster) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cluster.layout.cert))
    context.check_hostname = False
    raw = socket.create_connection(cluster.master_address, timeout=10)
    return context.wrap_socket(raw)


class TestProtocolVersions:
    def test_a_client_of_another_version_is_told_so(self, cluster) -> None:
        with _master_socket(cluster) as sock:
            reply = _ask(sock, Login(PROTOCOL_VERSION + 1, USER, PASSWORD))
            assert isinstance(reply, Error) and reply.code == errors.E_SUPPORT
            assert f"this master speaks version {PROTOCOL_VERSION}" in reply.msg
            assert closed_by_peer(sock)

    def test_a_greeting_whose_fields_changed_shape_still_gets_the_version_error(
        self, cluster
    ) -> None:
        with _master_socket(cluster) as sock:
            sock.sendall(encode(["login", PROTOCOL_VERSION + 1, {"user": USER}]))
            reply = replies_to(Login).decode(recv_body(sock))
            assert isinstance(reply, Error) and reply.code == errors.E_SUPPORT


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


def test_the_deepest_path_allowed_works_and_a_longer_one_is_e_invalid(client: Client) -> None:
    """Issue 9: ~990 levels gave E_UNKNOWN (a RecursionError in the master)."""
    deep = "/deep" + "/d" * 2040  # 4,085 bytes: within MAX_PATH_BYTES (4,096)
    client.mkdir(deep)
    with client.open(deep + "/f", WRITE) as handle:
        handle.write(b"at the bottom")
    assert client.stat(deep + "/f").size == 13
    with pytest.raises(errors.InvalidError, match="path is too long"):
        client.mkdir(deep + "/d" * 10)
    client.rm("/deep")
    assert not client.exists("/deep")
