"""The data conversation's state machine, driven from asyncio against a live slave.

This is how a slave will fetch a replica from another slave (it must not
import the blocking client): a :class:`DataSession` for the rules, the
asyncio socket helpers of ``sector.transport`` for the bytes, and the file's
bytes received straight into the caller's buffer.
"""

from __future__ import annotations

import asyncio
import socket

from sector.client import Client
from sector.protocol.data import DataSession, ReadReply
from sector.protocol.master import Open
from sector.protocol.messages import READ, WRITE, Error
from sector.transport import sock_receive_reply, sock_recv_exact_into


async def fetch(address: tuple[str, int], token: bytes, size: int) -> bytearray:
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(address)
    sock.setblocking(False)
    session = DataSession()
    buffer = bytearray(size)
    try:
        await loop.sock_sendall(sock, session.read(0, size, token))
        reply = await sock_receive_reply(loop, sock, session)
        assert isinstance(reply, ReadReply) and reply.length == size
        got = await sock_recv_exact_into(loop, sock, memoryview(buffer))
        session.received_raw(got)
        assert session.idle
        await loop.sock_sendall(sock, session.read(0, 1, b"forged"))
        refused = await sock_receive_reply(loop, sock, session)
        assert isinstance(refused, Error)
    finally:
        sock.close()
    return buffer


def test_an_asyncio_program_reads_a_replica_through_the_data_session(
    client: Client, workdir: str
) -> None:
    content = bytes(range(256)) * 1000
    with client.open(f"{workdir}/replica", WRITE) as handle:
        handle.write(content)
    grant = client.call(Open(f"{workdir}/replica", READ))
    fetched = asyncio.run(fetch(tuple(grant.replicas[0]), grant.token, grant.size))
    assert fetched == content
