"""Requests sent back to back on one master connection are all answered, in order."""

from __future__ import annotations

import socket

from sector.errors import E_NOEXIST
from sector.protocol.framing import encode
from sector.protocol.master import Login, LoginReply, Stat, StatReply
from sector.protocol.messages import PROTOCOL_VERSION, Error, replies_to
from sector.transport import FrameReader, client_tls_context
from tests.support import PASSWORD, USER


def test_a_thousand_pipelined_requests_come_back_in_order(cluster) -> None:
    raw = socket.create_connection(cluster.master_address, timeout=30)
    with client_tls_context(cluster.layout.cert).wrap_socket(
        raw, server_hostname="localhost"
    ) as sock:
        reader = FrameReader(sock)
        # the login and the first requests travel together: each frame is decoded
        # with the vocabulary of the state its turn finds the connection in
        paths = ["/" if n % 2 else f"/missing-{n}" for n in range(1000)]
        # more than the master queues per connection: it must pause reading, not drop
        sock.sendall(
            encode(Login(PROTOCOL_VERSION, USER, PASSWORD))
            + b"".join(encode(Stat(p)) for p in paths)
        )
        assert isinstance(replies_to(Login).decode(reader.read()), LoginReply)
        replies = [replies_to(Stat).decode(reader.read()) for _ in paths]
    assert [isinstance(r, StatReply) for r in replies] == [p == "/" for p in paths]
    refused = [(r, p) for r, p in zip(replies, paths, strict=True) if isinstance(r, Error)]
    assert all(r.code == E_NOEXIST and r.path == p for r, p in refused)
