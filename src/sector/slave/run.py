"""Start-up and shutdown of a slave process.

Like the master, a slave either starts completely or stops with one clear
line, and writes ``slave.addr`` in its data directory once it is listening.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..config import ConfigError, SlaveSettings, parse_address
from ..lifecycle import serve
from ..logs import setup_logging
from .server import SlaveServer

READY_FILE = "slave.addr"


def run(
    conf_dir: str | Path,
    data_dir: str | Path | None = None,
    master: str | None = None,
    port: int | None = None,
) -> int:
    try:
        settings = SlaveSettings.load(conf_dir, data_dir)
        if master:
            settings.master = parse_address(master, 6000)
        if port is not None:
            settings.port = port
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.data_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        (settings.data_dir / READY_FILE).unlink(missing_ok=True)
        setup_logging(settings.data_dir / "slave.log", settings.log_level)
    except (ConfigError, ValueError) as exc:
        print(f"sector slave: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or (data_dir or "data directory")
        print(
            f"sector slave: data directory {where} is not writable: {exc.strerror}", file=sys.stderr
        )
        return 2
    try:
        return asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        return 0


async def _serve(settings: SlaveSettings) -> int:
    slave = SlaveServer(settings)
    return await serve(
        slave,
        "slave",
        (settings.host, settings.port),
        settings.data_dir / READY_FILE,
        extra=slave.slave_id,
    )
