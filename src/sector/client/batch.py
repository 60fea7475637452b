"""The slave side of ``Client.write_many`` and ``Client.read_many``: many small files'
bytes on one data connection per slave, pipelined.

A data connection carries one conversation after another (that is how the
pool reuses it), and the slave answers them in order, so many files' write
sessions - ``write``, ``put``, the bytes, ``commit`` - or many ``read``
requests can go out back to back, each with its own
:class:`~sector.protocol.data.DataSession` reading its own reply off the
stream in turn. At most ``depth`` files are unanswered at a time: their
replies (a commit's is ~100 bytes; a read's carries its file) then always
fit the socket buffers, so neither side blocks on the other.

The master's part (the grants before, the closes after) is the session's,
pipelined with ``call_many``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import SectorConnectionError, SectorError
from ..protocol import checksum
from ..protocol.data import CommitReply, DataSession, OutOfTurn
from ..protocol.framing import ProtocolError
from ..protocol.master import Address, ReadGrant, WriteGrant
from ..protocol.messages import Error
from ..transport import close_quietly, receive_reply, recv_exact_into
from .reading import READ_REQUEST

if TYPE_CHECKING:
    from .session import Client

#: Connections (and threads) per slave that carry a batch's writes.
WRITE_STREAMS = 8
#: What breaks a data connection (every file still unanswered on it fails).
_BROKEN = (OSError, ProtocolError, OutOfTurn)


def store(
    client: Client,
    files: list[tuple[str, WriteGrant, bytes | bytearray | memoryview]],
    depth: int,
) -> list[CommitReply | SectorError]:
    """Write each file's bytes and commit them on its grant's slave; each one's commit
    reply (its receipt, for the master's ``close``) or its error, in order."""
    outcomes: list[CommitReply | SectorError | None] = [None] * len(files)
    by_slave = _group(
        range(len(files)), lambda i: (_address(files[i][1].slave), files[i][1].secure)
    )

    def send(session: DataSession, index: int) -> bytes:
        _, grant, data = files[index]
        # the slave has the master record the commit (not a chain's: see SectorFile)
        frames = [session.begin_write(grant.token, grant.chain, not grant.chain)]
        if len(data):
            frames += [session.put(0, len(data)), data]
        frames.append(session.commit())
        return b"".join(frames)

    def receive(sock: socket.socket, session: DataSession, index: int) -> None:
        reply = receive_reply(sock, session)
        path = files[index][0]
        outcomes[index] = reply.exception(path) if isinstance(reply, Error) else reply

    # Several connections per slave, each on a thread of its own: a slave finishes one
    # commit per connection at a time (its fsync, the master's record), and commits on
    # several connections at once are what its group commit flushes together.
    stripes = [
        (address, secure, indices[first::WRITE_STREAMS])
        for (address, secure), indices in by_slave.items()
        for first in range(min(WRITE_STREAMS, len(indices)))
    ]
    with ThreadPoolExecutor(max_workers=max(1, len(stripes))) as pool:
        for running in [
            pool.submit(_pipeline, client, address, secure, part, depth, send, receive, outcomes)
            for address, secure, part in stripes
        ]:
            running.result()
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(files), "every file has its outcome"
    return done


def fetch(client: Client, grants: list[ReadGrant], depth: int) -> list[bytes | SectorError | None]:
    """Each file whole from its first replica, checked against its block sums and the
    version's checksum; None where that did not work out (the caller reads that file
    the long way, which fails over between replicas and explains its failure)."""
    outcomes: list[bytes | SectorError | None] = [None] * len(grants)
    wanted = []
    for index, grant in enumerate(grants):
        if grant.size == 0:
            outcomes[index] = b""
        elif grant.replicas and grant.size <= READ_REQUEST:
            wanted.append(index)

    def send(session: DataSession, index: int) -> bytes:
        grant = grants[index]
        return session.read(0, grant.size, grant.token)  # the first replica's token

    def receive(sock: socket.socket, session: DataSession, index: int) -> None:
        grant = grants[index]
        reply = receive_reply(sock, session)
        if isinstance(reply, Error):
            return  # this replica refused it: the long way tries the others
        data = bytearray(reply.length)
        recv_exact_into(sock, memoryview(data))
        session.received_raw(reply.length)
        if (
            reply.length == grant.size
            and checksum.of_sums(reply.sums) == grant.checksum
            and checksum.first_bad_block(data, reply.sums) is None
        ):
            outcomes[index] = bytes(data)

    by_slave = _group(wanted, lambda i: (_address(grants[i].replicas[0]), grants[i].secure))
    for (address, secure), indices in by_slave.items():
        _pipeline(client, address, secure, indices, depth, send, receive, outcomes)
    return [None if isinstance(outcome, SectorError) else outcome for outcome in outcomes]


def _pipeline(
    client: Client,
    address: Address,
    secure: bool,
    indices: list[int],
    depth: int,
    send: Callable[[DataSession, int], bytes],
    receive: Callable[[socket.socket, DataSession, int], None],
    outcomes: list,
) -> None:
    """Send ``send(session, i)`` for each index and ``receive`` the replies in order, at
    most ``depth`` unanswered. A slave out of reach, or a connection that breaks,
    fails every unanswered index with that SectorError."""
    try:
        sock = client.data_connection(address, secure)
    except SectorError as exc:
        for index in indices:
            outcomes[index] = exc
        return
    sessions = {index: DataSession() for index in indices}
    sent = answered = 0
    try:
        while answered < len(indices):
            if sent < len(indices) and sent - answered <= depth // 2:
                window = indices[sent : answered + depth]
                sock.sendall(b"".join(send(sessions[index], index) for index in window))
                sent += len(window)
            index = indices[answered]
            receive(sock, sessions[index], index)
            answered += 1
    except _BROKEN as exc:
        close_quietly(sock)
        broken = SectorConnectionError(
            f"connection to slave {address[0]}:{address[1]} broke: {exc}"
        )
        for index in indices[answered:]:
            outcomes[index] = broken
        return
    client.release_connection(address, sock)


def _group(indices: range | list[int], key: Callable[[int], tuple[Address, bool]]) -> dict:
    """Indices by key, each list in its original order."""
    groups: dict[tuple[Address, bool], list[int]] = {}
    for index in indices:
        groups.setdefault(key(index), []).append(index)
    return groups


def _address(address: Address) -> Address:
    return (address[0], int(address[1]))
