"""The client's half of a data connection, as a state machine: bytes in, replies out.

No socket anywhere: these tests play the slave by hand, feeding the session
the bytes a slave would send, split in every way a network might split them.
"""

from __future__ import annotations

import io

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sector.errors import E_SECURITY, SecurityError
from sector.protocol.checksum import BLOCK, SUM_SIZE
from sector.protocol.data import (
    SLAVE_REQUESTS,
    AbortWrite,
    Commit,
    CommitReply,
    DataSession,
    OutOfTurn,
    Put,
    Read,
    ReadReply,
    Truncate,
    Write,
)
from sector.protocol.framing import HEADER_SIZE, ProtocolError, encode
from sector.protocol.messages import Done, Error


def sent(frame: bytes | bytearray) -> object:
    """What the slave would decode from bytes the session asked us to send."""
    return SLAVE_REQUESTS.decode(bytes(frame)[HEADER_SIZE:])


def feed(session: DataSession, data: bytes, step: int | None = None) -> object:
    """Give the session ``data`` as it asks for it, ``step`` bytes at a time at most."""
    reply = None
    position = 0
    while position < len(data):
        assert reply is None, "bytes left after the reply"
        take = min(session.wanted, step or session.wanted)
        assert take > 0, "the session wants nothing, yet bytes are left"
        reply = session.receive(data[position : position + take])
        position += take
    return reply


#: The sums of one block, as a slave sends them before a stored file's bytes.
ONE_SUM = b"s" * SUM_SIZE


def test_a_read_asks_then_leaves_the_raw_bytes_to_the_caller() -> None:
    session = DataSession()
    assert sent(session.read(10, 4, b"token")) == Read(10, 4, b"token")
    assert not session.idle and session.wanted == HEADER_SIZE
    reply = feed(session, bytes(encode(ReadReply(4, ONE_SUM))))
    assert reply == ReadReply(4, ONE_SUM)
    assert session.wanted == 0 and session.raw_pending == 4  # the caller's to recv_into
    session.received_raw(3)
    session.received_raw(1)
    assert session.idle


@given(st.integers(1, 8))
def test_a_reply_may_arrive_in_pieces_of_any_size(step: int) -> None:
    session = DataSession()
    session.read(0, 100, b"t")
    assert feed(session, bytes(encode(ReadReply(100, ONE_SUM))), step) == ReadReply(100, ONE_SUM)


def test_the_session_never_asks_for_more_than_the_frame() -> None:
    """So the raw bytes behind a reply stay on the socket, for the caller's own buffer."""
    session = DataSession()
    session.read(0, 5, b"t")
    stream = io.BytesIO(bytes(encode(ReadReply(5, ONE_SUM))) + b"hello")
    while (reply := session.receive(stream.read(session.wanted))) is None:
        pass
    assert reply == ReadReply(5, ONE_SUM)
    assert stream.read() == b"hello"


@pytest.mark.parametrize(
    ("offset", "length", "blocks"),
    [(0, 1, 1), (BLOCK - 1, 2, 2), (BLOCK, BLOCK, 1), (10, 3 * BLOCK, 4), (7, 0, 0)],
)
def test_a_stored_files_bytes_come_with_the_sums_of_every_block_they_touch(
    offset: int, length: int, blocks: int
) -> None:
    session = DataSession()
    session.read(offset, length, b"t")
    reply = ReadReply(length, ONE_SUM * blocks)
    assert feed(session, bytes(encode(reply))) == reply


@pytest.mark.parametrize("sums", [b"", ONE_SUM * 2, b"short"])
def test_a_reply_with_the_wrong_sums_breaks_the_session(sums: bytes) -> None:
    """Bytes that cannot be checked are not taken: the connection is dropped."""
    session = DataSession()
    session.read(0, 100, b"t")
    with pytest.raises(ProtocolError, match="sums"):
        feed(session, bytes(encode(ReadReply(100, sums))))
    assert session.broken


def test_an_error_reply_ends_the_read_and_the_connection_is_still_good() -> None:
    session = DataSession()
    session.read(0, 4, b"forged")
    reply = feed(session, bytes(encode(Error(E_SECURITY, "bad token signature"))))
    assert isinstance(reply, Error)
    assert isinstance(reply.exception("/f"), SecurityError)
    assert session.idle
    session.read(0, 4, b"good")  # and the next request may go


def test_a_write_streams_without_replies_until_commit() -> None:
    session = DataSession()
    frames = [session.begin_write(b"w"), session.put(0, 5)]
    assert [sent(f) for f in frames] == [Write(b"w"), Put(0, 5)]
    assert session.writing and session.wanted == 0  # nothing to wait for while streaming
    assert sent(session.commit()) == Commit()
    assert not session.writing
    done = CommitReply(b"receipt", 5, "abc")
    assert feed(session, bytes(encode(done))) == done
    assert session.idle


def test_reading_ones_own_write_returns_to_the_write() -> None:
    session = DataSession()
    session.begin_write(b"w")
    session.put(0, 5)
    assert sent(session.read(0, 5)) == Read(0, 5, None)
    feed(session, bytes(encode(ReadReply(3))))  # fewer than asked: the end of what was written
    session.received_raw(3)
    assert session.writing
    session.put(5, 1)


def test_a_truncate_is_part_of_the_write_stream() -> None:
    session = DataSession()
    session.begin_write(b"w")
    assert sent(session.truncate(7)) == Truncate(7)
    assert session.writing and session.wanted == 0


def test_an_abort_ends_the_write_without_a_reply() -> None:
    session = DataSession()
    session.begin_write(b"w")
    assert sent(session.abort()) == AbortWrite()
    assert session.idle


@pytest.mark.parametrize(
    "misuse",
    [
        pytest.param(lambda s: s.put(0, 1), id="put-outside-a-write"),
        pytest.param(lambda s: s.commit(), id="commit-outside-a-write"),
        pytest.param(lambda s: s.truncate(0), id="truncate-outside-a-write"),
        pytest.param(lambda s: s.abort(), id="abort-outside-a-write"),
        pytest.param(lambda s: (s.read(0, 1, b"t"), s.read(0, 1, b"t")), id="read-over-read"),
        pytest.param(lambda s: (s.begin_write(b"w"), s.begin_write(b"w")), id="write-in-write"),
        pytest.param(lambda s: s.receive(b"\x00"), id="bytes-nobody-asked-for"),
        pytest.param(lambda s: s.received_raw(1), id="raw-bytes-nobody-announced"),
    ],
)
def test_our_own_mistakes_are_caught_as_out_of_turn(misuse) -> None:
    with pytest.raises(OutOfTurn):
        misuse(DataSession())


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(encode(ReadReply(9)), id="more-bytes-than-asked"),
        pytest.param(encode(Done()), id="a-reply-to-something-else"),
        pytest.param(encode(["read", "four"]), id="ill-typed"),
        pytest.param(b"\xff\xff\xff\xff", id="oversize-header"),
        pytest.param(encode(None)[:HEADER_SIZE] + b"\xc1", id="not-msgpack"),
    ],
)
def test_a_reply_that_breaks_the_rules_breaks_the_session(reply: bytes) -> None:
    session = DataSession()
    session.read(0, 4, b"t")
    with pytest.raises(ProtocolError):
        feed(session, bytes(reply))
    assert session.broken and not session.idle
    with pytest.raises(OutOfTurn, match="broke"):
        session.read(0, 4, b"t")


@given(st.binary(max_size=64))
def test_any_bytes_give_a_reply_or_a_protocol_error(garbage: bytes) -> None:
    session = DataSession()
    session.read(0, 1 << 20, b"t")
    try:
        reply = feed(session, garbage)
    except ProtocolError:
        assert session.broken
        return
    assert reply is None or isinstance(reply, (ReadReply, Error))


def test_the_frames_are_the_protocols_own_encoding() -> None:
    session = DataSession()
    frame = session.read(7, 8, None)
    assert msgspec.msgpack.decode(bytes(frame)[HEADER_SIZE:]) == ["read", 7, 8, None]
