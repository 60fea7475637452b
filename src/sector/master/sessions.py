"""Who is logged in: logins, logouts, and the session each connection holds.

A login is checked three ways - protocol version, the master's address ACL
(``master_acl.conf``), then the user's password and ACL - and the password
hash runs off the event loop, because scrypt is slow on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from ..certs import Identity
from ..config import address_allowed
from ..errors import E_ACL, SectorError, SecurityError
from ..protocol.master import Login, LoginReply, Logout, check_version
from ..protocol.messages import Done, Error, Reply, handles
from .users import User, Users

log = logging.getLogger("sector.master")


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection before it greets: its address, and the
    certificate it showed in the TLS handshake, if any (checked: see :mod:`sector.certs`)."""

    address: str
    identity: Identity | None = None


@dataclass
class Session:
    """One logged-in client connection."""

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


class Sessions:
    def __init__(
        self, users: Users, acl: list[IPv4Network | IPv6Network], lease_timeout: float = 0.0
    ):
        self.users = users
        self.acl = acl
        #: CLIENT_TIMEOUT, told to clients at login (see :class:`~.leases.Leases`).
        self.lease_timeout = lease_timeout

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
        """The user, when ``address`` may reach this master and the password is right:
        the one check behind a Sector login and the dashboard's. Raises SectorError."""
        if not address_allowed(address, self.acl):
            raise SecurityError(f"{address} may not reach this master", code=E_ACL)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.users.authenticate, name, password, address)

    @handles(Logout)
    def logout(self, session: Session, request: Logout) -> Reply:
        session.logged_out = True  # the connection hangs up once this reply is out
        return Done()
