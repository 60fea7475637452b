"""Start-up and shutdown of the master process.

Start-up either succeeds completely or stops with one line on stderr naming
what is wrong (a config file and line, a port in use, an unwritable folder).
Once listening, the master writes ``master.addr`` in its home: launchers and
tests wait for that file instead of guessing with sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ..config import ConfigError, MasterSettings
from ..logs import setup_logging
from .server import MasterServer

log = logging.getLogger("sector.master")

READY_FILE = "master.addr"


def run(conf_dir: str | Path, home: str | Path | None = None, port: int | None = None) -> int:
    try:
        settings = MasterSettings.load(conf_dir, home)
        if port is not None:
            settings.port = port
        settings.home.mkdir(parents=True, exist_ok=True)
        (settings.home / READY_FILE).unlink(missing_ok=True)
        setup_logging(settings.home / "master.log", settings.log_level)
    except ConfigError as exc:
        print(f"sector master: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"sector master: cannot use {exc.filename or 'home'}: {exc.strerror}", file=sys.stderr
        )
        return 2
    try:
        return asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        return 0


async def _serve(settings: MasterSettings) -> int:
    try:
        master = MasterServer(settings)
    except ConfigError as exc:
        print(f"sector master: {exc}", file=sys.stderr)
        return 2
    try:
        host, port = await master.start()
    except OSError as exc:
        print(
            f"sector master: cannot listen on {settings.host}:{settings.port}: {_reason(exc)}",
            file=sys.stderr,
        )
        await master.close()
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.stop)
    ready = settings.home / READY_FILE
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(f"{host} {port} {os.getpid()}\n")
    tmp.replace(ready)
    try:
        await master.serve_forever()
    finally:
        ready.unlink(missing_ok=True)
        log.info("master stopping")
        await master.close()
    return 0


def _reason(exc: OSError) -> str:
    """The plain reason ("Address already in use"), whatever wrapped the OSError."""
    return os.strerror(exc.errno) if exc.errno else str(exc)
