"""The master process: its parts wired together, a TLS listener, one error boundary.

Each part has one job and is handed what it needs:

* :class:`~.sessions.Sessions` - logins and logouts;
* :class:`~.tree.Tree` - stat, ls, mkdir, rm, move, copy;
* :class:`~.files.Files` - open, close, abort: grants, leases, commits;
* :class:`~.admin.Admin` - ping, sysinfo, fsck, shutdown;
* :class:`~.cache_leases.CacheLeases` - the ``stat`` replies clients may cache, and
  their recall before a change is acknowledged;
* :class:`~.membership.Membership` - slaves registering and reporting;
* :class:`~.integrity.Integrity` - damaged replicas: reported, checked, given up;
* :class:`~.replication.Replication` - every file kept at its replica target
  (with :class:`~.targets.Targets`, :class:`~.safety.Safety` and the people's
  say over it, :class:`~.stewardship.Stewardship`);
* :class:`~.slaves.Registry`, :class:`~.placement.Placement`, :class:`~.links.Links` -
  which slaves are alive, where bytes go, and the orders sent to slaves;
* :class:`~.status.Status` and :class:`~.metrics.Metrics` - the cluster at a
  glance and the counts behind ``/metrics``, served with the dashboard
  (:mod:`.web`) when ``HTTP_PORT`` is set.

Every handler is found through a table built from the ``@handles`` marks
(:func:`~sector.protocol.messages.handler_table`), one per connection state,
and every exception a client request raises becomes its error reply in
:meth:`MasterServer.answer` and nowhere else.

One asyncio event loop owns everything (store, leases, slave registry), so no
locks are needed: each request runs to completion between awaits. Requests on a
connection are answered in order; a request that fails gets an error reply and
the connection carries on, and a connection that sends garbage is closed
without disturbing anyone else. Time is read from an injected clock
(:mod:`sector.clock`) wherever something expires.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any

from ..certs import Authority
from ..clock import SYSTEM, Clock
from ..config import MasterSettings
from ..logs import RecentEvents
from ..protocol import tokens
from ..protocol.master import CLIENT_REQUESTS, GREETINGS, SLAVE_REPORTS, Login
from ..protocol.messages import Error, Message, Reply, Request, handler_table, is_expected
from ..transport import server_tls_context
from .admin import Admin
from .cache_leases import CacheLeases
from .connection import MasterConnection
from .files import Files
from .integrity import Integrity
from .leases import Leases
from .links import Links
from .membership import Membership
from .metrics import PROTOCOL, Metrics
from .namespace import Namespace
from .placement import Placement
from .replication import Replication
from .safety import Safety
from .sessions import Peer, Session, Sessions
from .slaves import Registry, Slave
from .status import Health, Status
from .stewardship import Stewardship
from .store import Store
from .targets import Targets
from .topology import Topology
from .tree import Tree
from .users import Users

log = logging.getLogger("sector.master")


class MasterServer:
    def __init__(self, settings: MasterSettings, clock: Clock = SYSTEM):
        self.settings = settings
        self.clock = clock
        settings.home.mkdir(parents=True, exist_ok=True)
        self.keys = tokens.KeyRing(_load_key(settings.home / "token.key"))
        self.authority = Authority.load(settings.cert, settings.key)
        self.clock = clock
        self.store = Store(settings.home / "metadata.db", clock)
        self.namespace = namespace = Namespace(self.store)
        self.cache_leases = CacheLeases(self.store, clock)
        self.leases = leases = Leases(first_id=self.store.lease_base())
        self.registry = Registry(clock, settings.slave_timeout, settings.topology)
        self.links = Links(self.registry, self.keys, clock)
        placement = Placement(
            self.registry,
            self.store,
            settings.slave_min_disk_space,
            Topology(settings.topology),
        )
        self.safety = Safety()
        self.replication = Replication(
            self.store,
            self.registry,
            placement,
            Targets(self.store, settings.replica_num, settings.replica_rules),
            self.links,
            self.safety,
            self.keys,
            clock,
            settings.token_ttl,
            settle=settings.slave_timeout + settings.heartbeat_interval,
        )
        users = Users.load(settings.conf_dir / "users", settings.reveal_unknown_users)
        self.sessions = Sessions(users, settings.master_acl, clock, settings.client_timeout)
        self.files = Files(
            self.store,
            namespace,
            leases,
            placement,
            self.links,
            self.replication,
            self.keys,
            settings.token_ttl,
            clock,
            settings.data_encryption,
        )
        tree = Tree(
            self.store,
            namespace,
            leases,
            placement,
            self.links,
            self.replication,
            self.cache_leases,
        )
        self.integrity = Integrity(
            self.store, self.registry, self.links, self.spawn, self.replication.replica_lost
        )
        admin = Admin(
            self.store,
            namespace,
            self.registry,
            placement,
            self.links,
            self.replication,
            clock,
            self.bound_address,
            settings.replica_num,
            self.integrity.replica_lost,
        )
        self.membership = Membership(
            self.registry,
            self.links,
            self.store,
            leases,
            self.replication,
            self.safety,
            self.keys,
            self.authority,
            settings.slave_acl,
            settings.heartbeat_interval,
            clock,
            settings.inventory_interval,
            orphan_grace=settings.token_ttl,
            data_encryption=settings.data_encryption,
        )
        stewardship = Stewardship(
            self.store, namespace, self.registry, self.replication, self.safety, leases
        )
        parts = (
            self.sessions,
            tree,
            self.files,
            admin,
            self.membership,
            self.integrity,
            stewardship,
            self.cache_leases,
        )
        self.status = Status(
            self.store,
            self.registry,
            leases,
            clock,
            self.bound_address,
            settings.replica_num,
            self._replication_health,
        )
        self.metrics = Metrics([*GREETINGS, *CLIENT_REQUESTS, *SLAVE_REPORTS])
        self.metrics.watch(self.status)
        self.greetings = handler_table(*parts, vocabulary=GREETINGS)
        self.client_ops = handler_table(*parts, vocabulary=CLIENT_REQUESTS)
        self.slave_reports = handler_table(*parts, vocabulary=SLAVE_REPORTS)
        for table in (self.greetings, self.client_ops, self.slave_reports):
            _check_waiting_is_announced(table)
        #: The latest warnings and errors logged in this process, for the dashboard.
        self.events = RecentEvents()
        self.dashboard: Any = None  # a web.Dashboard while HTTP_PORT serves it
        self.server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()

    # --- what connections ask of the master ---------------------------------------------

    def answer(self, session: Session, request: Request) -> Reply | Awaitable[Reply] | None:
        """A client request's reply; the few that must wait return an awaitable one,
        and a request without replies (``cache-release``) None.

        The error boundary of client requests: whatever a handler raises
        becomes an :class:`Error` reply here (and is logged when it is a bug).
        A change that broke other clients' cache leases is answered only once
        they let go (:meth:`.CacheLeases.recalls`). Every request is timed and
        counted here too (:mod:`.metrics`); the clock is ``time.perf_counter``,
        not the injected one, because this measures the work, whatever time a
        test pretends it is.
        """
        started = time.perf_counter()
        if _tracing():
            log.debug("%s %r", session.user.name, request)
        session.last_active = self.clock.monotonic()
        return self._dispatch(self.client_ops[type(request)], session, request, started)

    async def _answer_later(
        self,
        request: Request,
        started: float,
        pending: Awaitable[Reply] | Reply,
        recalls: list[asyncio.Future[None]],
    ) -> Reply:
        with self.cache_leases.recalls() as more:
            try:
                reply = pending if isinstance(pending, Reply) else await pending
            except Exception as exc:
                reply = _failure(request, exc)
        if recalls or more:
            await asyncio.wait([*recalls, *more])
        self.metrics.answered(type(request), started, reply)
        return reply

    def greet(self, peer: Peer, greeting: Request) -> Any:
        """A login, a registration or a join: ``(reply, Session | Slave | None)``, or an
        awaitable of it (a login hashes a password); the connection becomes what it says."""
        started = time.perf_counter()
        try:
            admitted = self.greetings[type(greeting)](peer, greeting)
        except Exception as exc:
            admitted = _failure(greeting, exc), None
        if isinstance(admitted, tuple):
            return self._greeted(greeting, started, admitted)
        return self._greet_later(greeting, started, admitted)

    async def _greet_later(
        self, greeting: Request, started: float, pending: Awaitable[tuple[Reply, Any]]
    ) -> tuple[Reply, Any]:
        try:
            admitted = await pending
        except Exception as exc:
            admitted = _failure(greeting, exc), None
        return self._greeted(greeting, started, admitted)

    def _greeted(self, greeting: Request, started: float, admitted: tuple[Reply, Any]) -> Any:
        reply, peer = admitted
        self.metrics.answered(type(greeting), started, reply)
        if type(greeting) is Login:
            self.metrics.login(PROTOCOL, accepted=peer is not None)
        return admitted

    def report(self, slave: Slave, report: Request) -> Reply | Awaitable[Reply] | None:
        """A slave's report's reply (awaitable when it must wait: a commit's copies, or
        the cache leases its changes recalled); None when a newer registration replaced
        this slave."""
        started = time.perf_counter()
        return self._dispatch(self.slave_reports[type(report)], slave, report, started)

    def _dispatch(
        self, handler: Any, peer: Session | Slave, request: Request, started: float
    ) -> Reply | Awaitable[Reply] | None:
        """Run ``handler`` inside the error boundary and the cache-lease recalls; the
        reply at once when nothing has to wait, else an awaitable one."""
        with self.cache_leases.recalls() as recalls:
            try:
                reply = handler(peer, request)
            except Exception as exc:
                reply = _failure(request, exc)
        if reply is None:
            return None
        if isinstance(reply, Reply) and not recalls:
            self.metrics.answered(type(request), started, reply)
            return reply
        return self._answer_later(request, started, reply, recalls)

    def end_session(self, session: Session) -> None:
        self.cache_leases.ended(session)
        self.files.abandon(session)

    def slave_disconnected(self, slave: Slave) -> None:
        self.membership.disconnected(slave)

    # --- running ------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        # slaves show the certificate this master issued them (checked at register)
        context = server_tls_context(
            self.settings.cert, self.settings.key, members_of=self.settings.cert
        )
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: MasterConnection(self),
            self.settings.host,
            self.settings.port,
            ssl=context,
            ssl_handshake_timeout=10,
        )
        host, port = self.server.sockets[0].getsockname()[:2]
        logging.getLogger().addHandler(self.events)
        if self.settings.http_port is not None:
            await self._start_dashboard()
        self.spawn(
            self.membership.watch(self.settings.slave_timeout, self.settings.lost_slave_retry_time)
        )
        self.spawn(self.replication.run())
        if self.settings.client_timeout:
            self.spawn(self.files.expire_leases(self.settings.client_timeout))
        log.info("master listening on %s:%d (metadata %s)", host, port, self.store.path)
        return host, port

    async def _start_dashboard(self) -> None:
        """The dashboard and /metrics on HTTP_PORT, served by this event loop.

        Imported here: a master without HTTP_PORT never loads the web stack.
        """
        from .web import Dashboard

        settings = self.settings
        assert settings.http_port is not None
        context = server_tls_context(settings.cert, settings.key) if settings.http_tls else None
        self.dashboard = Dashboard(self)
        try:
            await self.dashboard.start(settings.host, settings.http_port, context)
        except OSError as exc:  # said apart from the master's own port, which is listening
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                f"the dashboard's HTTP_PORT {settings.host}:{settings.http_port}: {reason}"
            ) from None

    def dashboard_url(self) -> str:
        """The dashboard's URL, or "" when it is off."""
        return self.dashboard.url if self.dashboard is not None else ""

    def _replication_health(self) -> Health:
        """Replication's figures for the dashboard and /metrics, from the one place
        ``sysinfo`` reads them too (:meth:`.Replication.health`)."""
        health = self.replication.health()
        return Health(health.under_replicated, health.lost, health.copying, health.draining)

    def bound_address(self) -> str:
        """``host:port`` as bound (the configured port may be 0: any free port)."""
        if self.server is not None:
            return "{}:{}".format(*self.server.sockets[0].getsockname()[:2])
        return f"{self.settings.host}:{self.settings.port}"

    async def serve_forever(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.dashboard is not None:
            await self.dashboard.close()
        logging.getLogger().removeHandler(self.events)
        self.links.close()
        self.sessions.close()
        self.replication.close()
        for task in list(self._tasks):
            task.cancel()
        self.store.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _check_waiting_is_announced(table: dict[type[Message], Any]) -> None:
    """A handler that waits must handle a ``long_running`` request: the connection sends
    ``Working`` while it waits, which only such a request's asker expects."""
    for message_type, handler in table.items():
        if inspect.iscoroutinefunction(handler) and not getattr(
            message_type, "long_running", False
        ):
            raise TypeError(
                f"{message_type.__name__} is answered by a coroutine: mark it long_running"
            )


def _load_key(path: Path) -> bytes:
    """The token key survives restarts, so grants in flight stay valid."""
    try:
        key = path.read_bytes()
        if len(key) == tokens.KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(tokens.KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _tracing() -> bool:
    """Whether every request is logged (LOG_LEVEL high enough for DEBUG): one cheap
    check on the hot path instead of formatting a line nobody keeps."""
    return log.isEnabledFor(logging.DEBUG)


def _failure(message: Message, exc: Exception) -> Error:
    """The error reply for an exception raised while handling ``message``."""
    if not is_expected(exc):
        log.error("unexpected failure handling %s", type(message).__name__, exc_info=exc)
    return Error.of(exc)


__all__ = ["MasterServer"]
