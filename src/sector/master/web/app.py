"""The dashboard and ``/metrics``: an aiohttp application on the master's own event loop.

Why aiohttp: its ``AppRunner`` is made to be started inside a
program that already runs an event loop (the master's, uvloop), with no
signal handlers or logging set-up of their own, and it brings its HTTP
parser, cookies, forms and static files in one well-kept package. (uvicorn,
the usual server under Starlette, is built to own the process: it can be
embedded, but then its signal and logging set-up must be turned off piece by
piece.) Handlers run on the loop between the master's own requests, so they
read the registry and the store directly, with no locks, as every other part
of the master does; each page is a few SQLite reads.

Pages are rendered on the server from Jinja2 templates in this package
(autoescaped). Each page template has a ``live`` block; ``/live/<page>``
answers JSON with that block rendered again, and ``static/dashboard.js``
polls it and swaps the block in, so pages update without a reload and there
is one way to render everything. Nothing is fetched from elsewhere: the
script and the style sheet are served from ``static/``, and the
Content-Security-Policy forbids anything else. Every connection passes a
:class:`~.guard.ConnectionGuard` (a bounded number, none silent for long): the
dashboard shares the master's descriptors, and must not let a visitor take them.

Routes: ``/`` overview, ``/slaves``, ``/browse/<path>`` (a directory's listing or
a file's details), ``/events`` (recent warnings and errors), ``/login``,
``/logout``, ``/live/...`` (JSON of any page's live block), ``/metrics``
(Prometheus), ``/static/...``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from aiohttp import BasicAuth, hdrs, web

from ... import __version__
from ...config import human_size
from ...errors import (
    E_ACCOUNT,
    E_PASSWORD,
    SectorError,
    SectorNotFoundError,
    SectorPermissionError,
)
from ...protocol.paths import InvalidPath
from ..metrics import DASHBOARD
from . import auth
from .guard import IDLE_TIMEOUT, ConnectionGuard
from .views import Item, Listing, Views, local_time

if TYPE_CHECKING:
    from ..server import MasterServer

log = logging.getLogger("sector.master")

HERE = Path(__file__).parent
#: Milliseconds between the page's polls of its live block.
POLL_INTERVAL_MS = 1000
#: The largest request body accepted (a login form).
MAX_BODY = 16 * 1024
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Page = Callable[[web.Request, auth.WebSession], dict[str, Any]]


class Dashboard:
    """The master's HTTP side; ``start`` binds it, ``close`` stops it."""

    def __init__(self, master: MasterServer):
        self.master = master
        settings = master.settings
        self.tls = settings.http_tls
        self.metrics_auth = settings.metrics_auth
        self.sessions = auth.WebSessions(master.clock)
        self.views = Views(
            master.status,
            master.registry,
            master.store,
            master.namespace,
            master.leases,
            master.events,
            master.metrics.requests_by_op,
            master.clock,
        )
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(size=human_size, time=local_time, age=_age, path=_url_path)
        self.runner: web.AppRunner | None = None
        self.listener: asyncio.Server | None = None
        self.url = ""

    # --- running ------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._headers])
        pages: dict[str, tuple[str, Page]] = {
            "/": ("overview.html", self._overview),
            "/slaves": ("slaves.html", self._slaves),
            "/events": ("events.html", self._events),
            "/browse": ("browse.html", self._browse),
            "/browse/{path:.*}": ("browse.html", self._browse),
        }
        for route, (template, page) in pages.items():
            app.router.add_get(route, self._full(template, page))
            app.router.add_get("/live" + route, self._live(template, page))
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_static("/static", HERE / "static")
        return app

    async def start(self, host: str, port: int, context: ssl.SSLContext | None) -> str:
        """Listen on ``host:port`` (0: any free port); the dashboard's URL. The listener
        is ours, not an aiohttp site, so that the :class:`ConnectionGuard` stands between
        aiohttp and every connection."""
        self.runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await self.runner.setup()
        assert self.runner.server is not None
        self.listener = await asyncio.get_running_loop().create_server(
            ConnectionGuard(self.runner.server),
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=IDLE_TIMEOUT if context is not None else None,
            reuse_address=True,
        )
        bound_host, bound_port = self.listener.sockets[0].getsockname()[:2]
        scheme = "https" if context is not None else "http"
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{scheme}://{shown}:{bound_port}/"
        log.info("dashboard and /metrics on %s", self.url)
        return self.url

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        if self.runner is not None:
            await self.runner.cleanup()  # ends the connections still open

    # --- around every request -----------------------------------------------------------

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(_SECURITY_HEADERS)
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def _session(self, request: web.Request) -> auth.WebSession | None:
        return self.sessions.get(request.cookies.get(auth.SESSION_COOKIE))

    def _full(self, template: str, page: Page) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            session = self._session(request)
            if session is None:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            context, status = self._context(request, session, page)
            return self._html(template, context, status)

        return handle

    def _live(self, template: str, page: Page) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            session = self._session(request)
            if session is None:
                return web.json_response({"session": "ended"}, status=401)
            context, status = self._context(request, session, page)
            compiled = self.templates.get_template(template)
            block = compiled.blocks["live"](compiled.new_context(context))
            return web.json_response({"live": "".join(block), "time": time.time()}, status=status)

        return handle

    def _context(
        self, request: web.Request, session: auth.WebSession, page: Page
    ) -> tuple[dict[str, Any], int]:
        """The page's data, or the refusal to show it (and the HTTP status either way)."""
        base = {
            "user": session.user,
            "csrf": session.csrf,
            "path": request.path,
            "live_url": "/live" + request.rel_url.raw_path,
            "poll_ms": POLL_INTERVAL_MS,
            "version": __version__,
            "master": self.master.bound_address(),
            "problem": None,
            "title": "Sector",
        }
        try:
            return {**base, **page(request, session)}, 200
        except InvalidPath as exc:
            return {**base, "problem": f"Not a Sector path: {exc}"}, 400
        except SectorPermissionError as exc:
            return {**base, "problem": f"{exc.path}: you may not read this"}, 403
        except SectorNotFoundError as exc:
            return {**base, "problem": f"{exc.path}: no such file or directory"}, 404

    def _html(self, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
        text = self.templates.get_template(template).render(context)
        return web.Response(text=text, status=status, content_type="text/html")

    # --- pages --------------------------------------------------------------------------

    def _overview(self, request: web.Request, session: auth.WebSession) -> dict[str, Any]:
        overview, rates = self.views.overview()
        return {"title": "Overview", "overview": overview, "rates": rates}

    def _slaves(self, request: web.Request, session: auth.WebSession) -> dict[str, Any]:
        return {"title": "Slaves", "slaves": self.views.slaves(session.user)}

    def _browse(self, request: web.Request, session: auth.WebSession) -> dict[str, Any]:
        shown = self.views.browse(session.user, "/" + request.match_info.get("path", ""))
        if isinstance(shown, Listing):
            return {"title": shown.path, "listing": shown, "item": None, "writing": False}
        assert isinstance(shown, Item)
        return {
            "title": shown.path,
            "listing": None,
            "item": shown,
            "writing": self.views.writing(shown),
        }

    def _events(self, request: web.Request, session: auth.WebSession) -> dict[str, Any]:
        return {"title": "Warnings and errors", "events": self.views.events(session.user)}

    # --- logging in and out -------------------------------------------------------------

    async def _login_form(self, request: web.Request) -> web.Response:
        return self._login_page(request, problem=None)

    def _login_page(
        self, request: web.Request, problem: str | None, user_name: str = ""
    ) -> web.Response:
        token = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_token()
        response = self._html(
            "login.html",
            {
                "title": "Log in",
                "login_token": token,
                "next": _local_target(request.query.get("next")),
                "problem": problem,
                "user_name": user_name,
                "version": __version__,
                "master": self.master.bound_address(),
            },
            status=401 if problem else 200,
        )
        self._set_cookie(response, auth.LOGIN_COOKIE, token)
        return response

    async def _login(self, request: web.Request) -> web.Response:
        self._check_origin(request)
        form = await request.post()
        if not auth.same_token(request.cookies.get(auth.LOGIN_COOKIE), _field(form, "token")):
            raise web.HTTPForbidden(text="the login form has expired: load it again")
        address = request.remote or "?"
        try:
            user = await self.master.sessions.authenticate(
                address, _field(form, "user"), _field(form, "password")
            )
        except SectorError as exc:
            self.master.metrics.login(DASHBOARD, accepted=False)
            log.warning("dashboard login refused from %s: %s", address, exc)
            # one answer for a wrong name and a wrong password: do not say which names exist
            return self._login_page(request, _refusal(exc), _field(form, "user"))
        self.master.metrics.login(DASHBOARD, accepted=True)
        log.info("user %s logged in to the dashboard from %s", user.name, address)
        response = web.HTTPSeeOther(_local_target(_field(form, "next")))
        self._set_cookie(response, auth.SESSION_COOKIE, self.sessions.open(user))
        response.del_cookie(auth.LOGIN_COOKIE, path="/")
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        self._check_origin(request)
        form = await request.post()
        token = request.cookies.get(auth.SESSION_COOKIE)
        session = self.sessions.get(token)
        if session is not None:
            if not auth.same_token(session.csrf, _field(form, "csrf")):
                raise web.HTTPForbidden(text="this logout did not come from the dashboard")
            self.sessions.close(token)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(auth.SESSION_COOKIE, path="/")
        raise response

    def _check_origin(self, request: web.Request) -> None:
        """A form posted from another site's page is refused (browsers send Origin)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="cross-site form refused")

    def _set_cookie(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(
            name, value, path="/", httponly=True, samesite="Strict", secure=self.tls
        )

    # --- Prometheus ---------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics_auth:
            await self._check_administrator(request)
        return web.Response(body=self.master.metrics.exposition(),
                            headers={hdrs.CONTENT_TYPE: PROMETHEUS_TEXT})  # fmt: skip

    async def _check_administrator(self, request: web.Request) -> None:
        """METRICS_AUTH: HTTP Basic credentials of an administrator (Prometheus' basic_auth)."""
        challenge = {hdrs.WWW_AUTHENTICATE: 'Basic realm="sector metrics"'}
        try:
            credentials = BasicAuth.decode(request.headers.get(hdrs.AUTHORIZATION, ""))
            user = await self.master.sessions.authenticate(
                request.remote or "?", credentials.login, credentials.password
            )
        except (ValueError, SectorError):
            raise web.HTTPUnauthorized(
                headers=challenge, text="log in as an administrator"
            ) from None
        if not user.admin:
            raise web.HTTPForbidden(text=f"user {user.name} is not an administrator")


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _local_target(target: str | None) -> str:
    """Where to go after logging in: a path on this dashboard, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _refusal(exc: SectorError) -> str:
    if exc.code in (E_ACCOUNT, E_PASSWORD):
        return "Wrong user name or password."
    return exc.detail


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _url_path(path: str) -> str:
    """``/browse`` URL of a Sector path."""
    return "/browse" + quote(path)


__all__ = ["Dashboard"]
