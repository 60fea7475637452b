"""Length-prefixed msgpack frames.

Every control message, on every connection, is one frame: a 4-byte big-endian
length followed by a msgpack map. Bulk file data never goes inside a frame: it
follows a frame as raw bytes, so that servers can use ``sendfile`` and
``recv_into`` without copying it through Python objects.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import msgpack

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

#: A frame larger than this is a protocol violation (or an attack), not a message.
MAX_FRAME = 64 * 1024 * 1024

Message = dict[str, Any]


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame; the connection is unusable."""


def encode(message: Message) -> bytes:
    """One frame: header + msgpack body."""
    body = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(body)) + body


def body_length(header: bytes) -> int:
    """Length announced by a 4-byte header, checked against :data:`MAX_FRAME`."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"frame header must be {HEADER_SIZE} bytes, got {len(header)}")
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"peer announced a {length}-byte frame (limit {MAX_FRAME})")
    return length


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """The message inside a frame body; anything but a map with a string ``op``
    or ``ok`` key is rejected, so that handlers can index it without fear."""
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a frame must hold a map")
    return message


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, iterate for messages.

    Used by servers reading a stream of control frames. Connections that mix
    frames with raw data read exact sizes instead and call :func:`body_length`
    and :func:`decode_body` directly.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def __iter__(self) -> Iterator[Message]:
        buffer = self._buffer
        while len(buffer) >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"peer announced a {length}-byte frame (limit {MAX_FRAME})")
            end = HEADER_SIZE + length
            if len(buffer) < end:
                return
            body = buffer[HEADER_SIZE:end]
            del buffer[:end]
            yield decode_body(body)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as a whole frame."""
        return len(self._buffer)
