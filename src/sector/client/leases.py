"""Keeping a client's write leases while it lives: a ping now and then, from a thread.

The master ends the write lease of a client it has not heard from for
CLIENT_TIMEOUT (told at login), so that a client that died or was cut off
frees its files; a live one that keeps a file open for writing without
writing (an editor, a mount, a slow producer) must not lose it. While a
:class:`~.session.Client` has files open for writing, :class:`LeaseKeeper`
sends the master a ``ping`` every third of that timeout, as HDFS's client
renews its leases; when a period ends with none open it stops. A client that is
SIGSTOPped or partitioned sends nothing, and its leases expire as they should.

The thread outlives the file that started it until the end of its period, so
that a program writing many small files one after the other starts one thread
per period rather than one per file (starting a thread and waiting for it to
run cost ~0.5 ms of a ~2.3 ms create here, in ``python -m bench.profile``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import SectorError


class LeaseKeeper:
    def __init__(self, ping: Callable[[], object]):
        self._ping = ping
        self._lock = threading.Lock()
        self._open = 0
        self._timeout = 0.0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def set_timeout(self, timeout: float) -> None:
        """The master's CLIENT_TIMEOUT, from the login reply (0: leases never expire)."""
        self._timeout = timeout

    def opened(self) -> None:
        """A file was opened for writing: keep its lease until :meth:`closed`."""
        with self._lock:
            self._open += 1
            if self._thread is None and self._timeout:
                self._thread = threading.Thread(
                    target=self._run, name="sector-lease-keeper", daemon=True
                )
                self._thread.start()

    def closed(self) -> None:
        """A file opened for writing was closed; the thread notices at its next turn."""
        with self._lock:
            self._open = max(0, self._open - 1)

    def stop(self) -> None:
        with self._lock:
            self._open = 0
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._timeout / 3)
            with self._lock:
                self._wake.clear()
                if not self._open:
                    self._thread = None
                    return
            try:
                self._ping()
            except SectorError:
                pass  # the master is away: the next try may reach it, or the lease is gone
