"""Who may be a slave: only a member, with the certificate the master issued it.

Issue 9, finding 1: anyone who could reach the master could register and was
handed the one key that signs every token. Now a registration must come over
TLS with a slave certificate this master issued for that very slave id (and
from an address ``slave_acl.conf`` allows); anything else is refused, no key
is ever sent, and nothing is listed.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector import certs, errors
from sector.client import Client
from sector.cluster import LocalCluster
from sector.protocol.data import Read
from sector.protocol.framing import encode
from sector.protocol.master import (
    Heartbeat,
    Join,
    JoinReply,
    Open,
    Register,
    RegisterReply,
    Usage,
)
from sector.protocol.messages import PROTOCOL_VERSION, READ, WRITE, Done, Error, replies_to
from sector.transport import recv_body
from tests.support import (
    PASSWORD,
    USER,
    admin,
    closed_by_peer,
    issue_member,
    master_socket,
    slave_addresses,
)

HUGE = Usage(total=10**18, free=10**18, stored=0, files=0)


def _register(sock: ssl.SSLSocket, slave_id: str) -> object:
    sock.sendall(encode(Register(PROTOCOL_VERSION, slave_id, "127.0.0.1", 1, HUGE, [])))
    return replies_to(Register).decode(recv_body(sock))


def _listed(cluster: LocalCluster) -> list[str]:
    with admin(cluster) as root:
        return [slave["id"] for slave in root.sysinfo()["slaves"]]


def test_a_rogue_register_without_a_certificate_is_refused_and_gets_no_key(
    cluster: LocalCluster,
) -> None:
    with master_socket(cluster) as sock:
        reply = _register(sock, "rogue")
        assert isinstance(reply, Error) and reply.code == errors.E_SECURITY
        assert "only a member slave may register" in reply.msg
        assert closed_by_peer(sock)
    assert "rogue" not in _listed(cluster)


def test_a_member_cannot_register_as_another_slave(cluster: LocalCluster, tmp_path: Path) -> None:
    someone_else = _listed(cluster)[0]
    member = issue_member(cluster, tmp_path, "impostor")
    with master_socket(cluster, member) as sock:
        reply = _register(sock, someone_else)
        assert reply == Error(
            errors.E_SECURITY,
            f"this certificate was issued to slave 'impostor', not {someone_else!r}",
        )
    assert "impostor" not in _listed(cluster)


def test_a_certificate_of_another_cluster_does_not_get_through_the_handshake(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    certs.create(tmp_path / "other.cert", tmp_path / "other.key")
    authority = certs.Authority.load(tmp_path / "other.cert", tmp_path / "other.key")
    request = certs.make_request(tmp_path / "forged.key", "forged")
    (tmp_path / "forged.cert").write_bytes(authority.issue(request, "forged"))
    forged = (tmp_path / "forged.cert", tmp_path / "forged.key")
    with pytest.raises((ssl.SSLError, ConnectionError)), master_socket(cluster, forged) as sock:
        _register(sock, "forged")  # TLS 1.3: the refusal arrives with the first read
    assert "forged" not in _listed(cluster)


def test_a_join_needs_a_token_of_this_cluster(cluster: LocalCluster, tmp_path: Path) -> None:
    request = certs.make_request(tmp_path / "new.key", "newcomer")
    certs.create(tmp_path / "other.cert", tmp_path / "other.key")
    foreign = certs.Authority.load(tmp_path / "other.cert", tmp_path / "other.key")
    for token in ("", "not-a-token", foreign.join_token(60, time.time())):
        with master_socket(cluster) as sock:
            sock.sendall(encode(Join(PROTOCOL_VERSION, token, "newcomer", request)))
            reply = replies_to(Join).decode(recv_body(sock))
            assert isinstance(reply, Error) and reply.code == errors.E_SECURITY, reply
            assert reply.msg.startswith("join refused")
            assert closed_by_peer(sock)


def test_a_join_with_the_token_gives_a_certificate_for_the_key_sent(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    token = (cluster.layout.conf / "join.token").read_text().strip()
    request = certs.make_request(tmp_path / "new.key", "ignored-name")
    with master_socket(cluster) as sock:
        sock.sendall(encode(Join(PROTOCOL_VERSION, token, "newcomer", request)))
        reply = replies_to(Join).decode(recv_body(sock))
        assert closed_by_peer(sock)
    assert isinstance(reply, JoinReply)
    (tmp_path / "new.cert").write_bytes(reply.certificate)
    assert certs.issued_by(tmp_path / "new.cert", cluster.layout.cert)


def _join(cluster: LocalCluster, slave_id: str, key: Path) -> object:
    """Ask, with the cluster's join token, for a certificate naming ``slave_id`` for the
    key at ``key`` (made there if there is none)."""
    token = (cluster.layout.conf / "join.token").read_text().strip()
    request = certs.make_request(key, "ignored-name")
    with master_socket(cluster) as sock:
        sock.sendall(encode(Join(PROTOCOL_VERSION, token, slave_id, request)))
        reply = replies_to(Join).decode(recv_body(sock))
        assert closed_by_peer(sock)
    return reply


def test_a_join_token_gives_a_members_id_to_no_other_key(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """A join token certifies new slaves, and a member again only for the key it joined
    with: otherwise a token's holder could take a running member's id, and with it the
    token key that opens everything signed for that member."""
    data = sorted((cluster.layout.home / "slaves").glob("*/slave.id"))[0].parent
    member = (data / "slave.id").read_text().strip()
    reply = _join(cluster, member, tmp_path / "thief.key")
    assert isinstance(reply, Error) and reply.code == errors.E_SECURITY
    assert f"slave id {member!r} is a member already, with another key" in reply.msg
    again = _join(cluster, member, data / "slave.key")  # its own key: a rejoin, allowed
    assert isinstance(again, JoinReply)
    (tmp_path / "again.cert").write_bytes(again.certificate)
    assert certs.issued_by(tmp_path / "again.cert", cluster.layout.cert)
    assert member in _listed(cluster)


@pytest.fixture
def slave_posing_as_master(cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A TLS server showing a (real) slave certificate of the cluster, where a client
    expects the master."""
    cert, key = issue_member(cluster, tmp_path, "posing")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(100)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    listener.close()
    thread.join(10)


def test_a_client_does_not_take_a_slave_for_the_master(
    cluster: LocalCluster, slave_posing_as_master: tuple[str, int]
) -> None:
    client = Client(*slave_posing_as_master)
    with pytest.raises(errors.SecurityError) as refused:
        client.login(USER, PASSWORD, cluster.layout.cert)
    assert refused.value.code == errors.E_SECURITY
    assert "not the master's certificate" in str(refused.value)


def test_each_slave_checks_tokens_with_a_key_of_its_own(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    """A read token made for one slave is refused by every other: one compromised
    slave cannot forge tokens for the rest."""
    with client.open(f"{workdir}/f", WRITE) as handle:
        handle.write(b"one slave holds this")
    grant = client.call(Open(f"{workdir}/f", READ))
    holder = tuple(grant.replicas[0])
    others = [address for address in slave_addresses(cluster) if address != holder]
    assert others
    for address in others:
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(encode(Read(0, 4, grant.token)))
            reply = replies_to(Read).decode(recv_body(sock))
            assert reply == Error(errors.E_SECURITY, "bad token signature")


def test_each_member_gets_a_key_of_its_own(make_cluster, tmp_path: Path) -> None:
    """Two members registering get two different keys, neither the cluster's own.

    (A private cluster: registered members would be sent clients' files.)
    """
    cluster = make_cluster(slaves=1)
    keys = []
    for name in ("member-a", "member-b"):
        member = issue_member(cluster, tmp_path, name)
        with master_socket(cluster, member) as sock:
            reply = _register(sock, name)
            assert isinstance(reply, RegisterReply), reply
            keys.append(reply.key)
    assert keys[0] != keys[1]
    assert (cluster.layout.master_home / "token.key").read_bytes() not in keys


def _slave(cluster: LocalCluster, data: Path, *args: str) -> subprocess.CompletedProcess:
    """A slave started by hand on ``data`` (no join.token beside this conf: a copy)."""
    conf = data.parent / "conf"
    conf.mkdir(exist_ok=True)
    shutil.copy(cluster.layout.conf / "slave.conf", conf / "slave.conf")
    shutil.copy(cluster.layout.cert, conf / "master_node.cert")
    master = "{}:{}".format(*cluster.master_address)
    command = ["-m", "sector.slave", "--conf", str(conf), "--data", str(data), "--master", master]
    return subprocess.run(
        [sys.executable, *command, *args], capture_output=True, text=True, timeout=60
    )


def test_a_slave_that_is_no_member_and_has_no_token_will_not_start(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    result = _slave(cluster, tmp_path / "data")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"sector slave: {tmp_path / 'data'} holds no membership certificate from the master"
    )
    assert "--join TOKEN" in result.stderr


def test_a_slave_refused_membership_stops_saying_why(cluster: LocalCluster, tmp_path: Path) -> None:
    certs.create(tmp_path / "other.cert", tmp_path / "other.key")
    foreign = certs.Authority.load(tmp_path / "other.cert", tmp_path / "other.key")
    result = _slave(cluster, tmp_path / "data", "--join", foreign.join_token(60, time.time()))
    assert result.returncode == 1
    assert (
        "the master refused to let this slave join: join refused: "
        "the join token was not made for this cluster"
    ) in result.stderr
    assert not (tmp_path / "data" / "slave.cert").exists()


def test_a_malformed_registration_is_e_invalid_and_leaves_nothing_listed(
    make_cluster, tmp_path: Path
) -> None:
    """Issue 9: a register whose ``objects`` had the wrong type raised in the handler
    and left a half-registered slave listed."""
    cluster = make_cluster(slaves=1)
    member = issue_member(cluster, tmp_path, "half")
    usage = [0, 0, 0, 0]
    for objects in (["not an object"], [[1, 1, "size?", "sum"]], [[-1, 1, 0, "sum"]]):
        with master_socket(cluster, member) as sock:
            frame = ["register", PROTOCOL_VERSION, "half", "127.0.0.1", 1, usage, objects]
            sock.sendall(encode(frame))
            reply = replies_to(Register).decode(recv_body(sock))
            assert isinstance(reply, Error) and reply.code == errors.E_INVALID, reply
            assert "`objects" in reply.msg
            assert closed_by_peer(sock)
    assert "half" not in _listed(cluster)
    with master_socket(cluster, member) as sock:  # and a registered member's bad report
        assert isinstance(_register(sock, "half"), RegisterReply)
        sock.sendall(encode(["heartbeat", {"total": "lots"}]))
        reply = replies_to(Heartbeat).decode(recv_body(sock))
        assert isinstance(reply, Error) and reply.code == errors.E_INVALID
        sock.sendall(encode(["heartbeat", [1, 1, 0, 0]]))
        assert replies_to(Heartbeat).decode(recv_body(sock)) == Done()
