"""Who is looking at the dashboard: its sessions, cookies and form tokens.

A dashboard login checks the same accounts, passwords and address rules as a
Sector login (:meth:`~sector.master.sessions.Sessions.authenticate`). Success
opens a :class:`WebSession` held here, in the master's memory, under a random
token (256 bits from :mod:`secrets`) that is the whole cookie: nothing in it
can be forged or read, and a master restart or a logout ends it. The cookie is
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page
sends it) and ``Secure`` when the dashboard serves TLS.

Forms that change something (login, logout) carry a token a forger cannot
know: the session's own for logout, and for login one set in a cookie when
the form is shown (a "double submit", so another site cannot log a victim in
as someone else). Sessions end after :data:`IDLE_TIMEOUT` without a request,
and at most :data:`MAX_SESSIONS` are kept (the least recently used goes).
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from ...clock import Clock
from ..users import User

SESSION_COOKIE = "sector_session"
#: The login form's token, in a cookie and in the form (double submit).
LOGIN_COOKIE = "sector_login"
IDLE_TIMEOUT = 8 * 3600.0
MAX_SESSIONS = 1000


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    """Whether two tokens are present and equal (compared in constant time)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


@dataclass
class WebSession:
    user: User
    #: What the session's forms must send back (logout).
    csrf: str
    last_seen: float


class WebSessions:
    def __init__(self, clock: Clock, idle: float = IDLE_TIMEOUT, limit: int = MAX_SESSIONS):
        self.clock = clock
        self.idle = idle
        self.limit = limit
        self._by_token: OrderedDict[str, WebSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_token)

    def open(self, user: User) -> str:
        """A new session for ``user``; its token, for the cookie."""
        token = new_token()
        self._by_token[token] = WebSession(user, new_token(), self.clock.monotonic())
        while len(self._by_token) > self.limit:
            self._by_token.popitem(last=False)
        return token

    def get(self, token: str | None) -> WebSession | None:
        """The live session ``token`` names (now seen again), or None."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = self.clock.monotonic()
        if now - session.last_seen > self.idle:
            del self._by_token[token]
            return None
        session.last_seen = now
        self._by_token.move_to_end(token)
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)
