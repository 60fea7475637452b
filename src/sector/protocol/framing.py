"""Length-prefixed frames: how messages are cut out of a byte stream.

Every control message, on every connection, is one frame: a 4-byte big-endian
length followed by a msgpack body (what the body may hold is the business of
:mod:`.messages`). Bulk file data never goes inside a frame: it follows a
frame as raw bytes, so that servers can use ``sendfile`` and ``recv_into``
without copying it through Python objects.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import msgspec

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

#: A frame larger than this is a protocol violation (or an attack), not a message.
MAX_FRAME = 64 * 1024 * 1024

# One encoder for the process: msgspec encoders keep no state between calls and
# run under the GIL, and making one per call costs more than the encoding.
_encoder = msgspec.msgpack.Encoder()


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame; the connection is unusable."""


def encode(message: object) -> bytearray:
    """One frame: header + msgpack body (of a message, or of any msgpack value).

    The body is encoded straight after room left for the header, which is then
    filled in: one buffer, no concatenation.
    """
    frame = bytearray(HEADER_SIZE)
    _encoder.encode_into(message, frame, HEADER_SIZE)
    length = len(frame) - HEADER_SIZE
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    HEADER.pack_into(frame, 0, length)
    return frame


def body_length(header: bytes | bytearray | memoryview) -> int:
    """Length announced by a 4-byte header, checked against :data:`MAX_FRAME`."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"frame header must be {HEADER_SIZE} bytes, got {len(header)}")
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"peer announced a {length}-byte frame (limit {MAX_FRAME})")
    return length


class FrameDecoder:
    """Incremental splitter: feed it bytes as they arrive, iterate for frame bodies.

    Used by connections that carry nothing but frames (the master's). Bodies
    come out undecoded because which messages are allowed depends on the
    connection's state when the frame is handled, not when it arrives (a
    client may pipeline ``login`` and ``stat``). Connections that mix frames
    with raw data read exact sizes instead, with :func:`body_length`.
    """

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        #: The largest frame accepted now; a server lowers it for peers that have not
        #: proved who they are (and whose messages are small anyway).
        self.limit = limit

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def __iter__(self) -> Iterator[bytearray]:
        buffer = self._buffer
        while len(buffer) >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(buffer)
            if length > self.limit:
                raise ProtocolError(f"peer announced a {length}-byte frame (limit {self.limit})")
            end = HEADER_SIZE + length
            if len(buffer) < end:
                return
            body = buffer[HEADER_SIZE:end]
            del buffer[:end]
            yield body

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as a whole frame."""
        return len(self._buffer)
