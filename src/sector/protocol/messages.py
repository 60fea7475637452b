"""What a message is, what an error reply is, and which messages a peer may send.

Every message on every Sector connection is a :class:`Message`: a
``msgspec.Struct`` with a tag (its op name) encoded as a msgpack *array*,
``["stat", "/a/b"]``, inside one frame (:mod:`.framing`). The catalogue is in
two modules beside this one:

* :mod:`.master` - client <-> master and slave <-> master (TLS), with the
  directory :class:`~.master.Entry` and the connection states;
* :mod:`.data` - client <-> slave and master -> slave on a slave's data port,
  with :class:`~.data.DataSession`, the client's half of it as a state machine;

and :mod:`.tokens` holds the signed claims (read, write, admin, receipt).

Why typed structs: a :class:`Vocabulary` decodes a frame straight into the one
class its tag names and checks every field's type on the way (in C), so a
handler never meets a missing key or a string where it wanted an int, and a
frame that is not a message allowed at this point of the conversation raises
:class:`InvalidMessage` before any handler runs (the server answers E_INVALID).
Why arrays (``array_like``): ``python -m bench.codec`` measures the same
structs both ways; as arrays a ``stat`` reply is 80 bytes instead of 142 and a
1,000-entry ``ls`` reply 58 kB instead of 108 kB, encoded in about half the
time and decoded in ~0.65-0.9x. (The dicts and msgpack they replace decoded
that ``ls`` reply in ~760 µs on this machine; these structs take ~160-260.)
The price is that fields are positional: add new ones at the end, with
defaults, and bump :data:`PROTOCOL_VERSION` for anything else. The version
travels in the two greetings (``login`` and ``register``) only: a client
talks to slaves the master named, and master, slaves and clients all checked
their version against the master's, so every pair agrees.

Replies: each request class names the replies it may get (``replies``); the
peer answers with one of those or an :class:`Error`, and :func:`replies_to`
gives the vocabulary that decodes exactly that. :class:`Error` is the one
error reply everywhere, and the error boundary of every party: servers turn an
exception into one with :meth:`Error.of`, clients turn one back into the same
exception with :meth:`Error.exception`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Union

import msgspec

from ..errors import E_INVALID, E_UNKNOWN, SectorError, error_for
from .framing import ProtocolError
from .paths import InvalidPath

#: Bumped whenever a message changes other than by a new trailing field with a default.
#: 2: ``ls`` answers in columns (:class:`~.master.LsReply`).
PROTOCOL_VERSION = 2

# Open modes (Sector's SF_MODE) - an interface users know, so the numbers are kept.
READ = 1
WRITE = 2
RW = 3
TRUNC = 4
APPEND = 8
SECURE = 16
HIRELIABLE = 32
ALL_MODE_BITS = READ | WRITE | TRUNC | APPEND | SECURE | HIRELIABLE


class Message(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Base of every message. Frozen: a message is a value, built whole and sent.

    ``gc=False`` keeps these objects out of the cycle collector: they hold only
    strings, numbers, bytes and lists of other messages, so never a cycle, and
    an ``ls`` reply makes thousands at once. ``python -m bench.codec``: a client
    keeping the 1,000-entry listings it decodes spends ~0.6x the time doing so.
    """

    #: True when the frame announces raw bytes that follow it on the stream
    #: (``put``'s data, a ``read`` reply's data): a receiver that cannot
    #: decode such a frame cannot find the next one, and must hang up.
    raw_follows: ClassVar[bool] = False


class Request(Message, tag_field="op"):
    """A message that asks for something; its tag is the op name."""

    #: The replies this request may get besides :class:`Error`; empty: no reply at all.
    replies: ClassVar[tuple[type[Reply], ...]] = ()
    #: Whether a client may send it again on a fresh connection after the old one
    #: broke before the reply came. Not for a request tied to the old session.
    survives_reconnect: ClassVar[bool] = True
    #: Whether the peer may take long to answer (the master waiting on slaves, on a
    #: password hash): it then sends :class:`Working` meanwhile, so that the asker's
    #: timeout measures silence rather than the length of the work.
    long_running: ClassVar[bool] = False


class Reply(Message, tag_field="reply"):
    """A message that answers a request."""


class Done(Reply, tag="ok"):
    """Success, with nothing more to say."""


class Working(Reply, tag="working"):
    """Not the reply yet: the request is being worked on, and its reply will follow.

    Sent every second or so while a :attr:`Request.long_running` request waits.
    """


class Error(Reply, tag="error"):
    """A request failed: a Sector error code, a message for a person, and where.

    ``kind`` refines ``code`` where one code covers several exceptions (see
    :attr:`sector.errors.SectorError.kind`). This layout never changes between
    protocol versions, so that any peer can read why it was refused.
    """

    code: int
    msg: str = ""
    path: str | None = None
    kind: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Error:
        """The error reply for ``exc``: the single place exceptions become replies.

        A refused path or message is E_INVALID. Anything else that is not a
        :class:`SectorError` is a bug in the server, reported as E_UNKNOWN
        without its details (the server logs them: see :func:`is_expected`).
        """
        if isinstance(exc, SectorError):
            return cls(exc.code, exc.detail, exc.path, exc.kind)
        if isinstance(exc, (InvalidPath, InvalidMessage)):
            return cls(E_INVALID, str(exc))
        return cls(E_UNKNOWN, "internal error (see the server's log)")

    def exception(self, path: str | None = None) -> SectorError:
        """The exception this reply stands for: the single place replies become exceptions.

        ``path`` is used when the reply names none (a slave knows objects, not paths).
        """
        return error_for(self.code, self.msg, self.path or path, self.kind)


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is a refusal to report (True) or a bug to log as well (False)."""
    return isinstance(exc, (SectorError, InvalidPath, InvalidMessage))


def tag_of(message_type: type[Message]) -> str:
    """The op name (or reply name) ``message_type`` travels under."""
    tag = message_type.__struct_config__.tag
    assert isinstance(tag, str), f"{message_type.__name__} has no tag"
    return tag


class InvalidMessage(ProtocolError):
    """A well-formed frame that holds no message allowed at this point.

    The frame boundaries are intact, so a server answers E_INVALID and the
    conversation carries on, unless the peer has not identified itself, or the
    frame might announce raw bytes (``expected`` tells which message its tag
    names, if any: see :attr:`Message.raw_follows`).
    """

    def __init__(self, detail: str, raw: object, expected: type[Message] | None):
        super().__init__(detail)
        self.detail = detail
        #: The frame's body as plain msgpack values, for a closer look.
        self.raw = raw
        #: The allowed message whose tag the frame carries, or None.
        self.expected = expected

    @property
    def announces_raw_bytes(self) -> bool:
        """Whether raw bytes may follow this frame (so the stream cannot be trusted)."""
        return self.expected is not None and self.expected.raw_follows


class Vocabulary:
    """The messages one side may send at one point of a conversation.

    ``decode`` admits exactly these (one msgspec decoder over the tagged union,
    built once); anything else raises :class:`InvalidMessage`, and bytes that
    are not msgpack at all raise :class:`ProtocolError`.
    """

    def __init__(self, name: str, *types: type[Message]):
        self.name = name
        self.types = types
        self.by_tag = {tag_of(t): t for t in types}
        if len(self.by_tag) != len(types):
            raise TypeError(f"{name}: two messages share a tag")
        # Union[tuple] is how a union of a run-time list of types is spelt
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(
            Union[types]  # type: ignore[valid-type]  # noqa: UP007
        )

    def __contains__(self, message_type: object) -> bool:
        return message_type in self.types

    def __iter__(self) -> Iterator[type[Message]]:
        return iter(self.types)

    def __repr__(self) -> str:
        return f"<Vocabulary {self.name}: {', '.join(self.by_tag)}>"

    def decode(self, body: bytes | bytearray | memoryview) -> Any:
        """The message in ``body``: one of :attr:`types`, every field type-checked."""
        try:
            return self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise self._invalid(body, str(exc)) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets the latter out
            raise ProtocolError(f"undecodable frame: {exc}") from None

    def _invalid(self, body: bytes | bytearray | memoryview, reason: str) -> ProtocolError:
        """Explain a refusal in the peer's terms: which message, which field."""
        try:
            raw = msgspec.msgpack.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # the type check came first
            return ProtocolError(f"undecodable frame: {exc}")
        tag = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], str) else None
        expected = self.by_tag.get(tag) if tag is not None else None
        if expected is None:
            shown = repr(tag) if tag is not None else "a frame without an op"
            detail = f"{shown} is not one of {self.name}: {', '.join(self.by_tag)}"
        else:
            detail = f"bad {tag!r} message: {_name_fields(reason, expected)}"
        return InvalidMessage(detail, raw, expected)


_POSITION = re.compile(r"`\$\[(\d+)\]")


def _name_fields(reason: str, message_type: type[Message]) -> str:
    """msgspec says where a field went wrong by array position (`$[2]`); say its name."""
    fields = message_type.__struct_fields__

    def name(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1  # position 0 is the tag
        return f"`{fields[index]}" if 0 <= index < len(fields) else match.group(0)

    return _POSITION.sub(name, reason, count=1)


_REPLIES: dict[type[Request], Vocabulary] = {}


def replies_to(request_type: type[Request]) -> Vocabulary:
    """What the peer may answer to ``request_type``: one of its ``replies``, or an Error
    (and, before either, :class:`Working` for a long-running request)."""
    vocabulary = _REPLIES.get(request_type)
    if vocabulary is None:
        meanwhile = (Working,) if request_type.long_running else ()
        vocabulary = _REPLIES[request_type] = Vocabulary(
            f"the replies to {tag_of(request_type)!r}", *request_type.replies, Error, *meanwhile
        )
    return vocabulary


def handles(*message_types: type[Message]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as the handler of ``message_types``; see :func:`handler_table`."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__sector_handles__ = message_types  # type: ignore[attr-defined]
        return method

    return mark


_MARKED: dict[type, list[tuple[type[Message], str]]] = {}


def handler_table(*owners: object, vocabulary: Vocabulary) -> dict[type[Message], Any]:
    """``{message type: bound handler}`` for ``vocabulary``, from the ``@handles``
    methods of ``owners``.

    This is how every server dispatches (the master's client ops, greetings and
    slave reports, the slave's data and admin ops): a dict look-up on
    ``type(message)``, the cheapest dispatch Python has. The table must cover
    ``vocabulary``: a message the decoder admits but nobody handles fails at
    start-up, not when a peer first sends it. Handlers of messages outside
    ``vocabulary`` belong to another table and are left out (one owner may
    serve several connection states: logins and logouts).
    """
    table: dict[type[Message], Any] = {}
    for owner in owners:
        for message_type, name in _marked_methods(type(owner)):
            if message_type not in vocabulary:
                continue
            if message_type in table:
                raise TypeError(f"two handlers for {message_type.__name__}")
            table[message_type] = getattr(owner, name)
    missing = [t.__name__ for t in vocabulary if t not in table]
    if missing:
        raise TypeError(f"nobody handles {', '.join(missing)} of {vocabulary.name}")
    return table


def _marked_methods(cls: type) -> list[tuple[type[Message], str]]:
    marked = _MARKED.get(cls)
    if marked is None:
        marked = _MARKED[cls] = [
            (message_type, name)
            for name in dir(cls)
            for message_type in getattr(getattr(cls, name, None), "__sector_handles__", ())
        ]
    return marked
