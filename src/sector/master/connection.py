"""One TLS connection to the master, as an asyncio protocol.

Frames are decoded as bytes arrive (the sans-IO :class:`FrameDecoder`) and a
request the master can answer at once - nearly all of them - is answered from
``data_received`` itself, with no task or coroutine in between. Profiling a
stat loop showed the stream-and-coroutine version spending more of the
master's time in that machinery than in the request. The few requests that
must wait (login's password hashing, ``copy``, ``fsck``) run as a task, and
later requests queue behind them, so replies always leave in request order.

The first frame decides what the peer is (see :mod:`sector.protocol.master`):
``login`` makes it a client session, ``register`` a slave sending heartbeats;
anything else is refused and the connection closed. Frames are decoded when
their turn comes, with the vocabulary of the state the connection is in then
(a client may send ``login`` and ``stat`` back to back).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ..certs import ROLE_SLAVE, identity
from ..errors import E_UNKNOWN
from ..protocol.framing import MAX_FRAME, FrameDecoder, ProtocolError, encode
from ..protocol.master import CLIENT_REQUESTS, GREETINGS, SLAVE_REPORTS, CacheRelease, refusal
from ..protocol.messages import Error, InvalidMessage, Message, Reply, Working
from .sessions import Peer, Session
from .slaves import Slave

if TYPE_CHECKING:
    from .server import MasterServer

log = logging.getLogger("sector.master")

_WORKING = bytes(encode(Working()))

#: A peer must identify itself (login or register) this soon after connecting.
GREETING_TIMEOUT = 10.0
#: Requests one connection may have waiting before the master stops reading it...
MAX_QUEUED = 256
#: ... and bytes.
MAX_QUEUED_BYTES = 1024 * 1024
#: The largest frame of a peer that has not identified itself: a login or a join is a
#: few hundred bytes. A slave's certificate (checked in the TLS handshake) admits a
#: registration as large as MAX_FRAME: it lists every object the slave holds.
GREETING_LIMIT = 64 * 1024
#: The largest frame after the greeting: a client's requests hold a path or two.
SESSION_LIMIT = 1024 * 1024
#: While a request waits (a copy on its slave, fsck, a login's password hash), the
#: master sends ``Working`` this often: a client's timeout then counts only silence.
KEEPALIVE_INTERVAL = 1.0


class MasterConnection(asyncio.Protocol):
    def __init__(self, master: MasterServer):
        self.master = master
        self.decoder = FrameDecoder(GREETING_LIMIT)
        self.queue: deque[bytearray] = deque()  # frame bodies, decoded in turn
        self.queued_bytes = 0
        self.waiting = False
        self.closing = False
        self.session: Session | None = None
        self.slave: Slave | None = None
        self.address = "?"
        self.peer = Peer(self.address)
        self.transport: asyncio.Transport | None = None
        self._greeting_timer: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._paused_by: set[str] = set()  # why reading is paused: "queue", "replies"
        #: Whether the request being answered is ``long_running``: only its asker
        #: expects ``Working`` (others may wait too: on recalled cache leases).
        self._announce = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass
        self.address = (transport.get_extra_info("peername") or ("?",))[0]
        # the TLS handshake is over: a certificate shown here was checked against ours
        self.peer = Peer(self.address, identity(transport.get_extra_info("peercert")))
        if self.peer.identity is not None and self.peer.identity.role == ROLE_SLAVE:
            self.decoder.limit = MAX_FRAME  # a member's registration lists all it holds
        self._greeting_timer = asyncio.get_running_loop().call_later(
            GREETING_TIMEOUT, self._drop, "no login within the time allowed"
        )

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        try:
            for body in self.decoder:
                if self.waiting and self._released(body):
                    continue
                self.queue.append(body)
                self.queued_bytes += len(body)
        except ProtocolError as exc:
            self._drop(str(exc))
            return
        if len(self.queue) > MAX_QUEUED or self.queued_bytes > MAX_QUEUED_BYTES:
            # a peer piling up requests behind a slow one waits, instead of
            # growing this queue without bound
            self._pause("queue")
        self._work()

    def _released(self, body: bytearray) -> bool:
        """Handle a ``cache-release`` at once, even behind a request that waits: that
        request may be waiting for exactly this release (its change recalled a lease
        this very client holds). A release answers nothing, so order does not matter."""
        if self.session is None:
            return False
        try:
            message = CLIENT_REQUESTS.decode(body)
        except ProtocolError:
            return False  # its turn will come, and the error with it
        if type(message) is not CacheRelease:
            return False
        self.master.answer(self.session, message)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
        if self.session is not None:
            self.session.push = None
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
            body = self.queue.popleft()
            self.queued_bytes -= len(body)
            try:
                reply = self._handle(body)
            except ProtocolError as exc:  # not even msgpack: this peer speaks something else
                self._drop(str(exc))
                return
            if isinstance(reply, Reply):
                self._send(reply)
            elif reply is not None:
                self.waiting = True
                if self._announce:
                    self._schedule_keepalive()
                self.master.spawn(self._finish(reply))
                break
        if (
            "queue" in self._paused_by
            and len(self.queue) <= MAX_QUEUED
            and self.queued_bytes <= MAX_QUEUED_BYTES
        ):
            self._resume("queue")

    async def _finish(self, pending: Awaitable[Reply | None]) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("unexpected failure answering %s", self.address)
            reply = Error(E_UNKNOWN, "internal error in the master (see its log)")
        self.waiting = False
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if reply is not None:
            self._send(reply)
        self._work()

    def _schedule_keepalive(self) -> None:
        self._keepalive = asyncio.get_running_loop().call_later(
            KEEPALIVE_INTERVAL, self._still_working
        )

    def _still_working(self) -> None:
        """Tell the peer its request is still being worked on (only long-running requests
        wait, and their askers accept this: see ``Request.long_running``)."""
        if not self.waiting or self.closing or self.transport is None:
            return
        if not self.transport.is_closing():
            self.transport.write(_WORKING)
        self._schedule_keepalive()

    def _handle(self, body: bytearray) -> Reply | Awaitable[Reply | None] | None:
        if self.session is not None:
            try:
                request = CLIENT_REQUESTS.decode(body)
            except InvalidMessage as exc:
                return Error.of(exc)
            self._announce = request.long_running
            return self.master.answer(self.session, request)
        if self.slave is not None:
            try:
                report = SLAVE_REPORTS.decode(body)
            except InvalidMessage as exc:
                return Error.of(exc)
            self._announce = report.long_running
            reply = self.master.report(self.slave, report)
            if reply is None:
                self._drop("superseded by a newer registration of the same slave")
            return reply
        return self._greet(body)

    def _greet(self, body: bytearray) -> Reply | Awaitable[Reply | None] | None:
        """The first frame: who the peer is, or the end of the connection."""
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
            self._greeting_timer = None
        try:
            greeting = GREETINGS.decode(body)
        except InvalidMessage as exc:
            self._send(refusal(exc), then_close=True)
            return None
        self._announce = greeting.long_running
        admitted = self.master.greet(self.peer, greeting)
        if isinstance(admitted, tuple):
            return self._admit(*admitted)
        return self._admit_later(admitted)

    def _admit(self, reply: Reply, peer: Session | Slave | None) -> Reply | None:
        if peer is None:
            self._send(reply, then_close=True)
            return None
        if isinstance(peer, Slave):
            self.slave = peer  # a member: its reports may be large (everything it holds)
        elif self.closing:  # the client left while its password was being checked
            self.master.end_session(peer)
            return None
        else:
            self.session = peer
            peer.push = self._push
            self.decoder.limit = SESSION_LIMIT
        return reply

    async def _admit_later(
        self, admitted: Awaitable[tuple[Reply, Session | Slave | None]]
    ) -> Reply | None:
        return self._admit(*await admitted)

    def _send(self, reply: Reply, then_close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(encode(reply))
        session = self.session
        if then_close or (session is not None and session.logged_out):
            self.closing = True
            self.transport.close()
        elif session is not None and session.stop_master:
            self.master.stop()  # only now: the reply to `shutdown` is on its way

    def _push(self, message: Message) -> None:
        """Send a message the peer did not ask for, between whole frames (a write is one)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def _drop(self, reason: str) -> None:
        log.warning("dropping connection from %s: %s", self.address, reason)
        self.closing = True
        if self.transport is not None:
            self.transport.close()
