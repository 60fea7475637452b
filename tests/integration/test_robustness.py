"""A server never dies because one client misbehaved: random requests, then real work."""

from __future__ import annotations

import random
import socket
import ssl

from sector.client import Client
from sector.protocol.framing import encode
from sector.protocol.messages import READ, WRITE
from sector.transport import recv_frame
from tests.conftest import PASSWORD, USER, connect

OPS = [
    "login",
    "stat",
    "ls",
    "mkdir",
    "rm",
    "move",
    "copy",
    "open",
    "close",
    "abort",
    "sysinfo",
    "read",
    "write",
    "put",
    "commit",
    "delete",
    "verify",
    "shutdown",
    "bogus",
    None,
    7,
]


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "str", "bytes", "none", "bool", "float"]
    if depth < 2:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, -(2**40), rng.randint(-10, 10**6)])
    if kind == "str":
        return rng.choice(["/", "/a/../..", "", "\x00", "x" * 300, "/robustness/scratch", "//"])
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 64))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float":
        return rng.random() * 1e9
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {str(i): _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}
    return None


def _random_request(rng: random.Random) -> dict:
    request = {"op": rng.choice(OPS)}
    for key in rng.sample(
        ["path", "src", "dst", "mode", "lease", "receipt", "token", "offset", "objects", "user"],
        rng.randint(0, 4),
    ):
        request[key] = _random_value(rng)
    if request["op"] == "put":
        request["length"] = 0  # a put announces raw bytes; keep the stream in step
    return request


def test_random_requests_to_the_master_get_replies_and_harm_no_one(cluster) -> None:
    rng = random.Random(20261126)
    context = ssl.create_default_context(cafile=str(cluster.layout.cert))
    context.check_hostname = False
    with (
        socket.create_connection(cluster.master_address, timeout=30) as raw,
        context.wrap_socket(raw) as sock,
    ):
        sock.sendall(encode({"op": "login", "user": USER, "password": PASSWORD}))
        assert recv_frame(sock)["ok"]
        for _ in range(300):
            request = _random_request(rng)
            if request["op"] in ("login", "logout"):
                continue
            sock.sendall(encode(request))
            reply = recv_frame(sock)
            assert isinstance(reply.get("ok"), bool)
            if not reply["ok"]:
                assert isinstance(reply["code"], int) and reply["code"] < 0
    _still_serving(cluster)


def test_random_requests_to_a_slave_leave_it_serving(cluster, client: Client) -> None:
    rng = random.Random(42)
    host, port = client.sysinfo()["slaves"][0]["address"].split(":")
    for _ in range(20):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            for _ in range(15):
                request = _random_request(rng)
                try:
                    sock.sendall(encode(request))
                    if request["op"] in (
                        "read",
                        "commit",
                        "delete",
                        "verify",
                        "shutdown",
                        "bogus",
                        None,
                        7,
                        "copy",
                    ):
                        reply = recv_frame(sock)
                        assert isinstance(reply.get("ok"), bool)
                except (ConnectionError, OSError):
                    break  # the slave may drop a connection that broke the protocol
    _still_serving(cluster)


def _still_serving(cluster) -> None:
    survivor = connect(cluster)
    with survivor.open("/robustness/after", WRITE) as handle:
        handle.write(b"still here")
    with survivor.open("/robustness/after", READ) as handle:
        assert handle.read() == b"still here"
    assert all(s["status"] == "alive" for s in survivor.sysinfo()["slaves"])
    survivor.rm("/robustness")
    survivor.close()
