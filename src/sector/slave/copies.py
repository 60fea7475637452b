"""A slave reading an object from another slave: the receiving end of a replica copy.

The master orders it (``fetch``, :class:`~sector.protocol.data.FetchObject`);
this slave then talks to the source slave exactly as a client would, through
:class:`~sector.protocol.data.DataSession` - the same sans-IO conversation the
blocking client drives - over asyncio's socket calls (``transport.py``), and
over TLS when the cluster sets DATA_ENCRYPTION (``SlaveServer.dial_slave``). It
never imports the client: the two share the protocol, not each other.

The bytes land in a :class:`~.storage.WriteSession` (temp file, hashed as they
arrive, written on a helper thread while the next chunk comes in, as uploads
are) and are published only when all of them are in and their checksum is the
one the master asked for; otherwise nothing is kept and the master hears why.
Each chunk is first checked against the block sums the source sent with it,
as a client's reads are: bad bytes from one source are never written, the copy
moves on to the next source, and the master is told which slave sent them
(:class:`~sector.protocol.master.BadSource`), so it has that slave check its
replica - which is quarantined if the rot is there.
A source that stops sending for :data:`STALL_TIMEOUT` (dead, or SIGSTOPped) is
dropped and the copy resumes at the same offset from the next source.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
from typing import TYPE_CHECKING

from ..errors import InvalidError, SectorConnectionError, SectorError, SecurityError
from ..protocol import checksum
from ..protocol.data import DataSession, FetchObject, FetchReply
from ..protocol.framing import ProtocolError
from ..protocol.messages import Error
from ..transport import Channel
from .storage import DamagedObject, WriteSession, disk_error

if TYPE_CHECKING:
    from .server import SlaveServer

log = logging.getLogger("sector.slave")

#: Seconds a source may stay silent before the copy moves on to the next one.
STALL_TIMEOUT = 20.0
#: Bytes received per chunk: written on a thread while the next one arrives.
CHUNK = 4 * 1024 * 1024
#: Bytes asked for by one read request.
REQUEST = 256 * 1024 * 1024


async def fetch(server: SlaveServer, order: FetchObject) -> FetchReply:
    """Carry out a ``fetch`` order: the object stored and verified, or an exception."""
    storage, loop = server.storage, asyncio.get_running_loop()
    oid, version = order.obj.oid, order.obj.version
    held = storage.find(oid, version)
    if held is not None and held.checksum == order.checksum and held.size == order.size:
        storage.note_path(oid, version, order.path)
        return FetchReply(held.size, held.checksum)  # an earlier order got here first
    server.check_space(order.size)
    write = await loop.run_in_executor(None, WriteSession.begin, storage, oid, version, 0, 0)
    try:
        offset, failures = 0, []
        for source, token in zip(order.sources, order.read_tokens, strict=False):
            try:
                offset = await _read_from(server, tuple(source), token, order, write, offset)
            except (OSError, ProtocolError, SectorError, asyncio.TimeoutError) as exc:
                failures.append(f"{source[0]}:{source[1]}: {exc or type(exc).__name__}")
                if isinstance(exc, _BadBytes):
                    server.suspect(order.obj, f"{source[0]}:{source[1]}")
                continue
            if offset >= order.size:
                break
        if offset < order.size:
            raise SectorConnectionError(
                f"no source could be read to the end ({'; '.join(failures) or 'none given'})"
            )
        try:
            size, checksum = await loop.run_in_executor(None, write.commit, order.checksum)
        except DamagedObject as exc:
            raise SecurityError(f"copy of {oid}.{version} refused: {exc}") from None
    except _DiskFailed as exc:
        write.discard()
        raise disk_error(exc.args[0]) from None
    except BaseException:
        write.discard()
        raise
    storage.note_path(oid, version, order.path)
    return FetchReply(size, checksum)


async def _read_from(
    server: SlaveServer,
    address: tuple[str, int],
    token: bytes,
    order: FetchObject,
    write: WriteSession,
    offset: int,
) -> int:
    """Read from one source into ``write`` from ``offset``; the offset reached."""
    loop = asyncio.get_running_loop()
    session = DataSession()
    buffers = [mmap.mmap(-1, CHUNK), mmap.mmap(-1, CHUNK)]  # page-aligned, for O_DIRECT
    in_flight: asyncio.Future | None = None
    turn = 0
    channel: Channel | None = None
    try:
        # plain TCP, or TLS when the cluster encrypts its data connections
        channel = await server.dial_slave(address, STALL_TIMEOUT)
        while offset < order.size:
            length = min(REQUEST, order.size - offset)
            await channel.sendall(session.read(offset, length, token))
            reply = await asyncio.wait_for(channel.receive_reply(session), STALL_TIMEOUT)
            if isinstance(reply, Error):
                raise reply.exception()
            if reply.length == 0:
                raise InvalidError(f"source holds {offset} bytes, {order.size} were expected")
            remaining, origin = reply.length, offset
            while remaining:
                view = memoryview(buffers[turn])[: min(remaining, CHUNK)]
                got = await asyncio.wait_for(channel.recv_exact_into(view), STALL_TIMEOUT)
                if got < len(view):
                    raise ConnectionError("source closed the connection mid-object")
                session.received_raw(got)
                first = (offset - origin) // checksum.BLOCK * checksum.SUM_SIZE
                sums = reply.sums[first : first + checksum.sums_length(got)]
                if in_flight is not None:
                    await in_flight
                in_flight = loop.run_in_executor(None, _write, write, offset, view, sums)
                turn ^= 1  # the next chunk fills the other buffer
                offset += got
                remaining -= got
        return offset
    finally:
        if in_flight is not None:
            await in_flight  # never leave a thread writing from a buffer being freed
        if channel is not None:
            channel.sock.close()


class _DiskFailed(Exception):
    """Our own disk failed: no other source would help."""


class _BadBytes(SectorError):
    """The source sent bytes that do not match their block sums."""


def _write(write: WriteSession, offset: int, view: memoryview, sums: bytes) -> None:
    """Check a chunk against its sums, then write it (on a helper thread: both take time)."""
    bad = checksum.first_bad_block(view, sums)
    if bad is not None:
        raise _BadBytes(f"block at byte {offset + bad * checksum.BLOCK} does not match its sum")
    try:
        write.write_at(offset, view, aligned=True)
    except OSError as exc:
        raise _DiskFailed(exc) from exc


__all__ = ["fetch"]
