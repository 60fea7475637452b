"""Moving frames over real sockets, and the TLS contexts every party uses.

The protocol package says what the bytes are; this module is the thin layer
that reads and writes them, in the three flavours Sector needs: blocking
sockets (the client), asyncio streams (the master's links, a slave's link to
its master) and asyncio's low-level socket calls (a slave's data port, which
needs ``sendfile`` and ``recv_into``). "Read exactly n bytes" is written here
once per flavour, and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .protocol.data import DataSession
from .protocol.framing import HEADER_SIZE, FrameDecoder, ProtocolError, body_length, encode
from .protocol.messages import Reply

__all__ = [
    "Channel",
    "FrameReader",
    "ProtocolError",
    "TlsChannel",
    "certificate_der",
    "check_master",
    "client_tls_context",
    "close_quietly",
    "dial",
    "read_body",
    "receive_reply",
    "recv_body",
    "recv_exact_into",
    "recv_whole",
    "send_message",
    "server_tls_context",
    "sock_peek",
    "sock_receive_reply",
    "sock_recv_exact_into",
    "still_open",
    "write_message",
]


# --- asyncio streams --------------------------------------------------------------------


async def read_body(reader: asyncio.StreamReader) -> bytearray | None:
    """The next frame's body, or None when the peer closed cleanly between frames."""
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from None
        return None
    return bytearray(await reader.readexactly(body_length(header)))


async def write_message(writer: asyncio.StreamWriter, message: object) -> None:
    writer.write(encode(message))
    await writer.drain()


# --- asyncio sockets (loop.sock_*) ------------------------------------------------------

#: A frame body larger than this is received into a buffer that grows as bytes arrive.
GROW_FROM = 64 * 1024
#: The first byte of a TLS connection (a handshake record); a frame header's first byte
#: is at most 0x04 (frames stay under 64 MiB), so one port can serve both.
TLS_HANDSHAKE = 0x16
#: Bytes read from the socket, or encrypted and sent, at a time on a TLS channel.
TLS_CHUNK = 256 * 1024


class Channel:
    """A byte stream on a non-blocking socket driven by the event loop: plain TCP.

    A slave's data connections speak through one: this one passes straight to
    ``loop.sock_recv_into``, ``sock_sendall`` and ``sock_sendfile``, so file
    bytes are never copied through Python; :class:`TlsChannel` encrypts, at the
    price of those copies.
    """

    secure = False

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket):
        self.loop, self.sock = loop, sock

    async def recv_into(self, view: memoryview) -> int:
        return await self.loop.sock_recv_into(self.sock, view)

    async def sendall(self, data: bytes | bytearray | memoryview) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        await self.loop.sock_sendfile(self.sock, file, offset, count)

    async def recv_exact_into(
        self, view: memoryview, progress: Callable[[], None] | None = None
    ) -> int:
        """Fill ``view``; the count, short only if the peer closed.

        ``progress`` is called whenever bytes arrive: a server's watchdog tells a
        slow peer from one that stopped (see ``slave/server.py``).
        """
        got = 0
        while got < len(view):
            received = await self.recv_into(view[got:])
            if not received:
                break
            got += received
            if progress is not None:
                progress()
        return got

    async def read_body(self, progress: Callable[[], None] | None = None) -> bytearray | None:
        """The next frame's body, or None when the peer closed cleanly between frames.

        Memory follows the bytes that arrived, not the length announced: a large
        body is received into a buffer that doubles as it fills, so a peer that
        announces 64 MiB and sends nothing costs 64 KiB (issue 9: 30 such headers
        took a slave from 34 MB to 1.95 GB).
        """
        header = bytearray(HEADER_SIZE)
        got = await self.recv_exact_into(memoryview(header), progress)
        if got == 0:
            return None
        if got < HEADER_SIZE:
            raise ConnectionError("connection closed inside a frame header")
        length = body_length(header)
        body = bytearray(min(length, GROW_FROM))
        filled = 0
        while True:
            filled += await self.recv_exact_into(memoryview(body)[filled:], progress)
            if filled < len(body):
                raise ConnectionError("connection closed inside a frame")
            if filled == length:
                return body
            body.extend(bytes(min(length - filled, len(body))))

    async def receive_reply(self, session: DataSession) -> Reply:
        """Drive ``session`` until the slave's reply is in (raw bytes after it stay unread)."""
        while True:
            part = bytearray(_wanted(session))
            if await self.recv_exact_into(memoryview(part)) < len(part):
                raise ConnectionError("connection closed by peer")
            reply = session.receive(part)
            if reply is not None:
                return reply


class TlsChannel(Channel):
    """TLS over the same non-blocking socket, with an :class:`ssl.SSLObject` and memory
    buffers (asyncio's own TLS needs a transport, and the slave works on sockets).

    Bytes are decrypted into the caller's buffer (``SSLObject.read`` into a view)
    and files are read in chunks to be encrypted: ``sendfile`` cannot apply.
    """

    secure = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_side: bool = True,
    ):
        super().__init__(loop, sock)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionError("connection closed during the TLS handshake") from None
                continue
            await self._flush()
            return

    def peer_certificate(self) -> dict | None:
        return self._tls.getpeercert()

    async def recv_into(self, view: memoryview) -> int:
        """Decrypt into ``view``: as many records as have arrived (one ``read`` gives at
        most one 16 KiB record; looping here rather than in the caller spares an await
        per record), waiting for the socket only when none has."""
        got = 0
        while True:
            try:
                count = self._tls.read(len(view) - got, view[got:])
            except ssl.SSLWantReadError:
                if got:
                    return got
                await self._flush()  # TLS 1.3 may have something to say first
                if not await self._fill():
                    return 0
                continue
            except ssl.SSLZeroReturnError:
                return got
            if not count:
                return got
            got += count
            if got == len(view):
                return got

    async def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = self._tls.write(view[:TLS_CHUNK])
            view = view[written:]
            await self._flush()

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        chunk = bytearray(min(count, TLS_CHUNK))
        while count:
            got = os.preadv(file.fileno(), [memoryview(chunk)[: min(count, len(chunk))]], offset)
            if not got:
                raise ConnectionError("file ended before the bytes announced were sent")
            await self.sendall(memoryview(chunk)[:got])
            offset, count = offset + got, count - got

    async def _fill(self) -> bool:
        """Encrypted bytes from the socket into the TLS object; False at the end of the stream."""
        data = await self.loop.sock_recv(self.sock, TLS_CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)


async def sock_peek(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """The first byte waiting on ``sock``, left there; b"" if the peer closed."""
    while True:
        try:
            return sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _wake, readable)
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())


def _wake(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


async def sock_recv_exact_into(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, view: memoryview
) -> int:
    """Fill ``view`` from a plain non-blocking socket; the count, short only at its end."""
    return await Channel(loop, sock).recv_exact_into(view)


async def sock_receive_reply(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, session: DataSession
) -> Reply:
    """Drive ``session`` until the slave's reply is in (raw bytes after it stay unread)."""
    return await Channel(loop, sock).receive_reply(session)


async def dial(
    loop: asyncio.AbstractEventLoop,
    address: tuple[str, int],
    context: ssl.SSLContext | None,
    timeout: float,
) -> Channel:
    """A connection to another slave's data port, as a client makes one: plain, or over
    TLS with ``context`` (checked to chain to the master's certificate by the context;
    the caller checks the peer is a slave). ``timeout`` bounds the connect and handshake."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
        if context is None:
            return Channel(loop, sock)
        channel = TlsChannel(loop, sock, context, server_side=False)
        await asyncio.wait_for(channel.handshake(), timeout)
        return channel
    except BaseException:
        sock.close()
        raise


# --- blocking sockets -------------------------------------------------------------------


def recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from a blocking socket; EOF before that is a broken connection."""
    while view:
        received = sock.recv_into(view)
        if not received:
            raise ConnectionError("connection closed by peer")
        view = view[received:]


#: The most one ``recv`` returns on Linux (MAX_RW_COUNT: 2 GiB less a page).
MAX_RECV = 0x7FFFF000


def recv_whole(sock: socket.socket, length: int) -> bytes:
    """Up to ``length`` bytes as one new ``bytes``, received in place: no copy afterwards.

    ``recv(n, MSG_WAITALL)`` on a blocking socket has the kernel copy the bytes
    straight into the object Python allocates for the result (not even zeroed
    first), and returns when all have come. A socket with a timeout is
    non-blocking underneath, where MSG_WAITALL returns only what has already
    arrived, so for this call the socket blocks, with its timeout handed to
    the kernel (``SO_RCVTIMEO``). Fewer bytes than asked (at most
    :data:`MAX_RECV` are) mean the peer stopped or stalled: the caller decides
    whether to carry on. Plain TCP sockets only: TLS sockets take no flags.
    """
    timeout = sock.gettimeout()
    seconds = timeout or 0.0  # 0: no limit
    limit = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.settimeout(None)
    try:
        return sock.recv(min(length, MAX_RECV), socket.MSG_WAITALL)
    finally:
        sock.settimeout(timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))


def recv_body(sock: socket.socket) -> bytearray:
    """One frame's body, read with two exact reads so nothing past it is consumed."""
    header = bytearray(HEADER_SIZE)
    recv_exact_into(sock, memoryview(header))
    body = bytearray(body_length(header))
    recv_exact_into(sock, memoryview(body))
    return body


def receive_reply(sock: socket.socket, session: DataSession) -> Reply:
    """Drive ``session`` until the slave's reply is in (raw bytes after it stay unread)."""
    while True:
        part = bytearray(_wanted(session))
        recv_exact_into(sock, memoryview(part))
        reply = session.receive(part)
        if reply is not None:
            return reply


def _wanted(session: DataSession) -> int:
    wanted = session.wanted
    if not wanted:
        raise ProtocolError("no reply is due on this connection")
    return wanted


class FrameReader:
    """Reads whole frames from a blocking socket with as few ``recv`` calls as it can.

    For connections that carry nothing but frames (the client's link to the
    master): one ``recv`` usually brings header and body together, where
    :func:`recv_body` needs two - on a TLS socket each is a full SSL read.
    Bytes past the frame stay buffered for the next one.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.decoder = FrameDecoder()
        self._scratch = bytearray(64 * 1024)

    def read(self) -> bytearray:
        """The next frame's body."""
        while True:
            for body in self.decoder:
                return body
            received = self.sock.recv_into(self._scratch)
            if not received:
                raise ConnectionError("connection closed by peer")
            self.decoder.feed(memoryview(self._scratch)[:received])

    def read_arrived(self) -> bytearray | None:
        """The next frame's body if it has arrived whole, else None, without waiting.

        For frames a peer sends unasked: what has arrived may be only part of
        one, or only TLS housekeeping, and neither may keep the caller waiting.
        """
        for body in self.decoder:
            return body
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            received = self.sock.recv_into(self._scratch)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        finally:
            self.sock.settimeout(timeout)
        if not received:
            raise ConnectionError("connection closed by peer")
        self.decoder.feed(memoryview(self._scratch)[:received])
        for body in self.decoder:
            return body
        return None


def send_message(sock: socket.socket, message: object) -> None:
    sock.sendall(encode(message))


def still_open(sock: socket.socket) -> bool:
    """Whether an idle pooled connection is still usable: slaves close connections
    idle longer than their IDLE_TIMEOUT, and a closed one must not be handed out
    (its first request would fail, and a read would give that replica up). An idle
    connection has nothing to read; anything readable is its end (or, over TLS, the
    peer's goodbye), or bytes nobody asked for."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable and not (isinstance(sock, ssl.SSLSocket) and sock.pending())


def close_quietly(sock: socket.socket) -> None:
    """Close a socket that may already be broken; there is nothing to report."""
    try:
        sock.close()
    except OSError:
        pass


def server_tls_context(cert: Path, key: Path, members_of: Path | None = None) -> ssl.SSLContext:
    """A TLS server context; with ``members_of`` (the master's certificate) it also asks
    peers for a certificate that master issued, and checks any they show.

    Optional, not required: the master's port serves clients, who have no
    certificate, as well as slaves, who must have one (checked at ``register``,
    see :mod:`sector.master.membership`).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if members_of is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(members_of))
    return context


def client_tls_context(
    master_cert: Path, own_cert: Path | None = None, own_key: Path | None = None
) -> ssl.SSLContext:
    """Trust the master certificate we were given and what it issued, nothing else;
    with ``own_cert``, show the peer that certificate (a slave proving membership).

    The certificate is the cluster's identity: whoever holds its key is the
    master, whatever name or address we dialled, so host names are not checked
    (clusters are reached as ``localhost``, by IP or by a short name alike).
    Because the master's certificate also issues the slaves' (see
    :mod:`sector.certs`), a connection to the master must then be checked with
    :func:`check_master`: a slave's certificate passes this context too.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(master_cert))
    if own_cert is not None:
        context.load_cert_chain(str(own_cert), str(own_key) if own_key else None)
    return context


def certificate_der(path: Path) -> bytes:
    """The (first) certificate of a PEM file, in DER: what ``getpeercert(True)`` returns."""
    return ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii"))


def check_master(peer_der: bytes | None, master_der: bytes) -> None:
    """Raise :class:`ssl.SSLCertVerificationError` unless the peer showed exactly the
    master's certificate (not one the master issued: a slave's passes the chain check)."""
    if peer_der != master_der:
        error = ssl.SSLCertVerificationError(
            "the peer's certificate was issued by the master but is not the master's own"
        )
        error.verify_message = "not the master's certificate (a slave's?)"
        raise error
