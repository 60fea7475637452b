"""What every server process does around its real work, written once.

Claim its directory (see :mod:`sector.locks`); start listening or stop with
one clear line and exit status 1; stop cleanly on SIGTERM/SIGINT; and publish
a ready file (``host port pid ...``) atomically once listening, so launchers
and tests wait on a file instead of guessing with sleeps.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from .locks import DirectoryInUse, DirectoryLock, acquire

#: Exit status of a server that could not start (as the CLI's: 2 is a usage error).
EXIT_FAILURE = 1
#: The ready files (``host port pid ...``) a master writes in its home and a slave in
#: its data directory once listening; named here so launchers need not import servers.
MASTER_READY, SLAVE_READY = "master.addr", "slave.addr"


class StartupError(Exception):
    """A server cannot start; the message is the one line it prints."""


def claim_directory(directory: Path, lock_name: str, what: str, option: str) -> DirectoryLock:
    """Create ``directory`` and take its lock, or raise the StartupError saying what to do."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return acquire(directory, lock_name)
    except DirectoryInUse as exc:
        raise StartupError(
            f"{what} {exc}; stop that process first, or give another {option}"
        ) from None
    except OSError as exc:
        where = exc.filename or directory
        if exc.errno == errno.ENOLCK:  # e.g. NFS mounted without lock support
            raise StartupError(
                f"{what} {directory}: cannot lock {where}: {exc.strerror}; "
                "a shared mount must support POSIX locks (NFSv4, or NFSv3 with lockd)"
            ) from None
        raise StartupError(f"{what} {where} is not writable: {exc.strerror or exc}") from None


def run_loop(main: Coroutine[Any, Any, int], fast: bool = False) -> int:
    """``asyncio.run(main)``; with ``fast``, on uvloop when it is installed.

    The master asks for uvloop: profiling a stat loop (``python -m bench.profile
    --phase stat``) showed its CPU per request 15-25% lower than on asyncio's
    own loop (TLS and transports in C). The slave stays on asyncio because it
    needs ``loop.sock_sendfile``, which uvloop does not implement.
    ``SECTOR_EVENT_LOOP=asyncio`` in the environment turns uvloop off.
    """
    if fast and os.environ.get("SECTOR_EVENT_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


class Server(Protocol):
    async def start(self) -> tuple[str, int]: ...
    async def serve_forever(self) -> None: ...
    def stop(self) -> None: ...
    async def close(self) -> None: ...


async def serve(
    server: Server,
    name: str,
    bind: tuple[str, int],
    ready_file: Path,
    extra: str | Callable[[], str] = "",
) -> int:
    """Run ``server`` until a signal asks it to stop; the process exit code.

    ``extra`` ends the ready file's line (a slave's id, the master's dashboard
    URL); a callable is asked once the server listens.
    """
    try:
        host, port = await server.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"sector {name}: cannot listen on {bind[0]}:{bind[1]}: {reason}", file=sys.stderr)
        await server.close()
        return EXIT_FAILURE
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    temp = ready_file.with_suffix(".tmp")
    note = extra() if callable(extra) else extra
    temp.write_text(f"{host} {port} {os.getpid()} {note}".rstrip() + "\n")
    temp.replace(ready_file)
    try:
        await server.serve_forever()
    finally:
        ready_file.unlink(missing_ok=True)
        logging.getLogger(f"sector.{name}").info("%s stopping", name)
        await server.close()
    # a server that stopped itself for good reason (a slave refused membership) says so
    return getattr(server, "exit_code", 0)
