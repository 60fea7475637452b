"""Start-up and shutdown of a slave process.

Like the master, a slave either starts completely or stops with one clear
line and exit status 1, and writes ``slave.addr`` in its data directory once
it is listening. It holds its data directory's lock for as long as it runs:
a second slave there would empty the first one's ``tmp/`` and serve the same
objects under a second identity.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..certs import issued_by
from ..config import JOIN_TOKEN_FILE, ConfigError, SlaveSettings, parse_address
from ..lifecycle import EXIT_FAILURE, SLAVE_READY, StartupError, claim_directory, serve
from ..locks import SLAVE_LOCK
from ..logs import setup_logging
from ..transport import client_tls_context
from .server import SlaveServer


def run(
    conf_dir: str | Path,
    data_dir: str | Path | None = None,
    master: str | None = None,
    port: int | None = None,
    log_stderr: bool = False,
    join_token: str | None = None,
    bind: str | None = None,
) -> int:
    try:
        settings = SlaveSettings.load(conf_dir, data_dir)
        settings.join_token = join_token or None
        if master:
            settings.master = _master_address(master)
        if port is not None:
            settings.port = port
        if bind:
            settings.host = bind
        lock = claim_directory(settings.data_dir, SLAVE_LOCK, "data directory", "--data")
        (settings.data_dir / SLAVE_READY).unlink(missing_ok=True)
        log = settings.log
        setup_logging(
            settings.data_dir / "slave.log", log.level, log.max_size, log.backups, log_stderr
        )
        _check_certificate(settings)
    except (ConfigError, StartupError) as exc:
        print(f"sector slave: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        return 0
    finally:
        lock.release()


def _master_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text, 6000)
    except ValueError as exc:
        raise StartupError(f"--master: {exc}") from None


def _check_certificate(settings: SlaveSettings) -> None:
    """The master's certificate is read now, so a wrong path fails at start, not in a retry
    loop; and a slave that is no member yet needs a join token to become one."""
    try:
        client_tls_context(settings.cert)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StartupError(
            f"cannot load the master's certificate {settings.cert}: {reason}"
        ) from None
    if not issued_by(settings.own_cert, settings.cert) and settings.read_join_token() is None:
        raise StartupError(
            f"{settings.data_dir} holds no membership certificate from the master "
            f"{settings.cert}: give a join token (`sector conf join-token` on the master's "
            f"machine) with --join TOKEN or in {settings.conf_dir / JOIN_TOKEN_FILE}"
        )


async def _serve(settings: SlaveSettings) -> int:
    slave = SlaveServer(settings)
    return await serve(
        slave,
        "slave",
        (settings.host, settings.port),
        settings.data_dir / SLAVE_READY,
        extra=slave.slave_id,
    )
