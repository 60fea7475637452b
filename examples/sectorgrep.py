#!/usr/bin/env python3
"""sectorgrep.py - print the lines of a Sector file that match a regular expression.

PySector's sectorgrep.py example, ported to Python 3 and made correct: the
file is read in chunks with the module API (``sector.open``/``read``), and a
line that straddles two chunks is still matched as one line. Matching is done
on bytes, so files holding NUL bytes or text in any encoding are searched and
printed unchanged.

    python examples/sectorgrep.py -n 'sector' /demo/sample.txt

The cluster is found the way every Sector tool finds it (options, then
``SECTOR_MASTER``/``SECTOR_USER``/``SECTOR_PASSWORD``/``SECTOR_CERT``, then
``client.conf`` under ``$SECTOR_HOME/conf``, then the local cluster that
``sector up`` runs): with no options it talks to that local cluster.

Exit status, as grep's: 0 when a line matched, 1 when none did, 2 on an error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator

from example_session import Failed, add_connection_options, check, connect

import sector

PROG = "sectorgrep.py"


def lines(read_chunk: Callable[[], bytes]) -> Iterator[bytes]:
    """Whole lines (without their ``\\n``) from a stream of chunks cut anywhere.

    The bytes after the last newline of a chunk are held back until the next
    chunk completes the line; a last line without a newline is still a line.
    """
    pending = bytearray()
    while chunk := read_chunk():
        searched = len(pending)  # no newline in what is held back
        pending += chunk
        end = pending.rfind(b"\n", searched)
        if end < 0:
            continue
        yield from bytes(pending[:end]).split(b"\n")
        del pending[: end + 1]
    if pending:
        yield bytes(pending)


def grep(path: str, pattern: re.Pattern[bytes], args: argparse.Namespace) -> int:
    """Write the matching lines of Sector file ``path`` to stdout; returns how many matched."""
    handle = sector.open(path, sector.SF_MODE.READ)
    check(handle, f"open {path}")
    offset = 0

    def read_chunk() -> bytes:
        nonlocal offset
        data = sector.read(handle, args.chunk_size)
        check(data, f"read {path} at byte {offset}")
        offset += len(data)
        return data

    out = sys.stdout.buffer
    matched = 0
    try:
        for number, line in enumerate(lines(read_chunk), start=1):
            if pattern.search(line) is None:
                continue
            matched += 1
            if not args.count:
                out.write(b"%d:%s\n" % (number, line) if args.line_number else line + b"\n")
        if args.count:
            out.write(b"%d\n" % matched)
        out.flush()
    finally:
        status = sector.close(handle)
    check(status, f"close {path}")
    return matched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Print the lines of a Sector file that match a regular expression."
    )
    parser.add_argument("pattern", metavar="PATTERN", help="Python regular expression")
    parser.add_argument("path", metavar="FILE", help="Sector file, e.g. /demo/sample.txt")
    parser.add_argument("-i", "--ignore-case", action="store_true", help="ignore case")
    parser.add_argument("-n", "--line-number", action="store_true", help="prefix line numbers")
    parser.add_argument("-c", "--count", action="store_true", help="print only the count")
    add_connection_options(parser)
    parser.add_argument(
        "--chunk-size", type=int, default=64 * 1024, help="bytes per read (default: 64 KiB)"
    )
    args = parser.parse_args(argv)
    if args.chunk_size <= 0:
        parser.error("--chunk-size must be positive")
    try:
        # os.fsencode keeps any byte the shell passed, even one that is not UTF-8.
        pattern = re.compile(os.fsencode(args.pattern), re.IGNORECASE if args.ignore_case else 0)
    except re.error as exc:
        parser.error(f"bad PATTERN: {exc}")  # exits with status 2

    try:
        connect(args)
        matched = grep(args.path, pattern, args)
        check(sector.logout(), "logout")
    except (Failed, ValueError) as exc:  # ValueError: a malformed --master
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sectorgrep.py ... | head` closed our output: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    finally:
        sector.closeclient()
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())
