"""Framing: every control message is a 4-byte big-endian length plus a msgpack body.

The splitter is the first thing to touch bytes from the network, so besides
round trips it is specified by what it refuses: a header announcing more than
``MAX_FRAME`` raises :class:`ProtocolError`, and nothing else does, whatever
the peer sends and however the bytes are split. What a body may hold is
``test_messages.py``'s business.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sector.protocol import framing
from sector.protocol.framing import (
    HEADER_SIZE,
    MAX_FRAME,
    FrameDecoder,
    ProtocolError,
    body_length,
    encode,
)

# Values msgpack carries without loss (tuples would come back as lists, NaN != NaN).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.dictionaries(st.text(max_size=10), _values, max_size=6)


def decode_body(body: bytes | bytearray) -> object:
    return msgspec.msgpack.decode(body)


def decode_all(chunks: Iterable[bytes]) -> list[object]:
    """Feed ``chunks`` one by one, collecting every body as soon as it is complete."""
    decoder = FrameDecoder()
    out: list[object] = []
    for chunk in chunks:
        decoder.feed(chunk)
        out.extend(decode_body(body) for body in decoder)
    assert decoder.buffered == 0, "bytes left over after the last whole frame"
    return out


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


# --- frames ---------------------------------------------------------------------------


def test_a_frame_is_a_big_endian_length_then_the_msgpack_body() -> None:
    data = encode({"op": "ping"})
    body = msgspec.msgpack.encode({"op": "ping"})
    assert data == struct.pack(">I", len(body)) + body
    assert HEADER_SIZE == 4


def test_round_trip_keeps_bytes_as_bytes_and_text_as_text() -> None:
    message = {"op": "read", "token": b"\x00\xff signed", "path": "/d/é.txt", "offset": 2**40}
    data = encode(message)
    assert decode_body(data[HEADER_SIZE:]) == message
    assert isinstance(decode_body(data[HEADER_SIZE:])["token"], bytes)


def test_a_decoder_with_a_lower_limit_refuses_a_larger_frame_then_takes_more_when_raised() -> None:
    decoder = FrameDecoder(limit=100)
    decoder.feed(struct.pack(">I", 101))
    with pytest.raises(ProtocolError, match="limit 100"):
        list(decoder)
    decoder = FrameDecoder(limit=100)
    decoder.limit = 1000  # a peer that proved who it is
    decoder.feed(encode({"big": "x" * 500}))
    assert [decode_body(body) for body in decoder] == [{"big": "x" * 500}]


@settings(deadline=None)  # correctness, not speed: no flaky deadline on a busy box
@given(messages)
def test_any_message_survives_encode_then_decode(message: dict) -> None:
    data = encode(message)
    assert body_length(data[:HEADER_SIZE]) == len(data) - HEADER_SIZE
    assert decode_body(data[HEADER_SIZE:]) == message


def test_encode_refuses_a_message_larger_than_max_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "MAX_FRAME", 100)
    assert len(encode({"blob": b"x" * 50})) > HEADER_SIZE
    with pytest.raises(ProtocolError, match="exceeds"):
        encode({"blob": b"x" * 200})


def test_body_length_accepts_exactly_max_frame_and_refuses_one_more() -> None:
    assert body_length(struct.pack(">I", MAX_FRAME)) == MAX_FRAME
    with pytest.raises(ProtocolError):
        body_length(struct.pack(">I", MAX_FRAME + 1))


@pytest.mark.parametrize("header", [b"", b"\x00\x00\x00", b"\x00\x00\x00\x00\x00"])
def test_body_length_refuses_a_header_of_the_wrong_size(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        body_length(header)


def test_the_splitter_hands_over_any_body_as_it_came() -> None:
    """Judging a body is the vocabulary's job: the splitter only cuts frames out."""
    packed = msgspec.msgpack.encode
    bodies = [b"\xc1", b"", packed([1, 2]), packed({"op": "a"}) + b"\x00"]
    decoder = FrameDecoder()
    decoder.feed(b"".join(frame(body) for body in bodies))
    assert list(decoder) == bodies


def test_encode_frames_a_body_into_one_buffer() -> None:
    data = encode(["stat", "/a"])
    assert isinstance(data, bytearray)
    assert data[HEADER_SIZE:] == msgspec.msgpack.encode(["stat", "/a"])


# --- the incremental decoder ---------------------------------------------------------


def test_decoder_waits_for_a_whole_frame() -> None:
    data = encode({"op": "ping"})
    decoder = FrameDecoder()
    decoder.feed(data[:-1])
    assert list(decoder) == []
    assert decoder.buffered == len(data) - 1
    decoder.feed(data[-1:])
    assert [decode_body(body) for body in decoder] == [{"op": "ping"}]
    assert decoder.buffered == 0


def test_decoder_fed_byte_by_byte_yields_every_message_in_order() -> None:
    sent = [{"op": "ls", "path": "/"}, {}, {"ok": True, "entries": [{"name": "a"}] * 3}]
    stream = b"".join(encode(m) for m in sent)
    assert decode_all(stream[i : i + 1] for i in range(len(stream))) == sent


def test_decoder_yields_several_frames_from_one_feed() -> None:
    sent = [{"n": i} for i in range(50)]
    assert decode_all([b"".join(encode(m) for m in sent)]) == sent


def test_decoder_refuses_an_oversize_header_before_its_body_arrives() -> None:
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(ProtocolError):
        list(decoder)


@settings(deadline=None)  # correctness, not speed: no flaky deadline on a busy box
@given(st.lists(messages, max_size=8), st.data())
def test_decoder_fed_in_random_splits_yields_the_same_messages(
    sent: list[dict], data: st.DataObject
) -> None:
    stream = b"".join(encode(m) for m in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode_all(chunks) == sent


@settings(max_examples=500, deadline=1000)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_fuzz_arbitrary_bytes_raise_nothing_but_protocol_error(chunks: list[bytes]) -> None:
    """Whatever a peer sends, the splitter yields bodies, waits, or raises ProtocolError.

    The deadline also makes a hang (or a huge allocation) fail the test.
    """
    decoder = FrameDecoder()
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            for body in decoder:
                assert isinstance(body, bytearray)
    except ProtocolError:
        pass
