"""A small HTTP client for the dashboard tests: cookies kept, redirects shown, not followed.

The standard library's, so the tests see exactly what a browser is sent
(status, ``Location``, ``Set-Cookie``) before any redirect is taken.
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message


@dataclass
class Response:
    status: int
    headers: Message
    text: str

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []

    def field(self, name: str) -> str:
        """The value of the hidden form field ``name`` on this page."""
        found = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert found, f"no field {name!r} on the page"
        return found.group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class WebClient:
    def __init__(self, base_url: str, context: ssl.SSLContext | None = None):
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(),
        ]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self._send(urllib.request.Request(self.base + path, headers=headers or {}))

    def post(
        self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> Response:
        body = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        return self._send(request)

    def login(self, user: str, password: str, next_path: str = "/") -> Response:
        """Load the form, then post it as a browser would."""
        form = self.get("/login")
        return self.post(
            "/login",
            {"token": form.field("token"), "user": user, "password": password, "next": next_path},
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def _send(self, request: urllib.request.Request) -> Response:
        try:
            with self.opener.open(request, timeout=30) as answer:
                return Response(answer.status, answer.headers, answer.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read().decode())
