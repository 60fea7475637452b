#!/usr/bin/env python3
"""read.py - copy a file from Sector to the local file system.

PySector's read.py example, ported to Python 3: it uses only the module API
(``sector.init``, ``login``, ``open``, ``read``, ``close``, ``logout``,
``closeclient``), reads the Sector file chunk by chunk, and checks every
status code, reporting a failure by its Sector name (e.g. ``E_NOEXIST``).

    python examples/read.py /demo/sample.txt sample-copy.txt

The cluster is found the way every Sector tool finds it (options, then
``SECTOR_MASTER``/``SECTOR_USER``/``SECTOR_PASSWORD``/``SECTOR_CERT``, then
``client.conf`` under ``$SECTOR_HOME/conf``, then the local cluster that
``sector up`` runs): with no options it talks to that local cluster.

Exit status: 0 on success, 1 on any error.
"""

from __future__ import annotations

import argparse
import os
import sys

from example_session import Failed, add_connection_options, check, connect

import sector

PROG = "read.py"


def copy_to_local(source: str, destination: str, chunk_size: int) -> int:
    """Read ``source`` chunk by chunk into ``destination``; returns the byte count.

    A failed copy removes the partial local file rather than leave it looking complete.
    """
    handle = sector.open(source, sector.SF_MODE.READ)
    check(handle, f"open {source}")
    copied = 0
    try:
        try:
            out = open(destination, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise Failed(f"cannot write {destination}: {exc.strerror}") from None
        try:
            with out:
                while True:
                    data = sector.read(handle, chunk_size)
                    check(data, f"read {source} at byte {copied}")
                    if not data:
                        break
                    try:
                        out.write(data)
                    except OSError as exc:
                        raise Failed(f"cannot write {destination}: {exc.strerror}") from None
                    copied += len(data)
        except BaseException:
            os.unlink(destination)
            raise
    finally:
        status = sector.close(handle)
    check(status, f"close {source}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Copy a file from Sector to the local file system."
    )
    parser.add_argument("source", metavar="SRC", help="Sector file, e.g. /demo/sample.txt")
    parser.add_argument("destination", metavar="DEST", help="local file to write")
    add_connection_options(parser)
    parser.add_argument(
        "--chunk-size", type=int, default=1024 * 1024, help="bytes per read (default: 1 MiB)"
    )
    args = parser.parse_args(argv)
    if args.chunk_size <= 0:
        parser.error("--chunk-size must be positive")

    try:
        connect(args)
        copied = copy_to_local(args.source, args.destination, args.chunk_size)
        check(sector.logout(), "logout")
    except Failed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a malformed --master
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        sector.closeclient()
    print(f"{args.source} -> {args.destination}: {copied} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
