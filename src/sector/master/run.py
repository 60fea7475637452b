"""Start-up and shutdown of the master process.

Start-up either succeeds completely or stops with one line on stderr and exit
status 1, naming what is wrong (a config file and line, a port in use, a
metadata directory another master holds, an unwritable folder). Once
listening, the master writes ``master.addr`` in its home: launchers and tests
wait for that file instead of guessing with sleeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client import disable_created_metrics

from ..certs import Authority, CertificateError
from ..config import ConfigError, MasterSettings
from ..lifecycle import EXIT_FAILURE, MASTER_READY, StartupError, claim_directory, run_loop, serve
from ..locks import MASTER_LOCK
from ..logs import setup_logging
from ..transport import server_tls_context
from .server import MasterServer
from .store import MetadataError


def run(
    conf_dir: str | Path,
    home: str | Path | None = None,
    port: int | None = None,
    log_stderr: bool = False,
) -> int:
    try:
        settings = MasterSettings.load(conf_dir, home)
        if port is not None:
            settings.port = port
        # Locked before anything in the home is touched: a second master on the
        # same metadata would remove the first one's ready file and share its database.
        lock = claim_directory(settings.home, MASTER_LOCK, "metadata directory", "--home")
        (settings.home / MASTER_READY).unlink(missing_ok=True)
        log = settings.log
        setup_logging(
            settings.home / "master.log", log.level, log.max_size, log.backups, log_stderr
        )
        _check_tls_files(settings)
    except (ConfigError, StartupError) as exc:
        print(f"sector master: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return run_loop(_serve(settings), fast=True)
    except KeyboardInterrupt:
        return 0
    finally:
        lock.release()


def _check_tls_files(settings: MasterSettings) -> None:
    """The certificate and key are read now: the listener and the issuer of slave
    certificates (see :mod:`sector.certs`) both need them."""
    try:
        server_tls_context(settings.cert, settings.key)
        Authority.load(settings.cert, settings.key)
    except (OSError, ValueError, CertificateError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StartupError(
            f"cannot load the certificate {settings.cert} and its key {settings.key}: {reason}"
        ) from None


async def _serve(settings: MasterSettings) -> int:
    # /metrics without prometheus_client's *_created series: one more line per
    # counter and histogram child, which Prometheus does not read from the text format.
    disable_created_metrics()
    try:
        master = MasterServer(settings)
    except (ConfigError, MetadataError) as exc:
        print(f"sector master: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return await serve(
        master,
        "master",
        (settings.host, settings.port),
        settings.home / MASTER_READY,
        extra=master.dashboard_url,
    )
