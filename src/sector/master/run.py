"""Start-up and shutdown of the master process.

Start-up either succeeds completely or stops with one line on stderr naming
what is wrong (a config file and line, a port in use, an unwritable folder).
Once listening, the master writes ``master.addr`` in its home: launchers and
tests wait for that file instead of guessing with sleeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import ConfigError, MasterSettings
from ..lifecycle import run_loop, serve
from ..logs import setup_logging
from .server import MasterServer

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
        return run_loop(_serve(settings), fast=True)
    except KeyboardInterrupt:
        return 0


async def _serve(settings: MasterSettings) -> int:
    try:
        master = MasterServer(settings)
    except ConfigError as exc:
        print(f"sector master: {exc}", file=sys.stderr)
        return 2
    return await serve(master, "master", (settings.host, settings.port), settings.home / READY_FILE)
