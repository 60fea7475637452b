"""What every ``sector`` command shares: the session, and how failures are told.

Failures are mapped to a message and an exit status here and nowhere else:
:class:`SectorGroup` catches what escapes a command, and :meth:`State.attempt`
lets a command that works through many paths (``rm a b c``, a recursive
upload) report each failure, carry on with the rest, and still exit non-zero.
Either way a person sees one line on stderr naming the path and the error,
``sector: /x/y: no such file or directory (E_NOEXIST)`` - or, for a bad
configuration file, its name and line - and a traceback only with ``--debug``.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click

from ..client import Client
from ..client.connect import SCHEME, Location, Target, parse_location, resolve
from ..config import ConfigError
from ..errors import E_LOCALFILE, E_PASSWORD, SectorError, SecurityError, code_name
from .output import shown

#: Exit status of a command that failed (usage errors are click's 2).
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def error_line(exc: BaseException, path: str | None = None) -> str:
    """The one line a person reads about a failure, naming the path when known; one
    line whatever the path holds (see :func:`~.output.shown`)."""
    return shown(_error_text(exc, path))


def _error_text(exc: BaseException, path: str | None) -> str:
    if isinstance(exc, ConfigError):
        return f"sector: {exc}"
    if isinstance(exc, SectorError):
        where = exc.path or path
        text = f"{where}: {exc.detail}" if where else exc.detail
        return f"sector: {text} ({code_name(exc.code)})"
    if isinstance(exc, OSError):
        where = exc.filename or path
        reason = (exc.strerror or str(exc)).lower()
        text = f"{where}: {reason}" if where else reason
        return f"sector: {text} ({code_name(E_LOCALFILE)})"
    if isinstance(exc, click.ClickException):
        return f"sector: {exc.format_message()}"
    return f"sector: {path + ': ' if path else ''}{exc}"


@dataclass
class State:
    """Options of the ``sector`` group, the lazily opened session, the failure count."""

    master: str | None = None
    user: str | None = None
    cert: str | None = None
    #: What ``sector://user@host:port/...`` arguments named; they win over the flags.
    url_master: str | None = None
    url_user: str | None = None
    debug: bool = False
    failures: int = 0
    #: Where lines for stderr go while something (a progress bar) owns the terminal.
    echo_err: Callable[[str], None] | None = None
    _client: Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def target(self) -> Target:
        """Where to connect and as whom, with the password (asked for on a terminal)."""
        try:
            target = resolve(
                master=self.url_master or self.master,
                user=self.url_user or self.user,
                cert=self.cert,
            )
        except ValueError as exc:  # a malformed --master or SECTOR_MASTER
            raise click.UsageError(f"master address: {exc}") from None
        if target.password is None:
            if not sys.stdin.isatty():
                raise SecurityError(
                    f"no password for user {target.user}: set SECTOR_PASSWORD "
                    "or PASSWORD in client.conf",
                    code=E_PASSWORD,
                )
            target.password = click.prompt(f"Password for {target.user}", hide_input=True, err=True)
        return target

    def client(self) -> Client:
        """The logged-in session, opened on first use (so ``--help`` needs no cluster)."""
        if self._client is None:
            self._client = self.target().connect()
        return self._client

    def use_location(self, location: Location) -> None:
        """Take the master and user a ``sector://`` argument names (all must agree)."""
        for field_name, value in (("url_master", location.master), ("url_user", location.user)):
            if value is None:
                continue
            known = getattr(self, field_name)
            if known not in (None, value):
                raise click.UsageError(
                    f"sector:// URLs of one command name different clusters or users "
                    f"({known} and {value})"
                )
            setattr(self, field_name, value)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fail(self, exc: BaseException, path: str | None = None) -> None:
        """Report one failure and remember that the command must exit non-zero."""
        with self._lock:
            self.failures += 1
        if self.debug:
            traceback.print_exception(exc)
        self.err(error_line(exc, path))

    def err(self, line: str) -> None:
        (self.echo_err or (lambda text: click.echo(text, err=True)))(line)

    @contextmanager
    def attempt(self, path: str | None = None) -> Iterator[None]:
        """Run one step of a many-path command; a Sector or local error is reported, not raised."""
        try:
            yield
        except (SectorError, OSError) as exc:
            self.fail(exc, path)


class SectorGroup(click.Group):
    """The ``sector`` group: turns what a command raises into a line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.ensure_object(State)
        try:
            result = super().invoke(ctx)
        except (SectorError, OSError, ConfigError) as exc:
            state.fail(exc)
            ctx.exit(EXIT_FAILURE)
        except click.UsageError:
            raise  # click prints the usage and exits 2
        except click.ClickException as exc:  # a command's own refusal: one line, like the rest
            state.fail(exc)
            ctx.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("sector: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        finally:
            state.close()
        if state.failures:
            ctx.exit(EXIT_FAILURE)
        return result


pass_state = click.make_pass_decorator(State, ensure=True)


class SectorPath(click.ParamType):
    """A Sector path, or a ``sector://[user@]host:port/path`` URL naming the cluster too.

    A URL's master and user replace ``--master``/``--user`` for the command
    (before it logs in); the command itself only ever sees the path.
    """

    name = "PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not str(value).startswith(SCHEME):
            return value
        try:
            location = parse_location(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if ctx is not None:
            ctx.ensure_object(State).use_location(location)
        return location.path


SECTOR_PATH = SectorPath()
