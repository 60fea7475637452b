"""Tokens that must act once act once: a write lease, a master's order.

Issue 9, finding 4: the same write token on two data connections wrote twice,
and the second write's bytes were served under the first one's checksum. Now
a slave accepts one write session per lease, hears of leases that ended
unused, and takes each of the master's orders once, and only the order its
token was signed for.
"""

from __future__ import annotations

import socket
import time

import msgspec

from sector import errors
from sector.client import Client
from sector.cluster import LocalCluster
from sector.config import parse_address
from sector.protocol import checksum, tokens
from sector.protocol.data import (
    Commit,
    CommitReply,
    DeleteObjects,
    DeleteReply,
    LeaseEnd,
    ObjectId,
    Put,
    Write,
)
from sector.protocol.framing import encode
from sector.protocol.master import Close, Open, WriteGrant
from sector.protocol.messages import READ, WRITE, Error, replies_to
from sector.protocol.tokens import AdminClaims
from sector.transport import recv_body


def _write(address: tuple[str, int], token: bytes, data: bytes) -> object:
    """A whole write session on a fresh connection: write, put, commit; the reply."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(encode(Write(token)) + encode(Put(0, len(data))) + data + encode(Commit()))
        return replies_to(Commit).decode(recv_body(sock))


def _grant(client: Client, path: str) -> WriteGrant:
    grant = client.call(Open(path, WRITE))
    assert isinstance(grant, WriteGrant)
    return grant


def test_a_write_token_reused_on_a_second_connection_is_refused(
    client: Client, workdir: str
) -> None:
    path = f"{workdir}/once"
    grant = _grant(client, path)
    address = tuple(grant.slave)
    first = _write(address, grant.token, b"first")
    assert isinstance(first, CommitReply)
    second = _write(address, grant.token, b"secnd")  # same length, other bytes
    assert second == Error(
        errors.E_SECURITY, "this write token has been used already (one write per lease)"
    )
    entry = client.call(Close(grant.lease, first.receipt)).entry
    assert entry.checksum == checksum.of_bytes(b"first")
    with client.open(path, READ) as handle:
        assert handle.read() == b"first"


def test_a_second_session_started_before_the_first_commits_is_refused(
    client: Client, workdir: str
) -> None:
    grant = _grant(client, f"{workdir}/race")
    address = tuple(grant.slave)
    with socket.create_connection(address, timeout=10) as one:
        one.sendall(encode(Write(grant.token)) + encode(Put(0, 3)) + b"one")
        assert _write(address, grant.token, b"two") == Error(
            errors.E_SECURITY, "this write token has been used already (one write per lease)"
        )
        one.sendall(encode(Commit()))
        assert isinstance(replies_to(Commit).decode(recv_body(one)), CommitReply)


def _slave_key(cluster: LocalCluster, address: tuple[str, int]) -> tuple[str, bytes]:
    """The id and token key of the slave at ``address`` (what the master derives)."""
    for number in range(1, cluster.slaves + 1):
        ready = (cluster.layout.slave_dir(number) / "slave.addr").read_text().split()
        if (ready[0], int(ready[1])) == address:
            cluster_key = (cluster.layout.master_home / "token.key").read_bytes()
            return ready[3], tokens.slave_key(cluster_key, ready[3])
    raise AssertionError(f"no slave at {address}")


def _order(order: DeleteObjects, slave_id: str, key: bytes) -> DeleteObjects:
    """``order`` signed as the master signs it."""
    token = tokens.sign(key, AdminClaims(slave_id, order.digest()), time.time() + 60)
    return msgspec.structs.replace(order, token=token)


def _ask(address: tuple[str, int], order: DeleteObjects) -> object:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(encode(order))
        return replies_to(DeleteObjects).decode(recv_body(sock))


def test_a_lease_that_ended_unused_takes_its_token_with_it(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    """What the master sends when a lease is aborted before the slave saw its token."""
    grant = _grant(client, f"{workdir}/ended")
    address = tuple(grant.slave)
    slave_id, key = _slave_key(cluster, address)
    ended = DeleteObjects([], ended=[LeaseEnd(grant.lease, time.time() + 600)])
    assert _ask(address, _order(ended, slave_id, key)) == DeleteReply(0)
    reply = _write(address, grant.token, b"late")
    assert isinstance(reply, Error) and reply.code == errors.E_SECURITY


def test_an_order_is_obeyed_once_and_only_as_signed(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    with client.open(f"{workdir}/kept", WRITE) as handle:
        handle.write(b"kept")
    address = parse_address(client.stat(f"{workdir}/kept").slaves[0])
    slave_id, key = _slave_key(cluster, address)
    harmless = _order(DeleteObjects([ObjectId(2**40, 1)]), slave_id, key)
    assert _ask(address, harmless) == DeleteReply(0)
    assert _ask(address, harmless) == Error(
        errors.E_SECURITY, "this order was carried out already (a token is good once)"
    )
    # the token of a harmless order on another one: what an eavesdropper would try
    kept = client.call(Open(f"{workdir}/kept", READ))
    forged = DeleteObjects([ObjectId(kept.oid, kept.version)], token=harmless.token)
    assert _ask(address, forged) == Error(
        errors.E_SECURITY, "the order is not the one its token was signed for"
    )
    with client.open(f"{workdir}/kept", READ) as handle:
        assert handle.read() == b"kept"
