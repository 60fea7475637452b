"""Moving frames over real sockets, and the TLS contexts every party uses.

The protocol package says what the bytes are; this module is the thin layer
that reads and writes them, blocking for the client and asyncio for the
servers, so that no component re-invents "read exactly n bytes".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from .protocol.framing import (
    HEADER_SIZE,
    FrameDecoder,
    Message,
    ProtocolError,
    body_length,
    decode_body,
    encode,
)

__all__ = [
    "FrameReader",
    "close_quietly",
    "ProtocolError",
    "client_tls_context",
    "read_frame",
    "recv_exact_into",
    "recv_frame",
    "send_frame",
    "server_tls_context",
    "write_frame",
]


async def read_frame(reader: asyncio.StreamReader) -> Message | None:
    """The next frame, or None when the peer closed cleanly between frames."""
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from None
        return None
    body = await reader.readexactly(body_length(header))
    return decode_body(body)


async def write_frame(writer: asyncio.StreamWriter, message: Message) -> None:
    writer.write(encode(message))
    await writer.drain()


def recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from a blocking socket; EOF before that is a broken connection."""
    while view:
        received = sock.recv_into(view)
        if not received:
            raise ConnectionError("connection closed by peer")
        view = view[received:]


def recv_frame(sock: socket.socket) -> Message:
    header = bytearray(HEADER_SIZE)
    recv_exact_into(sock, memoryview(header))
    body = bytearray(body_length(bytes(header)))
    recv_exact_into(sock, memoryview(body))
    return decode_body(body)


class FrameReader:
    """Reads whole frames from a blocking socket with as few ``recv`` calls as it can.

    For connections that carry nothing but frames (the client's link to the
    master): one ``recv`` usually brings header and body together, where
    :func:`recv_frame` needs two - on a TLS socket each is a full SSL read.
    Bytes past the frame stay buffered for the next one.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.decoder = FrameDecoder()
        self._scratch = bytearray(64 * 1024)

    def read(self) -> Message:
        while True:
            for message in self.decoder:
                return message
            received = self.sock.recv_into(self._scratch)
            if not received:
                raise ConnectionError("connection closed by peer")
            self.decoder.feed(self._scratch[:received])


def close_quietly(sock: socket.socket) -> None:
    """Close a socket that may already be broken; there is nothing to report."""
    try:
        sock.close()
    except OSError:
        pass


def send_frame(sock: socket.socket, message: Message) -> None:
    sock.sendall(encode(message))


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def client_tls_context(master_cert: Path) -> ssl.SSLContext:
    """Trust exactly the master certificate we were given, nothing else.

    The certificate is the master's identity: whoever holds its key is the
    master, whatever name or address we dialled, so host names are not checked
    (clusters are reached as ``localhost``, by IP or by a short name alike).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(master_cert))
    return context
