"""Requests sent back to back on one master connection are all answered, in order."""

from __future__ import annotations

import socket

from sector.protocol.framing import encode
from sector.transport import FrameReader, client_tls_context
from tests.conftest import PASSWORD, USER


def test_a_thousand_pipelined_requests_come_back_in_order(cluster) -> None:
    raw = socket.create_connection(cluster.master_address, timeout=30)
    with client_tls_context(cluster.layout.cert).wrap_socket(
        raw, server_hostname="localhost"
    ) as sock:
        reader = FrameReader(sock)
        sock.sendall(encode({"op": "login", "user": USER, "password": PASSWORD}))
        assert reader.read()["ok"]
        paths = ["/" if n % 2 else f"/missing-{n}" for n in range(1000)]
        # more than the master queues per connection: it must pause reading, not drop
        sock.sendall(b"".join(encode({"op": "stat", "path": p}) for p in paths))
        replies = [reader.read() for _ in paths]
    assert [r["ok"] for r in replies] == [p == "/" for p in paths]
    assert all(r["path"] == p for r, p in zip(replies, paths, strict=True) if not r["ok"])
