"""One TLS connection to the master, as an asyncio protocol.

Frames are decoded as bytes arrive (the sans-IO :class:`FrameDecoder`) and a
request the master can answer at once - nearly all of them - is answered from
``data_received`` itself, with no task or coroutine in between. Profiling a
stat loop showed the stream-and-coroutine version spending more of the
master's time in that machinery than in the request. The few requests that
must wait (login's password hashing, ``copy``, ``fsck``) run as a task, and
later requests queue behind them, so replies always leave in request order.

The first frame decides what the peer is: ``login`` makes it a client session,
``register`` a slave sending heartbeats; anything else is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ..errors import E_SECURITY, E_UNKNOWN
from ..protocol.framing import FrameDecoder, Message, ProtocolError, encode
from ..protocol.messages import fail, ok

if TYPE_CHECKING:
    from .leases import Session
    from .server import MasterServer
    from .slaves import Slave

log = logging.getLogger("sector.master")

#: A peer must identify itself (login or register) this soon after connecting.
GREETING_TIMEOUT = 30.0
#: Requests one connection may have waiting before the master stops reading it.
MAX_QUEUED = 256


class MasterConnection(asyncio.Protocol):
    def __init__(self, master: MasterServer):
        self.master = master
        self.decoder = FrameDecoder()
        self.queue: deque[Message] = deque()
        self.waiting = False
        self.closing = False
        self.session: Session | None = None
        self.slave: Slave | None = None
        self.address = "?"
        self.transport: asyncio.Transport | None = None
        self._greeting_timer: asyncio.TimerHandle | None = None
        self._paused_by: set[str] = set()  # why reading is paused: "queue", "replies"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass
        self.address = (transport.get_extra_info("peername") or ("?",))[0]
        self._greeting_timer = asyncio.get_running_loop().call_later(
            GREETING_TIMEOUT, self._drop, "no login within the time allowed"
        )

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        try:
            self.queue.extend(self.decoder)
        except ProtocolError as exc:
            self._drop(str(exc))
            return
        if len(self.queue) > MAX_QUEUED:
            # a peer piling up requests behind a slow one waits, instead of
            # growing this queue without bound
            self._pause("queue")
        self._work()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
        if self.session is not None:
            self.master.end_session(self.session)
        if self.slave is not None:
            self.master.slave_disconnected(self.slave)

    def pause_writing(self) -> None:
        # A peer that does not read its replies stops being read from.
        self._pause("replies")

    def resume_writing(self) -> None:
        self._resume("replies")

    def _pause(self, reason: str) -> None:
        if not self._paused_by and self.transport is not None:
            self.transport.pause_reading()
        self._paused_by.add(reason)

    def _resume(self, reason: str) -> None:
        self._paused_by.discard(reason)
        if not self._paused_by and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def _work(self) -> None:
        """Answer queued requests in order until one has to wait."""
        while self.queue and not self.waiting and not self.closing:
            reply = self._handle(self.queue.popleft())
            if isinstance(reply, dict):
                self._send(reply)
            elif reply is not None:
                self.waiting = True
                self.master.spawn(self._finish(reply))
                break
        if "queue" in self._paused_by and len(self.queue) <= MAX_QUEUED:
            self._resume("queue")

    async def _finish(self, pending: Awaitable[Message | None]) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("unexpected failure answering %s", self.address)
            reply = fail(E_UNKNOWN, "internal error in the master (see its log)")
        self.waiting = False
        if reply is not None:
            self._send(reply)
        self._work()

    def _handle(self, request: Message) -> Message | Awaitable[Message | None] | None:
        if self.session is not None:
            if request.get("op") == "logout":
                self._send(ok(), then_close=True)
                return None
            return self.master.dispatch(self.session, request)
        if self.slave is not None:
            reply = self.master.slave_heartbeat(self.slave, request)
            if reply is None:
                self._drop("superseded by a newer registration of the same slave")
            return reply
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
            self._greeting_timer = None
        if request.get("op") == "login":
            return self._login(request)
        if request.get("op") == "register":
            reply, self.slave = self.master.register_slave(request, self.address)
            if self.slave is None:
                self._send(reply, then_close=True)
                return None
            return reply
        self._send(fail(E_SECURITY, "log in first"), then_close=True)
        return None

    async def _login(self, request: Message) -> Message | None:
        reply, session = await self.master.login(request, self.address)
        if session is None:
            self._send(reply, then_close=True)
            return None
        if self.closing:  # the peer left while its password was being checked
            self.master.end_session(session)
            return None
        self.session = session
        return reply

    def _send(self, reply: Message, then_close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(encode(reply))
        if then_close:
            self.closing = True
            self.transport.close()
        elif self.session is not None and self.session.stop_master:
            self.master.stop()  # only now: the reply to `shutdown` is on its way

    def _drop(self, reason: str) -> None:
        log.warning("dropping connection from %s: %s", self.address, reason)
        self.closing = True
        if self.transport is not None:
            self.transport.close()
