"""How the ``sector`` commands show numbers, times and tables.

Tables are rich tables without borders, so they read well in a terminal and
still split cleanly on whitespace for ``awk``; they are never wrapped or cut,
whatever the width of a terminal or a pipe.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table

from ..config import human_size, parse_duration, parse_size

# C0 and C1 controls, DEL, and the Unicode marks that reorder what follows them
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shown(text: str) -> str:
    """``text`` (a name, a path, a message holding one) safe to print on a terminal.

    Names in Sector may hold any character but ``/`` and NUL; printed raw, a
    newline forges a line of output and an escape sequence drives the terminal
    (issue 9: ``sector ls`` printed both). Control characters and the marks
    that reorder text are shown as escapes (``\\n``, ``\\x1b``, ``\\u202e``);
    every command prints names through here, and ``--json`` escapes them as
    JSON does.
    """
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def size_text(size: int, human: bool) -> str:
    return human_size(size) if human else str(size)


class SizeType(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def local_time(timestamp: float, seconds: bool = False) -> str:
    return time.strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(timestamp)
    )


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``42s``: the two largest units are enough for an uptime."""
    seconds = int(max(0, seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> None:
    """Aligned columns on stdout; ``right`` lists the columns to right-align (numbers)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # A huge width: a table is never wrapped or cut, in a narrow terminal or a pipe.
    console = Console(highlight=False, width=100_000)
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())
