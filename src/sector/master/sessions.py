"""Who is logged in: logins, logouts, and the session each connection holds.

A login is checked three ways - protocol version, the master's address ACL
(``master_acl.conf``), then the user's password and ACL. Guessing is made
slow and loud: every failed login is logged with its user name and address,
and the :class:`~.throttle.LoginThrottle` delays (or refuses at once) the
attempts of an address or a user that keep failing, without holding up the
real user logging in from elsewhere. Passwords are checked on threads of the
sessions' own (:data:`LOGIN_WORKERS` each for ordinary and for suspect
attempts - those with failures behind them - at most :data:`MAX_HASHING`
waiting each), because scrypt is slow on purpose: guessing cannot starve the
event loop, the threads other work needs, or the logins of everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from ..certs import Identity
from ..clock import SYSTEM, Clock
from ..config import address_allowed
from ..errors import E_ACCOUNT, E_ACL, E_PASSWORD, SectorError, SecurityError
from ..protocol.master import Login, LoginReply, Logout, check_version
from ..protocol.messages import Done, Error, Message, Reply, handles
from .throttle import LoginThrottle
from .users import User, Users

log = logging.getLogger("sector.master")


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection before it greets: its address, and the
    certificate it showed in the TLS handshake, if any (checked: see :mod:`sector.certs`)."""

    address: str
    identity: Identity | None = None


@dataclass(eq=False)
class Session:
    """One logged-in client connection (compared and hashed by identity)."""

    user: User
    address: str
    #: Ids of the write leases this session holds (they end with it).
    leases: set[int] = field(default_factory=set)
    #: Set by ``logout`` and ``shutdown``: what to do once the reply is on its way.
    logged_out: bool = False
    stop_master: bool = False
    #: When it last sent a request (the master's monotonic clock): its write leases
    #: expire CLIENT_TIMEOUT after this unless their slaves report bytes arriving.
    last_active: float = 0.0
    #: Sends the client a message it did not ask for (``Invalidate``); None once the
    #: connection is gone. Set by the connection.
    push: Callable[[Message], None] | None = None


#: Threads checking passwords: half the cores, so logins never take all of them.
LOGIN_WORKERS = max(1, (os.cpu_count() or 2) // 2)
#: Password checks waiting for a thread at most; more are refused at once.
MAX_HASHING = 64


class Sessions:
    def __init__(
        self,
        users: Users,
        acl: list[IPv4Network | IPv6Network],
        clock: Clock = SYSTEM,
        lease_timeout: float = 0.0,
    ):
        self.users = users
        self.acl = acl
        #: CLIENT_TIMEOUT, told to clients at login (see :class:`~.leases.Leases`).
        self.lease_timeout = lease_timeout
        self.throttle = LoginThrottle(clock)
        # ordinary attempts, and suspect ones (attempts with failures behind them): apart
        self._pools = {
            suspect: ThreadPoolExecutor(LOGIN_WORKERS, thread_name_prefix="sector-login")
            for suspect in (False, True)
        }
        self._hashing = {False: 0, True: 0}

    @handles(Login)
    async def login(self, peer: Peer, request: Login) -> tuple[Reply, Session | None]:
        """The reply to a login, and the new session when it succeeded."""
        address = peer.address
        try:
            check_version(request.version)
            user = await self.authenticate(address, request.user, request.password)
        except SectorError as exc:
            return Error.of(exc), None
        log.info("user %s logged in from %s", user.name, address)
        return LoginReply(user.name, user.rights, self.lease_timeout), Session(user, address)

    async def authenticate(self, address: str, name: str, password: str) -> User:
        """The user, when ``address`` may reach this master, the throttle lets the attempt
        through and the password is right: the one check behind a Sector login and the
        dashboard's. Raises SectorError."""
        if not address_allowed(address, self.acl):
            raise SecurityError(f"{address} may not reach this master", code=E_ACL)
        attempt = self.throttle.admit(name, address)
        if attempt is None:
            log.warning("login of user %r from %s refused: too many failed logins", name, address)
            raise SecurityError("too many failed logins: try again later")
        suspect = attempt.suspect
        try:
            if attempt.wait:
                await asyncio.sleep(attempt.wait)
            if self._hashing[suspect] >= MAX_HASHING:
                raise SecurityError("too many logins at once: try again in a moment")
            self._hashing[suspect] += 1
            try:
                user = await asyncio.get_running_loop().run_in_executor(
                    self._pools[suspect], self.users.authenticate, name, password, address
                )
            finally:
                self._hashing[suspect] -= 1
        except SecurityError as exc:
            if exc.code in (E_PASSWORD, E_ACCOUNT):
                self.throttle.failed(attempt)
                log.warning("failed login of user %r from %s", name, address)
            raise
        finally:
            self.throttle.ended(attempt)  # whatever happened (a no-op once decided)
        self.throttle.succeeded(attempt)
        return user

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    @handles(Logout)
    def logout(self, session: Session, request: Logout) -> Reply:
        session.logged_out = True  # the connection hangs up once this reply is out
        return Done()
