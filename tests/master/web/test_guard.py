"""The dashboard's connections are bounded: a visitor cannot take the master's descriptors.

aiohttp alone kept idle and half-sent requests open for an hour and accepted
any number of them, in the master's own process (``master/web/guard.py``).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from sector.cluster import LocalCluster
from sector.master.web.guard import IDLE_TIMEOUT, MAX_CONNECTIONS
from tests.support import closed_by_peer, connect, wait_until

from .client import WebClient


def test_silent_and_surplus_connections_are_closed_and_sector_logins_go_on(
    cluster: LocalCluster,
) -> None:
    url = urlsplit(cluster.dashboard_url)
    assert url.hostname is not None and url.port is not None
    address = (url.hostname, url.port)
    held = [socket.create_connection(address, 3 * IDLE_TIMEOUT) for _ in range(MAX_CONNECTIONS)]
    surplus = [socket.create_connection(address, 3 * IDLE_TIMEOUT) for _ in range(10)]
    try:
        held[0].sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # a head never finished
        held[1].sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive after
        assert all(closed_by_peer(sock) for sock in surplus)  # at once: over the limit
        with connect(cluster) as client:  # the master's own port is not touched
            assert client.stat("/").isdir
        assert held[1].recv(12) == b"HTTP/1.1 200"
        for sock in held:  # silent too long: each is closed (or recv times out)
            read_until_closed(sock)
    finally:
        for sock in held + surplus:
            sock.close()
    log = cluster.layout.master_home / "master.log"
    refusing = f"dashboard: {MAX_CONNECTIONS} connections open, refusing more"
    wait_until(lambda: refusing in log.read_text(), what="the refusals in the master's log")
    assert WebClient(cluster.dashboard_url).get("/login").status == 200  # and serves again


def read_until_closed(sock: socket.socket) -> None:
    """Read what the peer sent until it hangs up; TimeoutError if it does not."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
