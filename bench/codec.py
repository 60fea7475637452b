"""Why messages are what they are: the wire encoding against its obvious alternatives.

``python -m bench.codec`` times encoding and decoding of the messages on the
hot paths (a ``stat`` request and reply, a read grant, a 1,000-entry ``ls``
reply) as Sector sends them - ``msgspec`` structs with ``array_like=True`` -
and, as the baseline from the same run, the very same structs encoded as maps
(field names on the wire, what ``array_like=False`` would give). Sizes are in
bytes, times in microseconds per message (best of several rounds).

A second table shows why ``ls`` answers in columns (protocol version 2)
rather than as a list of :class:`Entry` structs (version 1), and a third why
messages opt out of the cycle collector
(``gc=False``): a client that keeps what it decodes (a listing it walks, say)
otherwise pays for collections that can never find a cycle.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, get_args, get_origin

import msgspec

from sector.protocol.master import (
    Entry,
    LsReply,
    ReadGrant,
    Stat,
    StatReply,
)
from sector.protocol.messages import replies_to

_RESTYLED: dict[tuple[type, bool, bool], type] = {}


def restyled(kind: Any, array_like: bool, gc: bool) -> Any:
    """The same struct type (recursively), with other ``array_like`` and ``gc`` settings."""
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        key = (kind, array_like, gc)
        if key not in _RESTYLED:
            config = kind.__struct_config__
            fields = []
            for info in msgspec.structs.fields(kind):
                spec: tuple[Any, ...] = (info.name, restyled(info.type, array_like, gc))
                if info.default is not msgspec.NODEFAULT:
                    spec += (info.default,)
                elif info.default_factory is not msgspec.NODEFAULT:
                    spec += (msgspec.field(default_factory=info.default_factory),)
                fields.append(spec)
            _RESTYLED[key] = msgspec.defstruct(
                kind.__name__,
                fields,
                tag=config.tag,
                tag_field=config.tag_field,
                array_like=array_like,
                gc=gc,
            )
        return _RESTYLED[key]
    if get_origin(kind) is list:
        return list[restyled(get_args(kind)[0], array_like, gc)]  # type: ignore[misc]
    return kind


def converted(value: Any, array_like: bool, gc: bool) -> Any:
    if isinstance(value, msgspec.Struct):
        fields = {
            name: converted(getattr(value, name), array_like, gc)
            for name in value.__struct_fields__
        }
        return restyled(type(value), array_like, gc)(**fields)
    if isinstance(value, list):
        return [converted(item, array_like, gc) for item in value]
    return value


def best_of(action: Callable[[], object], repeat: int) -> float:
    """Microseconds per call, the best of five rounds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            action()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e6


def samples() -> list[tuple[str, Any, Any, int]]:
    """(name, message, the type its receiver decodes it as, repeat count)."""
    checksum = "0123456789abcdef0123456789abcdef"
    entry = Entry("f000123", False, 1024, 1.7e9, 1, checksum, ["127.0.0.1:40000"])
    listing = entries_as_columns(
        [Entry(f"f{i:06d}", False, 1024, 1.7e9 + i, 1, checksum) for i in range(1000)]
    )
    grant = ReadGrant(7, 1, 1024, checksum, b"t" * 90, [("127.0.0.1", 40000)])
    return [
        ("stat request", Stat("/bench/dir/f000123"), Stat, 20_000),
        ("stat reply", StatReply(entry), StatReply, 20_000),
        ("read grant", grant, ReadGrant, 20_000),
        ("ls reply, 1,000 entries", listing, LsReply, 50),
    ]


#: Protocol version 1's ``ls`` reply: one Entry struct per entry.
LsReplyOfEntries = msgspec.defstruct(
    "LsReply", [("entries", list[Entry])], tag="ls", tag_field="reply", array_like=True, gc=False
)


def entries_as_columns(entries: list[Entry]) -> LsReply:
    return LsReply(
        [e.name for e in entries],
        [e.isdir for e in entries],
        [e.size for e in entries],
        [e.timestamp for e in entries],
        [e.version for e in entries],
        [e.checksum for e in entries],
        [e.created for e in entries],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds (seconds, for CI)")
    args = parser.parse_args(argv)
    scale = 100 if args.quick else 1
    encoder = msgspec.msgpack.Encoder()
    header = f"{'message':26} {'':8} {'bytes':>7} {'encode µs':>10} {'decode µs':>10}"
    print(header)
    for name, message, kind, repeat in samples():
        repeat = max(1, repeat // scale)
        rows = {}
        for form, value, target in (
            ("arrays", message, kind),
            ("maps", converted(message, False, False), restyled(kind, False, False)),
        ):
            body = encoder.encode(value)
            decoder = msgspec.msgpack.Decoder(target)
            assert msgspec.structs.asdict(decoder.decode(body)) == msgspec.structs.asdict(value)
            rows[form] = (
                len(body),
                best_of(lambda v=value: encoder.encode(v), repeat),
                best_of(lambda b=body, d=decoder: d.decode(b), repeat),
            )
        for form in ("arrays", "maps"):
            size, enc, dec = rows[form]
            shown = name if form == "arrays" else ""
            print(f"{shown:26} {form:8} {size:7,} {enc:10.2f} {dec:10.2f}")
        size, enc, dec = (a / b for a, b in zip(rows["arrays"], rows["maps"], strict=True))
        print(f"{'':26} {'ratio':8} {size:7.2f} {enc:10.2f} {dec:10.2f}")
    columns = samples()[3][1]
    listing = LsReplyOfEntries(columns.entries())
    print(
        f"\n{'ls reply, 1,000 entries':26} {'':8} {'bytes':>7} {'encode µs':>10} {'decode µs':>10}"
    )
    figures = {}
    for form, value in (("columns", columns), ("entries", listing)):
        body = encoder.encode(value)
        decoder = msgspec.msgpack.Decoder(type(value))
        figures[form] = (
            len(body),
            best_of(lambda v=value: encoder.encode(v), 50 // scale or 1),
            best_of(lambda b=body, d=decoder: d.decode(b), 50 // scale or 1),
        )
        shown = "  as columns (v2)" if form == "columns" else "  as Entry structs (v1)"
        print(f"{shown:35} {figures[form][0]:7,} {figures[form][1]:10.2f} {figures[form][2]:10.2f}")
    size, enc, dec = (a / b for a, b in zip(figures["columns"], figures["entries"], strict=True))
    print(f"{'  ratio':35} {size:7.2f} {enc:10.2f} {dec:10.2f}")
    body = encoder.encode(listing)
    print(f"\n{'ls reply of Entry structs, decoded and kept (100 at a time)':58} {'decode µs':>10}")
    times = {}
    for gc in (False, True):
        decoder = msgspec.msgpack.Decoder(restyled(LsReplyOfEntries, True, gc))
        times[gc] = best_of(lambda d=decoder: keep(d, body), 1) / 100
        label = "  gc=True (the default)" if gc else "  gc=False (as sent)"
        print(f"{label:58} {times[gc]:10.2f}")
    print(f"{'  ratio':58} {times[False] / times[True]:10.2f}")
    vocabulary = replies_to(Stat)
    stat_reply = encoder.encode(samples()[1][1])
    took = best_of(lambda: vocabulary.decode(stat_reply), 20_000 // scale)
    print(f"\nstat reply through the vocabulary of the replies to stat: {took:.2f} µs")
    return 0


def keep(decoder: msgspec.msgpack.Decoder, body: bytes) -> None:
    """Decode 100 listings and hold on to them, as a program walking them would."""
    kept = [decoder.decode(body) for _ in range(100)]
    del kept


if __name__ == "__main__":
    raise SystemExit(main())
