"""Server logging at Sector's LOG_LEVEL: 0 is silent, 9 records everything.

Levels map onto Python's: 1-4 record start-up, membership changes, warnings
and errors (INFO); 5 and above add every request (DEBUG).

Every event is one line, in the file and on stderr alike: newlines inside a
message are escaped and a traceback is folded onto its event's line, so
``grep`` and ``tail -f`` see whole events and a name holding a newline cannot
forge a log line.

The file rotates by size (``LOG_MAX_SIZE``, keeping ``LOG_BACKUPS`` old files)
rather than waiting for SIGHUP from logrotate: a cluster started with
``sector up`` or by hand from a checkout has no logrotate configured, and each
log file has exactly one writer (the server holding its directory's lock), so
rotation inside the process is safe. Setting ``LOG_MAX_SIZE`` to 0 turns it
off, for sites whose logrotate uses ``copytruncate``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def python_level(sector_level: int) -> int:
    if sector_level <= 0:
        return logging.CRITICAL + 1
    return logging.INFO if sector_level < 5 else logging.DEBUG


class OneLineFormatter(logging.Formatter):
    """Sector's log format, one line per event whatever the message or traceback holds."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")

    def formatException(self, ei) -> str:  # noqa: N802
        return " | ".join(line for line in super().formatException(ei).splitlines() if line)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return " | ".join(line for line in stack_info.splitlines() if line)

    def format(self, record: logging.LogRecord) -> str:
        # logging joins message and traceback with newlines; keep the event on one line.
        return " | ".join(super().format(record).splitlines())


def setup_logging(
    path: Path,
    sector_level: int,
    max_bytes: int = 0,
    backups: int = 0,
    console: bool = False,
) -> None:
    """Log to ``path`` (rotated past ``max_bytes`` when set) and, with ``console``, stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    ]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    formatter = OneLineFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(python_level(sector_level))


@dataclass(frozen=True)
class Event:
    """One warning or error, as the dashboard lists it."""

    time: float
    level: str
    logger: str
    message: str


class RecentEvents(logging.Handler):
    """The last ``capacity`` warnings and errors, kept in memory for the dashboard.

    A ring buffer: old events fall off the end, so a server that logs the
    same failure for a week holds ``capacity`` events, not a week of them.
    Messages are the log file's (one line; a traceback folded onto it).
    ``emit`` may run on any thread (logging does), hence the lock.
    """

    def __init__(self, capacity: int = 200, level: int = logging.WARNING):
        super().__init__(level)
        self.setFormatter(_MessageOnly())
        self._events: deque[Event] = deque(maxlen=capacity)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = Event(record.created, record.levelname, record.name, self.format(record))
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            self._events.append(event)

    def events(self) -> list[Event]:
        """Newest first."""
        with self._guard:
            return list(reversed(self._events))


class _MessageOnly(OneLineFormatter):
    """The message (and folded traceback) without the time, level and logger in front."""

    def __init__(self) -> None:
        logging.Formatter.__init__(self, "%(message)s")
