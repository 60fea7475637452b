"""The slave process: a data server for clients and a link to the master.

Data connections use asyncio's low-level socket calls so bulk bytes move with
``sendfile`` (reads) and ``recv_into`` a reused buffer (writes) and are never
copied into Python objects. Every request carries a token the master signed;
a request without a valid one is refused and the connection stays usable.
A write's errors are sticky: the client streams without waiting for replies,
and learns of any failure from the reply to ``commit``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import mmap
import os
import socket
import time
from typing import Any

from ..config import SlaveSettings
from ..errors import (
    E_BUSY,
    E_CONNECTION,
    E_EXPIRED,
    E_INVALID,
    E_NODISK,
    E_NOEXIST,
    E_SECURITY,
    E_UNKNOWN,
)
from ..protocol import tokens
from ..protocol.framing import HEADER_SIZE, Message, ProtocolError, body_length, decode_body, encode
from ..protocol.messages import fail, ok
from ..transport import client_tls_context, read_frame, write_frame
from .storage import Storage, WriteSession

log = logging.getLogger("sector.slave")

RECV_BUFFER = 4 * 1024 * 1024
#: A received chunk at least this large is written on a helper thread while the next
#: one arrives: profiling a 1 GiB upload (``python -m bench.profile --phase upload``)
#: showed the loop spending 44 % in pwrite + hash and 35 % in recv, one after the other.
THREADED_WRITE = 1024 * 1024
RECEIPT_TTL = 3600.0
REGISTERED_FILE = "slave.registered"


class _StickyError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class SlaveServer:
    def __init__(self, settings: SlaveSettings):
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self.key: bytes | None = None
        self.registered = asyncio.Event()
        self.started = time.time()
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self.address: tuple[str, int] = (settings.host, settings.port)

    @property
    def slave_id(self) -> str:
        return self.storage.slave_id

    async def start(self) -> tuple[str, int]:
        listener = socket.create_server(
            (self.settings.host, self.settings.port), reuse_port=False, backlog=512
        )
        listener.setblocking(False)
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._spawn(self._accept_loop())
        self._spawn(self._master_loop())
        log.info(
            "slave %s serving %s on %s:%d", self.slave_id, self.settings.data_dir, *self.address
        )
        return self.address

    async def serve_forever(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        self._mark_registered(False)
        if self._listener is not None:
            self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(DataConnection(self, conn).serve())

    async def _master_loop(self) -> None:
        """Stay registered with the master; re-register after any break, forever."""
        context = client_tls_context(self.settings.cert)
        delay = 0.1
        while True:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.settings.master, ssl=context), 10
                )
                advertised = self.address[0]
                if advertised in ("0.0.0.0", "::", ""):
                    advertised = writer.get_extra_info("sockname")[0]
                await write_frame(
                    writer,
                    {
                        "op": "register",
                        "slave_id": self.slave_id,
                        "host": advertised,
                        "port": self.address[1],
                        "objects": self.storage.inventory(),
                        **self.storage.usage(),
                    },
                )
                reply = await asyncio.wait_for(read_frame(reader), 60)
                if reply is None or not reply.get("ok"):
                    log.error("master refused registration: %s", reply and reply.get("msg"))
                    raise ConnectionError("registration refused")
                self.key = reply["key"]
                for oid, version in reply.get("delete") or []:
                    self.storage.delete(int(oid), int(version))
                interval = float(reply.get("heartbeat", 5.0))
                self.registered.set()
                self._mark_registered(True)
                log.info("registered with master %s:%d", *self.settings.master)
                delay = 0.1
                while True:
                    await asyncio.sleep(interval)
                    await write_frame(writer, {"op": "heartbeat", **self.storage.usage()})
                    if await asyncio.wait_for(read_frame(reader), 30) is None:
                        raise ConnectionError("master closed the connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: reconnect later
                if self.registered.is_set():
                    log.warning("lost the master (%s); reconnecting", exc)
                self.registered.clear()
                self._mark_registered(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                if writer is not None:
                    writer.close()

    def _mark_registered(self, registered: bool) -> None:
        """``slave.registered`` exists exactly while we are registered: launchers wait on it."""
        path = self.settings.data_dir / REGISTERED_FILE
        if registered:
            path.write_text("{}:{}\n".format(*self.settings.master))
        else:
            path.unlink(missing_ok=True)

    def verify(self, token: object, kind: str) -> dict[str, Any]:
        if self.key is None:
            raise _StickyError(E_CONNECTION, "slave is not registered with a master yet")
        try:
            claims = tokens.verify(self.key, token)
        except tokens.TokenError as exc:
            code = E_EXPIRED if "expired" in str(exc) else E_SECURITY
            raise _StickyError(code, str(exc)) from None
        if claims.get("kind") != kind:
            raise _StickyError(E_SECURITY, "token is not valid for this operation")
        if kind in ("w", "admin") and claims.get("slave") != self.slave_id:
            raise _StickyError(E_SECURITY, "token was issued for another slave")
        return claims

    def check_space(self, size: int) -> None:
        limit = self.settings.max_data_size
        if limit and self.storage.stored_bytes + size > limit:
            raise _StickyError(E_NODISK, "slave storage limit (MAX_DATA_SIZE) reached")


class DataConnection:
    """One client (or master) connection to the slave's port."""

    def __init__(self, server: SlaveServer, sock: socket.socket):
        self.server = server
        self.storage = server.storage
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.write: WriteSession | None = None
        self.write_error: _StickyError | None = None
        self.open_files: dict[tuple[int, int], Any] = {}
        self.buffer = mmap.mmap(-1, RECV_BUFFER)  # page-aligned, for O_DIRECT writes
        self.spare: mmap.mmap | None = None

    async def serve(self) -> None:
        try:
            while (request := await self._recv_frame()) is not None:
                reply = await self._handle(request)
                if reply is not None:
                    await self.loop.sock_sendall(self.sock, encode(reply))
        except (ConnectionError, ProtocolError, OSError) as exc:
            log.debug("data connection ended: %s", exc)
        except asyncio.CancelledError:
            pass  # the slave is shutting down
        except Exception:
            log.exception("dropping a data connection after an unexpected error")
        finally:
            self._end_write()
            for handle in self.open_files.values():
                handle.close()
            self.sock.close()

    async def _recv_exact(self, size: int) -> bytearray | None:
        data = bytearray(size)
        view = memoryview(data)
        got = 0
        while got < size:
            n = await self.loop.sock_recv_into(self.sock, view[got:])
            if n == 0:
                if got == 0:
                    return None
                raise ConnectionError("connection closed mid-frame")
            got += n
        return data

    async def _recv_frame(self) -> Message | None:
        header = await self._recv_exact(HEADER_SIZE)
        if header is None:
            return None
        body = await self._recv_exact(body_length(bytes(header)))
        if body is None:
            raise ConnectionError("connection closed mid-frame")
        return decode_body(body)

    async def _handle(self, request: Message) -> Message | None:
        op = request.get("op")
        try:
            if op == "read":
                return await self._read(request)
            if op == "write":
                await self._begin_write(request)
                return None
            if op == "put":
                await self._put(request)
                return None
            if op == "commit":
                return await self._commit()
            if op == "abort":
                self._end_write()
                return None
            if op in ("delete", "copy", "verify", "shutdown"):
                return await self._admin(op, request)
            return fail(E_INVALID, f"unknown operation {op!r}")
        except _StickyError as exc:
            return fail(exc.code, str(exc))

    async def _read(self, request: Message) -> Message | None:
        offset, length = request.get("offset", 0), request.get("length", 0)
        if not (isinstance(offset, int) and isinstance(length, int)) or offset < 0 or length < 0:
            return fail(E_INVALID, "read needs a non-negative offset and length")
        if request.get("token") is None and self.write is not None:
            data = self.write.read_at(offset, length)
            await self.loop.sock_sendall(self.sock, encode(ok(length=len(data))) + data)
            return None
        claims = self.server.verify(request.get("token"), "r")
        key = (int(claims["oid"]), int(claims["v"]))
        handle = self.open_files.get(key)
        if handle is None:
            obj = self.storage.find(*key)
            if obj is None:
                return fail(E_NOEXIST, "this slave does not hold that file version")
            handle = open(obj.path, "rb")  # noqa: SIM115 - kept open for the connection
            if len(self.open_files) >= 16:
                self.open_files.pop(next(iter(self.open_files))).close()
            self.open_files[key] = handle
        size = os.fstat(handle.fileno()).st_size
        count = max(0, min(length, size - offset))
        await self.loop.sock_sendall(self.sock, encode(ok(length=count)))
        if count:
            await self.loop.sock_sendfile(self.sock, handle, offset, count)
        return None

    async def _begin_write(self, request: Message) -> None:
        self._end_write()
        try:
            claims = self.server.verify(request.get("token"), "w")
            oid, version = int(claims["oid"]), int(claims["v"])
            if self.storage.find(oid, version) is not None:
                raise _StickyError(E_BUSY, "that version is already committed")
            base = int(claims.get("base", 0))
            begin = functools.partial(
                WriteSession.begin, self.storage, oid, version, int(claims["lease"]), base
            )
            # Starting empty is one open(): cheaper than a hop to a thread and back;
            # copying a base version is not.
            self.write = await self.loop.run_in_executor(None, begin) if base else begin()
        except _StickyError as exc:
            self.write_error = exc
        except FileNotFoundError as exc:
            self.write_error = _StickyError(E_NOEXIST, str(exc))
        except OSError as exc:
            self.write_error = _disk_error(exc)

    async def _put(self, request: Message) -> None:
        offset, length = request.get("offset"), request.get("length")
        if not (isinstance(offset, int) and isinstance(length, int)) or offset < 0 or length < 0:
            raise ProtocolError("put needs a non-negative offset and length")
        if self.write is None and self.write_error is None:
            self.write_error = _StickyError(E_INVALID, "put without a write session")
        if self.write is not None and self.write_error is None:
            try:
                self.server.check_space(max(0, offset + length - self.write.size))
            except _StickyError as exc:
                self.write_error = exc
        position = offset
        remaining = length
        in_flight: asyncio.Future | None = None
        spare = False  # which buffer to fill: never the one a thread is writing from
        try:
            while remaining:
                view = self._spare_buffer() if spare else memoryview(self.buffer)
                filled = 0
                wanted = min(remaining, len(view))
                while filled < wanted:
                    n = await self.loop.sock_recv_into(self.sock, view[filled:wanted])
                    if n == 0:
                        raise ConnectionError("connection closed during a put")
                    filled += n
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                if self.write is not None and self.write_error is None:
                    if filled >= THREADED_WRITE:
                        # the disk write runs on a thread while the next buffer fills
                        in_flight = self.loop.run_in_executor(
                            None, self._write_chunk, position, view[:filled]
                        )
                        spare = not spare
                    else:
                        self._write_chunk(position, view[:filled])
                position += filled
                remaining -= filled
        finally:
            if in_flight is not None:
                await in_flight

    def _write_chunk(self, position: int, view: memoryview) -> None:
        """Write (and hash) one received chunk; a disk error becomes the sticky error.

        The chunk always starts at the start of a page-aligned (mmap) buffer.
        """
        assert self.write is not None
        try:
            self.write.write_at(position, view, aligned=True)
        except OSError as exc:
            self.write_error = _disk_error(exc)

    def _spare_buffer(self) -> memoryview:
        """The second receive buffer, made on first use (only large puts need it)."""
        if self.spare is None:
            self.spare = mmap.mmap(-1, RECV_BUFFER)
        return memoryview(self.spare)

    async def _commit(self) -> Message:
        if self.write_error is not None:
            error, self.write_error = self.write_error, None
            self._end_write()
            return fail(error.code, str(error))
        write = self.write
        if write is None:
            return fail(E_INVALID, "commit without a write session")
        self.write = None
        try:
            size, checksum = await self.loop.run_in_executor(None, write.commit)
        except OSError as exc:
            write.discard()
            error = _disk_error(exc)
            return fail(error.code, str(error))
        assert self.server.key is not None
        receipt = tokens.sign(
            self.server.key,
            {
                "oid": write.oid,
                "v": write.version,
                "size": size,
                "checksum": checksum,
                "slave": self.server.slave_id,
                "lease": write.lease,
            },
            ttl=RECEIPT_TTL,
        )
        return ok(receipt=receipt, size=size, checksum=checksum)

    def _end_write(self) -> None:
        if self.write is not None:
            self.write.discard()
            self.write = None
        self.write_error = None

    async def _admin(self, op: str, request: Message) -> Message:
        self.server.verify(request.get("token"), "admin")
        objects = request.get("objects") or []
        if op == "delete":
            removed = sum(self.storage.delete(int(o), int(v)) for o, v in objects)
            return ok(deleted=removed)
        if op == "copy":
            src, dst = request.get("src"), request.get("dst")
            try:
                size, checksum = await self.loop.run_in_executor(
                    None,
                    self.storage.copy,
                    tuple(src),
                    tuple(dst),  # type: ignore[arg-type]
                )
            except FileNotFoundError as exc:
                return fail(E_NOEXIST, str(exc))
            except OSError as exc:
                error = _disk_error(exc)
                return fail(error.code, str(error))
            return ok(size=size, checksum=checksum)
        if op == "verify":
            damaged, missing = [], []
            for oid, version in objects:
                good = await self.loop.run_in_executor(
                    None, self.storage.verify, int(oid), int(version)
                )
                if good is None:
                    missing.append([oid, version])
                elif not good:
                    damaged.append([oid, version])
            return ok(damaged=damaged, missing=missing)
        if op == "shutdown":
            log.info("shutdown requested by the master")
            self.server.stop()
            return ok()
        return fail(E_UNKNOWN, f"unhandled admin operation {op}")


def _disk_error(exc: OSError) -> _StickyError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _StickyError(E_NODISK, "slave disk is full")
    return _StickyError(E_UNKNOWN, f"slave storage error: {exc}")
