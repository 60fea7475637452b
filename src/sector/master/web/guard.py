"""The dashboard's connections, bounded: no visitor holds the master's descriptors.

aiohttp keeps a connection that never sends a request open as long as its peer
likes (an idle socket and a half-sent request head both stayed open for over
40 s in a test here; its keep-alive timeout is an hour), and accepts as many
as arrive. The dashboard runs in the master's process, under its descriptor
limit: without a bound, anyone who can reach ``HTTP_PORT`` could hold every
descriptor, and with them every new Sector login and slave registration.

:class:`ConnectionGuard` wraps aiohttp's protocol factory (``runner.server``).
At most :data:`MAX_CONNECTIONS` dashboard connections are open at once - more
are closed as they arrive - and a connection that sends nothing for
:data:`IDLE_TIMEOUT` is closed, whether it is between requests (a browser opens
another) or in the middle of one (a "slowloris" sending a header a minute).
Dashboard pages are rendered from memory in milliseconds and ``/live`` is
polled, never streamed, so no honest response outlasts that silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("sector.master")

#: Dashboard connections open at once, at most (a browser opens about six).
MAX_CONNECTIONS = 128
#: Seconds a dashboard connection may stay silent (the Sector port's GREETING_TIMEOUT).
IDLE_TIMEOUT = 10.0


class ConnectionGuard:
    """A protocol factory for ``loop.create_server``: aiohttp's, within bounds."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        limit: int = MAX_CONNECTIONS,
        idle: float = IDLE_TIMEOUT,
    ):
        self.factory = factory
        self.limit = limit
        self.idle = idle
        self.open = 0
        self._full = False  # logged once each time the limit is reached

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self) -> bool:
        if self.open >= self.limit:
            if not self._full:
                log.warning(
                    "dashboard: %d connections open, refusing more until some close", self.open
                )
            self._full = True
            return False
        self._full = False
        self.open += 1
        return True


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's handler behind a count and a silence timer."""

    def __init__(self, guard: ConnectionGuard):
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.heard = 0.0  # the loop's time of the last bytes received
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.guard.admit():
            transport.abort()  # connection_lost follows, with nothing to undo
            return
        self.transport = transport
        self.inner = self.guard.factory()
        self.heard = asyncio.get_running_loop().time()
        self._watch(self.guard.idle)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.heard = asyncio.get_running_loop().time()
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return  # refused at the door
        self.guard.open -= 1
        if self._timer is not None:
            self._timer.cancel()
        inner, self.inner = self.inner, None
        inner.connection_lost(exc)

    def _watch(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        silent = asyncio.get_running_loop().time() - self.heard
        if silent < self.guard.idle:
            self._watch(self.guard.idle - silent)
        elif self.transport is not None:
            self.transport.abort()  # close() would wait for a peer that does not read
