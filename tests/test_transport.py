"""``recv_whole``: one receive into the bytes returned, on real connected sockets."""

from __future__ import annotations

import os
import socket
import threading
import time

from sector.transport import recv_whole


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of a real TCP connection on 127.0.0.1 (as data connections are)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname())
        far, _ = listener.accept()
    return near, far


def test_all_the_bytes_come_in_one_call_however_they_were_sent() -> None:
    near, far = connected_pair()
    data = os.urandom(8 * 1024 * 1024)
    near.settimeout(5.0)

    def send_in_pieces() -> None:
        for start in range(0, len(data), 1_000_003):
            far.sendall(data[start : start + 1_000_003])

    sender = threading.Thread(target=send_in_pieces)
    sender.start()
    try:
        assert recv_whole(near, len(data)) == data
        assert near.gettimeout() == 5.0  # the caller's timeout is back
    finally:
        sender.join()
        near.close()
        far.close()


def test_a_peer_that_stops_early_gives_what_came() -> None:
    near, far = connected_pair()
    near.settimeout(5.0)
    far.sendall(b"only this")
    far.close()
    try:
        assert recv_whole(near, 1000) == b"only this"
    finally:
        near.close()


def test_a_peer_that_stalls_gives_what_came_after_the_timeout() -> None:
    near, far = connected_pair()
    near.settimeout(0.3)
    far.sendall(b"half")
    started = time.monotonic()
    try:
        assert recv_whole(near, 1000) == b"half"
        assert time.monotonic() - started < 5.0
        far.sendall(b" and the rest")  # the connection is still usable as before
        assert near.recv(100) == b" and the rest"
    finally:
        near.close()
        far.close()
