"""A HiRELIABLE write streamed on to the next slave as it arrives (a chain, as HDFS's).

The client writes to the first slave only, sending each byte once; that slave
hands every chunk to :class:`Downstream` as it lands, which sends it on to the
next slave (which may pass it further: the chain travels in its ``write``),
and at commit asks that slave to commit too and brings back its receipts, so
that the client's ``close`` returns only once every replica holds the new
version. The conversation is the client's own, :class:`DataSession`, driven
over asyncio's socket calls (over TLS when the cluster sets DATA_ENCRYPTION:
``SlaveServer.dial_slave``): the slave never imports the client.

A link that fails - the next slave died, refused, or stopped reading for
:data:`STALL_TIMEOUT` - is dropped and the write carries on without it: the
commit then brings back fewer receipts, and the master makes the missing
replicas itself before it answers the close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..errors import SectorError
from ..protocol.data import ChainLink, CommitReply, DataSession
from ..protocol.framing import ProtocolError
from ..protocol.messages import Error
from ..transport import Channel

log = logging.getLogger("sector.slave")

#: Seconds the next slave may take to accept bytes (or answer the commit) before it is dropped.
STALL_TIMEOUT = 20.0
#: Seconds the next slave may take to commit (its fsync included).
COMMIT_TIMEOUT = 120.0


#: How a slave connects to another (plain, or TLS under DATA_ENCRYPTION: SlaveServer.dial_slave).
Dial = Callable[[tuple[str, int], float], Awaitable[Channel]]


class Downstream:
    """The next slave of one write's chain, while the write lasts."""

    def __init__(self, link: ChainLink, rest: list[ChainLink], dial: Dial):
        self.link, self.rest, self.dial = link, rest, dial
        self.channel: Channel | None = None
        self.session = DataSession()
        self.loop = asyncio.get_running_loop()

    @property
    def alive(self) -> bool:
        return self.channel is not None

    async def open(self) -> None:
        """Connect and start the write there; a failure only drops the link."""
        address = (self.link.host, self.link.port)
        try:
            self.channel = await self.dial(address, STALL_TIMEOUT)
            await self._send(self.session.begin_write(self.link.token, self.rest))
        except (OSError, asyncio.TimeoutError, SectorError, ValueError, OverflowError) as exc:
            # ValueError, OverflowError: a host name IDNA cannot encode, a port out of range
            self._drop(f"cannot reach it: {exc or type(exc).__name__}")

    async def put(self, offset: int, data: memoryview) -> None:
        """Pass ``data`` (written at ``offset``) on."""
        if self.channel is None:
            return
        try:
            await self._send(self.session.put(offset, len(data)))
            await self._send(data)
        except (OSError, asyncio.TimeoutError) as exc:
            self._drop(f"it stopped taking bytes: {exc or type(exc).__name__}")

    async def put_file(self, path: Path, size: int) -> None:
        """Pass on the first ``size`` bytes of a local file (a base version copied here)."""
        if self.channel is None or not size:
            return
        try:
            await self._send(self.session.put(0, size))
            with open(path, "rb") as source:
                await asyncio.wait_for(
                    self.channel.sendfile(source, 0, size), STALL_TIMEOUT + size / 1e6
                )
        except (OSError, asyncio.TimeoutError) as exc:
            self._drop(f"it stopped taking bytes: {exc or type(exc).__name__}")

    async def commit(self) -> list[bytes]:
        """Have the rest of the chain commit: the receipts of those that did."""
        if self.channel is None:
            return []
        try:
            await self._send(self.session.commit())
            reply = await asyncio.wait_for(self.channel.receive_reply(self.session), COMMIT_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ProtocolError) as exc:
            self._drop(f"its commit failed: {exc or type(exc).__name__}")
            return []
        self.close()
        if isinstance(reply, Error):
            log.warning("chain slave %s:%d refused the commit: %s", *self._address(), reply.msg)
            return []
        assert isinstance(reply, CommitReply)
        return [reply.receipt, *reply.more]

    async def abort(self) -> None:
        if self.channel is not None:
            try:
                await self._send(self.session.abort())
            except (OSError, asyncio.TimeoutError):
                pass
        self.close()

    def close(self) -> None:
        if self.channel is not None:
            self.channel.sock.close()
            self.channel = None

    async def _send(self, data: bytes | bytearray | memoryview) -> None:
        assert self.channel is not None
        await asyncio.wait_for(self.channel.sendall(data), STALL_TIMEOUT)

    def _drop(self, why: str) -> None:
        log.warning("dropping chain slave %s:%d from a write: %s", *self._address(), why)
        self.close()

    def _address(self) -> tuple[str, int]:
        return (self.link.host, self.link.port)
