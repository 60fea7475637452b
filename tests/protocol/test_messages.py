"""The wire contract as data: vocabularies, typed decoding, the error boundary, dispatch.

A vocabulary admits exactly its messages, with every field of the declared
type, and refuses everything else with :class:`InvalidMessage` (a well-formed
frame) or :class:`ProtocolError` (not msgpack at all) - never another
exception, whatever the bytes. The messages are generated from their own type
definitions (``tests/strategies.py``), so a new message is covered by these
properties the day it is added.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sector import errors
from sector.protocol import data, master
from sector.protocol.framing import ProtocolError
from sector.protocol.messages import (
    PROTOCOL_VERSION,
    Done,
    Error,
    InvalidMessage,
    Vocabulary,
    handler_table,
    handles,
    is_expected,
    replies_to,
    tag_of,
)
from sector.protocol.paths import InvalidPath
from tests.strategies import ill_typed, messages

VOCABULARIES = [
    master.GREETINGS,
    master.CLIENT_REQUESTS,
    master.SLAVE_REPORTS,
    data.SLAVE_REQUESTS,
]
ALL_REPLIES = Vocabulary(
    "every reply",
    *{reply for vocabulary in VOCABULARIES for t in vocabulary for reply in t.replies},
    Error,
)


def encoded(message: object) -> bytes:
    return msgspec.msgpack.encode(message)


# --- decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("vocabulary", VOCABULARIES, ids=lambda v: v.name)
def test_a_message_travels_as_an_array_led_by_its_op(vocabulary: Vocabulary) -> None:
    for message_type in vocabulary:
        assert vocabulary.by_tag[tag_of(message_type)] is message_type


@settings(deadline=None)
@given(st.data())
def test_every_well_typed_message_decodes_to_itself(draw: st.DataObject) -> None:
    vocabulary = draw.draw(st.sampled_from(VOCABULARIES))
    message = draw.draw(messages(vocabulary))
    assert vocabulary.decode(encoded(message)) == message


@settings(deadline=None)
@given(messages(list(ALL_REPLIES)))
def test_every_reply_decodes_to_itself(reply: object) -> None:
    assert ALL_REPLIES.decode(encoded(reply)) == reply


@settings(deadline=None)
@given(st.data())
def test_a_broken_message_is_refused_as_invalid_and_nothing_else(draw: st.DataObject) -> None:
    vocabulary = draw.draw(st.sampled_from(VOCABULARIES))
    frame = draw.draw(ill_typed(vocabulary))
    try:
        decoded = vocabulary.decode(encoded(frame))
    except InvalidMessage as refused:
        tag = frame[0] if isinstance(frame, list) and frame else None
        assert refused.expected is (vocabulary.by_tag.get(tag) if isinstance(tag, str) else None)
    else:
        assert type(decoded) in vocabulary  # broken into another valid message by chance


@settings(max_examples=500, deadline=1000)
@given(st.binary(max_size=100))
def test_arbitrary_bytes_raise_only_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):  # InvalidMessage is one
        data.SLAVE_REQUESTS.decode(body)


@settings(max_examples=500, deadline=1000)
@given(st.data())
def test_a_corrupted_frame_decodes_to_some_message_or_raises_protocol_error(
    draw: st.DataObject,
) -> None:
    """One byte changed anywhere (a broken UTF-8 string, a wrong type marker...)."""
    vocabulary = draw.draw(st.sampled_from(VOCABULARIES))
    body = bytearray(encoded(draw.draw(messages(vocabulary))))
    body[draw.draw(st.integers(0, len(body) - 1))] = draw.draw(st.integers(0, 255))
    try:
        assert type(vocabulary.decode(body)) in vocabulary
    except ProtocolError:
        pass


def test_a_string_that_is_not_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="undecodable"):
        master.CLIENT_REQUESTS.decode(b"\x92\xa4stat\xa3\x00\x00\x80")


def test_a_refusal_names_the_field_and_the_rule() -> None:
    with pytest.raises(InvalidMessage) as refused:
        master.CLIENT_REQUESTS.decode(encoded(["open", "/x", "rw"]))
    assert str(refused.value) == "bad 'open' message: Expected `int`, got `str` - at `mode`"
    with pytest.raises(InvalidMessage) as refused:
        data.SLAVE_REQUESTS.decode(encoded(["read", -1, 10]))
    assert str(refused.value) == "bad 'read' message: Expected `int` >= 0 - at `offset`"


def test_a_refusal_lists_what_would_have_been_allowed() -> None:
    with pytest.raises(InvalidMessage) as refused:
        master.SLAVE_REPORTS.decode(encoded(["stat", "/"]))
    assert str(refused.value) == (
        "'stat' is not one of a slave's reports: heartbeat, inventory, quarantined, bad-source, "
        "committed"
    )
    assert refused.value.expected is None


def test_a_frame_announcing_raw_bytes_is_flagged_even_when_unreadable() -> None:
    with pytest.raises(InvalidMessage) as refused:
        data.SLAVE_REQUESTS.decode(encoded(["put", "zero", 5]))
    assert refused.value.announces_raw_bytes
    with pytest.raises(InvalidMessage) as refused:
        data.SLAVE_REQUESTS.decode(encoded(["read", "zero", 5]))
    assert not refused.value.announces_raw_bytes


def test_the_replies_to_a_request_are_its_own_and_an_error() -> None:
    replies = replies_to(master.Open)
    assert set(replies) == {master.ReadGrant, master.WriteGrant, Error}
    with pytest.raises(InvalidMessage):
        replies.decode(encoded(master.StatReply(master.Entry("a", False, 1, 0.0, 1, ""))))


def test_requests_without_replies_are_the_write_stream() -> None:
    silent = {t for t in data.SLAVE_REQUESTS if not t.replies}
    assert silent == {data.Write, data.Put, data.Truncate, data.AbortWrite}


def test_a_message_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        master.Stat("/a").path = "/b"  # type: ignore[misc]


# --- the error boundary -----------------------------------------------------------------

SECTOR_ERRORS = [
    errors.SectorPermissionError("no", "/p"),
    errors.SectorExistsError("there", "/p"),
    errors.SectorNotFoundError(path="/p"),
    errors.SectorBusyError("busy", "/p"),
    errors.SectorNotEmptyError(path="/p"),
    errors.SectorIsADirectoryError("is a directory", "/p"),
    errors.SectorNotADirectoryError("not a directory", "/p/q"),
    errors.SecurityError("expired", code=errors.E_EXPIRED),
    errors.SectorConnectionError("gone"),
    errors.NoDiskError("full"),
    errors.InvalidError("bad", "/p"),
    errors.NotSupportedError("later"),
]


@pytest.mark.parametrize("exc", SECTOR_ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_crosses_the_wire_as_the_same_exception(exc: errors.SectorError) -> None:
    reply = Error.of(exc)
    arrived = replies_to(master.Stat).decode(encoded(reply))
    again = arrived.exception()
    assert type(again) is type(exc)
    assert (again.code, again.path, again.detail) == (exc.code, exc.path, exc.detail)


def test_an_error_without_a_path_takes_the_one_the_caller_knows() -> None:
    assert Error(errors.E_NOEXIST, "not here").exception("/f").path == "/f"
    assert Error(errors.E_NOEXIST, "not here", "/g").exception("/f").path == "/g"


def test_refused_paths_and_messages_are_e_invalid() -> None:
    assert Error.of(InvalidPath("empty path")) == Error(errors.E_INVALID, "empty path")
    refused = InvalidMessage("bad 'stat' message", ["stat", 1], master.Stat)
    assert Error.of(refused) == Error(errors.E_INVALID, "bad 'stat' message")
    assert is_expected(refused)


def test_a_bug_becomes_e_unknown_without_its_details() -> None:
    bug = KeyError("secret internals")
    assert Error.of(bug) == Error(errors.E_UNKNOWN, "internal error (see the server's log)")
    assert not is_expected(bug)


# --- greetings --------------------------------------------------------------------------


def test_another_protocol_version_is_refused_with_e_support() -> None:
    with pytest.raises(errors.NotSupportedError, match=f"speaks version {PROTOCOL_VERSION}"):
        master.check_version(PROTOCOL_VERSION + 1)
    master.check_version(PROTOCOL_VERSION)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (["login", PROTOCOL_VERSION + 1, {"a": 1}], errors.E_SUPPORT),
        (["register", 0], errors.E_SUPPORT),
        (["login", PROTOCOL_VERSION, 7, "pw"], errors.E_INVALID),
        (["login", "one", "u", "pw"], errors.E_INVALID),
        (["stat", "/"], errors.E_SECURITY),
        ({"op": "login"}, errors.E_SECURITY),
    ],
)
def test_what_an_unidentified_peer_is_told(frame: object, code: int) -> None:
    with pytest.raises(InvalidMessage) as refused:
        master.GREETINGS.decode(encoded(frame))
    assert master.refusal(refused.value).code == code


# --- dispatch tables --------------------------------------------------------------------

TWO = Vocabulary("two requests", master.Ping, master.Logout)


class Both:
    @handles(master.Ping)
    def ping(self, request: master.Ping) -> Done:
        return Done()

    @handles(master.Logout)
    def logout(self, request: master.Logout) -> Done:
        return Done()


class OnlyPing:
    @handles(master.Ping)
    def ping(self, request: master.Ping) -> Done:
        return Done()


def test_a_handler_table_maps_each_message_type_to_a_bound_handler() -> None:
    owner = Both()
    table = handler_table(owner, vocabulary=TWO)
    assert table == {master.Ping: owner.ping, master.Logout: owner.logout}


def test_handlers_may_come_from_several_owners_but_not_twice() -> None:
    class OnlyLogout:
        @handles(master.Logout)
        def logout(self, request: master.Logout) -> Done:
            return Done()

    assert set(handler_table(OnlyPing(), OnlyLogout(), vocabulary=TWO)) == {
        master.Ping,
        master.Logout,
    }
    with pytest.raises(TypeError, match="two handlers for Ping"):
        handler_table(Both(), OnlyPing(), vocabulary=TWO)


def test_a_table_must_cover_its_vocabulary() -> None:
    with pytest.raises(TypeError, match="nobody handles Logout of two requests"):
        handler_table(OnlyPing(), vocabulary=TWO)


def test_a_table_takes_only_the_handlers_of_its_vocabulary() -> None:
    """One owner may serve two connection states (logins, then logouts)."""
    owner = Both()
    assert handler_table(owner, vocabulary=Vocabulary("one", master.Ping)) == {
        master.Ping: owner.ping
    }
