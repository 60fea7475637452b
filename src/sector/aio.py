"""An asyncio client, for programs that do many things at once.

:class:`AsyncClient` speaks the same protocol as :class:`sector.client.Client`
with the same exceptions, but its calls are coroutines, and any number of them
may be in flight together on its one master connection: each request is sent
as soon as it is made and the replies, which the master sends in request
order, are matched to their callers in that order (pipelining). A thousand
``stat`` calls gathered at once cost about as many round trips as fit in the
socket buffers, not a thousand::

    async with AsyncClient("localhost", 6000) as client:
        await client.login("test", "xxx", "~/.sector/conf/master_node.cert")
        stats = await asyncio.gather(*(client.stat(p) for p in paths))
        data = await client.read_file("/docs/notes.txt")

Small files are read and written whole (:meth:`AsyncClient.read_file`,
:meth:`AsyncClient.write_file`) through the same sans-IO
:class:`~sector.protocol.data.DataSession` the blocking client drives, over
``transport.py``'s asyncio channels; the guarantees are the blocking client's
(a written file is on disk and visible, whole, once ``write_file`` returns;
every byte read is checked against its block sums). Large files and file
objects are the blocking client's business.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from . import certs
from .client.reading import READ_REQUEST
from .client.session import (
    MASTER_TIMEOUT,
    Stat,
    _normal,
    data_timeout_from,
    default_cert,
    master_trust,
    untrusted_master,
    verify_master,
)
from .errors import (
    E_NOCERT,
    InvalidError,
    SectorConnectionError,
    SectorError,
    SectorIsADirectoryError,
    SecurityError,
)
from .protocol import checksum
from .protocol import master as wire
from .protocol.data import DataSession
from .protocol.framing import FrameDecoder, ProtocolError, encode
from .protocol.messages import (
    PROTOCOL_VERSION,
    READ,
    SECURE,
    TRUNC,
    WRITE,
    Error,
    Request,
    Vocabulary,
    Working,
    replies_to,
)
from .transport import (
    Channel,
    TlsChannel,
    client_tls_context,
    dial,
    still_open,
)

__all__ = ["AsyncClient"]

CONNECT_TIMEOUT = 5.0
T = TypeVar("T")
#: Idle data connections kept per slave (as the blocking client's pool).
POOL_SIZE = 8
#: Requests sent and not yet answered, at most; more calls wait their turn. It bounds the
#: memory a program gathering a million calls costs. Not a speed limit: a window past ~64
#: gains nothing (one client's ``stat_many``, see ``PIPELINE_DEPTH``), and the master reads
#: at most 256 requests ahead of its answers anyway.
MAX_IN_FLIGHT = 512


class AsyncClient:
    """A logged-in session with one Sector master, for asyncio.

    Every coroutine may run concurrently with the others; they share one
    pipelined master connection and a pool of data connections. A broken
    master connection is dialled again and the session logged in again by
    the next call, which is retried once (as the blocking client does).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6000,
        timeout: float = MASTER_TIMEOUT,
        *,
        data_timeout: float | None = None,
    ):
        """``timeout``: seconds the master may stay silent while answers are due before
        the calls waiting fail. ``data_timeout``: seconds a slave may take over one
        small-file read or write (``$SECTOR_DATA_TIMEOUT``, else 30)."""
        if not timeout > 0:
            raise InvalidError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.host, self.port, self.timeout = host, port, float(timeout)
        self.data_timeout = (
            data_timeout
            if data_timeout is not None
            else data_timeout_from(os.environ.get("SECTOR_DATA_TIMEOUT"))
        )
        self.user: str | None = None
        self.rights = wire.Rights()
        self._credentials: tuple[str, str, Path] | None = None
        self._link: _MasterLink | None = None
        self._dialling = asyncio.Lock()
        self._pool: dict[tuple[str, int, bool], list[Channel]] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the session ----------------------------------------------------------------------

    async def login(self, user: str, password: str, cert: str | os.PathLike | None = None) -> None:
        """Connect over TLS, check the master against ``cert``, and authenticate.

        Raises SecurityError (E_NOCERT, E_SECURITY, E_ACCOUNT, E_PASSWORD,
        E_ACL) or SectorConnectionError, as ``Client.login`` does.
        """
        cert_path = Path(cert).expanduser() if cert else default_cert()
        if not cert_path.is_file():
            raise SecurityError(f"certificate {cert_path} not found", code=E_NOCERT)
        async with self._dialling:
            self._hang_up()
            self._credentials = (user, password, cert_path)
            try:
                self._link = await self._dial()
            except SectorError:
                self._credentials = None  # refused: calls say "not logged in", not this again
                raise

    async def close(self) -> None:
        """Log out and drop every connection; never raises."""
        link, self._link = self._link, None
        if link is not None and not link.broken:
            try:
                await link.ask(wire.Logout())
            except SectorError:
                pass
        if link is not None:
            link.close()
        self._credentials = None
        self.user, self.rights = None, wire.Rights()
        for channels in self._pool.values():
            for channel in channels:
                channel.sock.close()
        self._pool.clear()

    async def call(self, request: Request) -> Any:
        """Send one request (a message of :mod:`sector.protocol.master`) and return its
        reply, or raise the exception its error reply stands for. Calls made
        together travel together: each is sent at once, without waiting for the
        replies before it."""
        if not isinstance(request, Request):
            raise TypeError(f"call() takes a request message, not {type(request).__name__}")
        for attempt in (1, 2):
            try:
                reply = await (await self._session()).ask(request)
                break
            except SectorConnectionError as exc:
                if attempt == 2 or not request.survives_reconnect or isinstance(exc, _Silent):
                    raise
        if isinstance(reply, Error):
            raise reply.exception()
        return reply

    async def _session(self) -> _MasterLink:
        """The live master connection, dialled and logged in again if it broke."""
        link = self._link
        if link is not None and not link.broken:
            return link
        async with self._dialling:  # one dial for all the calls that found it broken
            if self._link is None or self._link.broken:
                if self._credentials is None:
                    raise SecurityError("not logged in: call login() first")
                self._link = await self._dial()
            return self._link

    async def _dial(self) -> _MasterLink:
        assert self._credentials is not None
        user, password, cert_path = self._credentials
        context, master_der = master_trust(cert_path)
        loop = asyncio.get_running_loop()
        try:
            transport, link = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _MasterLink(loop, self.timeout, f"{self.host}:{self.port}"),
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=self.host,
                ),
                min(CONNECT_TIMEOUT, self.timeout),
            )
        except ssl.SSLCertVerificationError as exc:
            raise untrusted_master(f"{self.host}:{self.port}", cert_path, exc) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise SectorConnectionError(
                f"cannot reach the master at {self.host}:{self.port}: {exc or 'timed out'}"
            ) from None
        try:
            peer = transport.get_extra_info("ssl_object").getpeercert(True)
            verify_master(peer, master_der, f"{self.host}:{self.port}", cert_path)
        except SecurityError:
            link.close()
            raise
        reply = await link.ask(wire.Login(PROTOCOL_VERSION, user, password))
        if isinstance(reply, Error):
            link.close()
            raise reply.exception()
        self.user, self.rights = user, reply.rights
        return link

    def _hang_up(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    # --- the namespace --------------------------------------------------------------------

    async def stat(self, path: str) -> Stat:
        """A file's or directory's :class:`~sector.client.Stat`.

        Raises FileNotFoundError (E_NOEXIST), PermissionError (E_PERMISSION).
        """
        return Stat.from_entry((await self.call(wire.Stat(_normal(path)))).entry)

    async def ls(self, path: str = "/") -> list[Stat]:
        """A directory's entries, sorted by name (a file lists as itself)."""
        return Stat.listed(await self.call(wire.Ls(_normal(path))))

    async def exists(self, path: str) -> bool:
        """True if something is at ``path``; raises only for other errors."""
        try:
            await self.stat(path)
        except FileNotFoundError:
            return False
        return True

    async def mkdir(self, path: str) -> None:
        """Create a directory and any missing parents; FileExistsError if it is there."""
        await self.call(wire.Mkdir(_normal(path)))

    async def rm(self, path: str, recursive: bool = True) -> None:
        """Remove a file or directory; FileNotFoundError, E_NOEMPTY without ``recursive``."""
        await self.call(wire.Rm(_normal(path), recursive))

    async def move(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Rename a file or directory, as ``Client.move`` does."""
        await self.call(wire.Move(_normal(src), _normal(dst), overwrite))

    async def copy(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Copy a file inside Sector (the slave copies the bytes), as ``Client.copy`` does."""
        await self.call(wire.Copy(_normal(src), _normal(dst), overwrite))

    async def gather(self, requests: Iterable[Request]) -> list[Any]:
        """Each request's reply or the exception its error stands for, in order; raised
        for none (``Client.call_many`` for asyncio: all pipelined at once)."""
        return await asyncio.gather(*(self.call(r) for r in requests), return_exceptions=True)

    # --- small files ----------------------------------------------------------------------

    async def read_file(self, path: str, *, secure: bool = False) -> bytes:
        """A file's whole content, every block checked against its sums.

        A replica that cannot be reached or sends bad bytes is given up for
        the next. Raises FileNotFoundError, PermissionError, IsADirectoryError,
        SectorConnectionError when no replica could be read.
        """
        grant = await self.call(wire.Open(_normal(path), READ | (SECURE if secure else 0)))
        assert isinstance(grant, wire.ReadGrant)
        if grant.size == 0:
            return b""
        failures: list[str] = []
        for address in grant.replicas:
            try:
                return await asyncio.wait_for(self._fetch(path, grant, address), self.data_timeout)
            except (OSError, ProtocolError, SectorError, asyncio.TimeoutError) as exc:
                failures.append(f"{address[0]}:{address[1]}: {exc or 'timed out'}")
        raise SectorConnectionError(
            f"no replica of {path} could be read ({'; '.join(failures) or 'none is live'})", path
        )

    async def _fetch(self, path: str, grant: wire.ReadGrant, address: tuple[str, int]) -> bytes:
        """The whole file from the replica at ``address``, checked block by block and
        against the checksum the master names for this version."""
        data = bytearray(grant.size)
        sums = bytearray()

        async def talk(channel: Channel, session: DataSession) -> None:
            for start in range(0, grant.size, READ_REQUEST):
                length = min(READ_REQUEST, grant.size - start)
                await channel.sendall(session.read(start, length, grant.token_for(address)))
                reply = await channel.receive_reply(session)
                if isinstance(reply, Error):
                    raise reply.exception(path)
                if reply.length != length:
                    raise ProtocolError(f"the slave sent {reply.length} bytes of {length}")
                part = memoryview(data)[start : start + length]
                if await channel.recv_exact_into(part) < length:
                    raise ConnectionError("the slave closed the connection mid-read")
                session.received_raw(length)
                if checksum.first_bad_block(part, reply.sums) is not None:
                    raise ProtocolError("bytes that do not match their block sums")
                sums.extend(reply.sums)

        await self._converse(address, grant.secure, talk)
        if checksum.of_sums(sums) != grant.checksum:
            raise ProtocolError("the replica holds another version than the master names")
        return bytes(data)

    async def write_file(
        self,
        path: str,
        data: bytes | bytearray | memoryview,
        *,
        exclusive: bool = False,
        secure: bool = False,
    ) -> Stat:
        """Replace (or create) a file with ``data``; its :class:`Stat` once committed.

        As closing a file the blocking client wrote: the new version is on the
        slave's disk and visible to everyone, whole, when this returns, and a
        failure leaves the previous version in place. With ``exclusive`` an
        existing file (or one being created) is FileExistsError.
        """
        mode = WRITE | TRUNC | (SECURE if secure else 0)
        grant = await self.call(
            wire.Open(_normal(path), mode, "exclusive" if exclusive else "allow")
        )
        if not isinstance(grant, wire.WriteGrant):
            raise SectorIsADirectoryError("the master granted no write", path)
        try:
            receipt = await asyncio.wait_for(self._store(path, grant, data), self.data_timeout)
        except BaseException as exc:
            await self._abort(grant)
            if isinstance(exc, (OSError, ProtocolError, asyncio.TimeoutError)) and not isinstance(
                exc, SectorError
            ):
                raise SectorConnectionError(
                    f"slave connection broke while writing: {exc or 'timed out'}", path
                ) from None
            raise
        closed = wire.recorded(receipt)
        if isinstance(closed, Error):
            raise closed.exception(path)
        if closed is None:  # the slave could not report it (or a HiRELIABLE chain)
            closed = await self.call(wire.Close(grant.lease, receipt.receipt, receipt.more))
        return Stat.from_entry(closed.entry)

    async def _store(
        self, path: str, grant: wire.WriteGrant, data: bytes | bytearray | memoryview
    ) -> Any:
        """Send the bytes and the commit in one go; the slave's commit reply."""

        async def talk(channel: Channel, session: DataSession) -> Any:
            # the slave has the master record the commit (not a chain's: see SectorFile)
            frames = [session.begin_write(grant.token, grant.chain, not grant.chain)]
            if len(data):
                frames += [session.put(0, len(data)), data]
            frames.append(session.commit())
            await channel.sendall(b"".join(frames))
            reply = await channel.receive_reply(session)
            if isinstance(reply, Error):
                raise reply.exception(path)
            return reply

        return await self._converse((grant.slave[0], int(grant.slave[1])), grant.secure, talk)

    async def _abort(self, grant: wire.WriteGrant) -> None:
        try:
            await self.call(wire.Abort(grant.lease))
        except SectorError:
            pass  # the master ends a lease nobody keeps alive, too

    # --- data connections -----------------------------------------------------------------

    async def _data_channel(self, address: tuple[str, int], secure: bool) -> Channel:
        idle = self._pool.get((*address, secure))
        while idle:
            channel = idle.pop()
            if still_open(channel.sock):
                return channel
            channel.sock.close()
        context = None
        if secure:
            if self._credentials is None:
                raise SecurityError("not logged in: call login() first")
            context = client_tls_context(self._credentials[2])
        try:
            channel = await dial(asyncio.get_running_loop(), address, context, CONNECT_TIMEOUT)
        except ssl.SSLError as exc:
            raise SecurityError(
                f"slave {address[0]}:{address[1]} failed the TLS check: {exc}"
            ) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise SectorConnectionError(
                f"cannot reach slave {address[0]}:{address[1]}: {exc or 'timed out'}"
            ) from None
        if isinstance(channel, TlsChannel):
            found = certs.identity(channel.peer_certificate())
            if found is None or found.role != certs.ROLE_SLAVE:
                channel.sock.close()
                raise SecurityError(f"{address[0]}:{address[1]} is not a slave of this cluster")
        return channel

    async def _converse(
        self,
        address: tuple[str, int],
        secure: bool,
        talk: Callable[[Channel, DataSession], Awaitable[T]],
    ) -> T:
        """Run ``talk`` on a data connection to ``address``: one from the pool, back to it
        afterwards with nothing in flight; closed if ``talk`` fails or is cancelled."""
        channel = await self._data_channel(address, secure)
        session = DataSession()
        try:
            result = await talk(channel, session)
        except BaseException:
            channel.sock.close()
            raise
        idle = self._pool.setdefault((*address, secure), [])
        if session.idle and len(idle) < POOL_SIZE:
            idle.append(channel)
        else:
            channel.sock.close()
        return result


class _MasterLink(asyncio.Protocol):
    """The master connection: requests go out as they are made, replies are matched to
    the oldest unanswered request (the master answers in order).

    Silence is watched, not each call: while answers are due, a timer checks
    that something arrived within ``timeout`` (the master sends ``Working``
    during long requests), and fails every waiting call when nothing did.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, name: str):
        self.loop, self.timeout, self.name = loop, timeout, name
        self.transport: asyncio.Transport | None = None
        self.broken = False
        self._decoder = FrameDecoder()
        self._waiting: deque[tuple[Vocabulary, asyncio.Future[Any]]] = deque()
        self._heard = 0.0  # loop time of the last frame, or of the first call after a lull
        self._watchdog: asyncio.TimerHandle | None = None
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    async def ask(self, request: Request) -> Any:
        """Send ``request``; its reply (or Error) when the master's answers reach it."""
        async with self._slots:
            if self.broken or self.transport is None:
                raise SectorConnectionError(f"connection to the master at {self.name} broke")
            answer: asyncio.Future[Any] = self.loop.create_future()
            if not self._waiting:
                self._heard = self.loop.time()
                if self._watchdog is None:
                    self._watchdog = self.loop.call_later(self.timeout, self._check_silence)
            self._waiting.append((replies_to(type(request)), answer))
            self.transport.write(encode(request))
            return await answer

    def data_received(self, data: bytes) -> None:
        self._heard = self.loop.time()
        self._decoder.feed(data)
        try:
            for body in self._decoder:
                self._deliver(body)
        except ProtocolError as exc:
            self._fail(SectorConnectionError(f"connection to the master broke: {exc}"))

    def _deliver(self, body: bytearray) -> None:
        """One frame from the master: the reply to the oldest request still waiting (the
        one place frames are read)."""
        if not self._waiting:
            raise ProtocolError("the master sent a frame nobody asked for")
        vocabulary, answer = self._waiting[0]
        reply = vocabulary.decode(body)
        if isinstance(reply, Working):
            return
        self._waiting.popleft()
        if not answer.done():  # (a caller that was cancelled no longer wants it)
            answer.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SectorConnectionError(f"connection to the master broke: {exc or 'closed'}"))

    def _check_silence(self) -> None:
        self._watchdog = None
        if self.broken or not self._waiting:
            return
        quiet = self.loop.time() - self._heard
        if quiet >= self.timeout:
            self._fail(
                _Silent(
                    f"the master at {self.name} said nothing for {self.timeout:g} s "
                    "(MASTER_TIMEOUT in client.conf)"
                )
            )
            return
        self._watchdog = self.loop.call_later(self.timeout - quiet, self._check_silence)

    def _fail(self, error: SectorConnectionError) -> None:
        """Every waiting call gets ``error``; the connection is done."""
        self.broken = True
        while self._waiting:
            _, answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error)
        self.close()

    def close(self) -> None:
        self.broken = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.close()


class _Silent(SectorConnectionError):
    """The master said nothing for the timeout (not worth an immediate retry)."""
