"""Hypothesis strategies drawn from the wire contract's own type definitions.

Nothing here lists fields by hand: :func:`messages` reads each message class
with ``msgspec.inspect`` and builds values of exactly the declared types
(honouring constraints such as ``ge=0`` and string patterns), so a message added to
``sector.protocol`` is fuzzed the day it is written. :func:`ill_typed` starts
from the same frames and breaks them the ways a confused or hostile peer
would: a field of the wrong type, fields missing or extra, an unknown op, a
map where an array belongs; :func:`corrupted` changes a byte of the encoding.

Values are kept small (short strings, 64-bit integers) because every example
crosses a real socket; ``overrides`` replaces the strategy of a field by name
where a test knows better (real tokens, lengths it can afford to send).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from sector.protocol.messages import Message

Overrides = Mapping[str, st.SearchStrategy[Any]]

_INT64 = (-(2**63), 2**63 - 1)
_SMALL_TEXT = st.text(max_size=24)


def value_of(kind: mi.Type, overrides: Overrides = {}) -> st.SearchStrategy[Any]:  # noqa: B006
    """Values of the msgspec type ``kind``, as a Python program would build them."""
    if isinstance(kind, mi.IntType):
        low = kind.ge if kind.ge is not None else (kind.gt + 1 if kind.gt is not None else None)
        high = kind.le if kind.le is not None else (kind.lt - 1 if kind.lt is not None else None)
        return st.integers(_INT64[0] if low is None else low, _INT64[1] if high is None else high)
    if isinstance(kind, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(kind, mi.BoolType):
        return st.booleans()
    if isinstance(kind, mi.StrType):
        if kind.pattern is not None:
            return st.from_regex(kind.pattern, fullmatch=True).filter(lambda t: len(t) <= 64)
        return _SMALL_TEXT
    if isinstance(kind, mi.BytesType):
        return st.binary(max_size=48)
    if isinstance(kind, mi.NoneType):
        return st.none()
    if isinstance(kind, mi.UnionType):
        return st.one_of(*(value_of(member, overrides) for member in kind.types))
    if isinstance(kind, mi.ListType):
        return st.lists(value_of(kind.item_type, overrides), max_size=3)
    if isinstance(kind, mi.TupleType):
        return st.tuples(*(value_of(item, overrides) for item in kind.item_types))
    if isinstance(kind, mi.StructType):
        return structs(kind.cls, overrides)
    if isinstance(kind, mi.LiteralType):
        return st.sampled_from(kind.values)
    raise TypeError(f"no strategy for {kind!r}: teach tests/strategies.py about it")


def structs(struct_type: type[msgspec.Struct], overrides: Overrides = {}) -> st.SearchStrategy:  # noqa: B006
    """Instances of ``struct_type``, every field drawn from its declared type."""
    info = mi.type_info(struct_type)
    assert isinstance(info, mi.StructType)
    fields = {
        field.name: overrides[field.name]
        if field.name in overrides
        else value_of(field.type, overrides)
        for field in info.fields
    }
    return st.builds(struct_type, **fields)


def messages(
    types: Any,
    overrides: Overrides = {},  # noqa: B006
) -> st.SearchStrategy[Message]:
    """Well-typed messages of any of ``types`` (a Vocabulary or a list of classes)."""
    return st.one_of(*(structs(t, overrides) for t in types))


# Values of every kind the wire can carry, for putting in the wrong place.
_any_value = st.one_of(
    st.integers(*_INT64),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    _SMALL_TEXT,
    st.binary(max_size=16),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2),
)


def as_array(message: Message) -> list[Any]:
    """The message as the plain msgpack array it travels as (tag first)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(message))


@st.composite
def ill_typed(draw: st.DrawFn, types: Any, overrides: Overrides = {}) -> Any:  # noqa: B006
    """A frame body built from a real message of ``types`` and then broken.

    Breakage may happen to leave a valid message (an int where a float is
    allowed); callers ask the protocol's own decoder which it is.
    """
    frame = as_array(draw(messages(types, overrides)))
    how = draw(st.sampled_from(["retype", "truncate", "extend", "retag", "map", "scalar"]))
    if how == "retype" and len(frame) > 1:
        frame[draw(st.integers(1, len(frame) - 1))] = draw(_any_value)
    elif how == "truncate":
        frame = frame[: draw(st.integers(0, len(frame) - 1))]
    elif how == "extend":
        frame += draw(st.lists(_any_value, min_size=1, max_size=3))
    elif how == "retag":
        frame[0] = draw(st.one_of(_SMALL_TEXT, _any_value))
    elif how == "map":
        return {str(i): value for i, value in enumerate(frame)}
    elif how == "scalar":
        return draw(_any_value)
    return frame


@st.composite
def corrupted(draw: st.DrawFn, types: Any, overrides: Overrides = {}) -> bytes:  # noqa: B006
    """The msgpack body of a real message of ``types`` with one byte changed: a string
    that is no longer UTF-8, a type marker that now means something else..."""
    body = bytearray(msgspec.msgpack.encode(draw(messages(types, overrides))))
    body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
    return bytes(body)


def frames(types: Any, overrides: Overrides = {}) -> st.SearchStrategy[Any]:  # noqa: B006
    """Anything a peer might send where ``types`` are expected: well-typed, broken, corrupted."""
    return st.one_of(
        messages(types, overrides), ill_typed(types, overrides), corrupted(types, overrides)
    )
