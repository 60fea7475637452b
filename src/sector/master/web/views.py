"""What each dashboard page shows a given user: plain data for the templates.

The rules of who sees what live here and nowhere else:

* slave ids and addresses are for administrators; others see each slave as
  ``slave N`` (numbered by id, so the number stays put) with its location,
  state and figures;
* the namespace browser shows a path only if the user may read it, or if it
  leads to something they may read (:meth:`~sector.master.users.User.can_browse`) -
  in which case only the entries on the way are listed;
* the master's recent warnings and errors (which name users, paths and
  addresses) are for administrators.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ...clock import Clock
from ...errors import SectorPermissionError
from ...logs import Event, RecentEvents
from ...protocol.paths import ROOT, normalize, split
from ..leases import Leases
from ..namespace import Namespace
from ..slaves import Registry, Slave
from ..status import Overview, Status
from ..store import Row, Store
from ..users import User

#: Seconds of request counts the overview's rates are worked out over.
RATE_WINDOW = 10.0
#: Entries one directory page lists at most.
LIST_LIMIT = 1000


@dataclass(frozen=True)
class SlaveRow:
    name: str
    address: str | None  # None: not shown to this user
    location: str
    state: str
    total: int
    free: int
    stored: int
    files: int
    load: float
    active: int
    heartbeat_age: float
    software: str
    received: int
    sent: int

    @property
    def used(self) -> int:
        return self.total - self.free


@dataclass(frozen=True)
class Replica:
    slave: str
    state: str
    location: str
    current: bool


@dataclass(frozen=True)
class Item:
    path: str
    name: str
    is_dir: bool
    size: int
    mtime: float
    version: int
    checksum: str
    replicas: list[Replica] = field(default_factory=list)

    @property
    def live_replicas(self) -> int:
        return sum(r.current and r.state == "live" for r in self.replicas)


@dataclass(frozen=True)
class Listing:
    path: str
    parent: str | None
    items: list[Item]
    total: int
    #: True when the user may not read ``path`` itself, only some paths below it.
    partial: bool


@dataclass(frozen=True)
class Rates:
    """Requests per second over the last RATE_WINDOW seconds (None until measurable)."""

    total: float | None
    by_op: list[tuple[str, float]]


class RateMeter:
    """Request rates from the metrics' running counts, sampled when a page asks.

    No background task: each overview (polled every second or so while
    someone watches) adds a sample, and the rate is the change across the
    samples of the last RATE_WINDOW seconds.
    """

    def __init__(self, counts: Callable[[], dict[str, int]], clock: Clock):
        self.counts = counts
        self.clock = clock
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def rates(self) -> Rates:
        now = self.clock.monotonic()
        self._samples.append((now, self.counts()))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()
        first_time, first = self._samples[0]
        span = now - first_time
        if span < 0.5:
            return Rates(None, [])
        latest = self._samples[-1][1]
        by_op = {op: (n - first.get(op, 0)) / span for op, n in latest.items()}
        busiest = sorted(((op, r) for op, r in by_op.items() if r > 0), key=lambda x: -x[1])
        return Rates(sum(by_op.values()), busiest[:8])


class Views:
    def __init__(
        self,
        status: Status,
        registry: Registry,
        store: Store,
        namespace: Namespace,
        leases: Leases,
        events: RecentEvents,
        counts: Callable[[], dict[str, int]],
        clock: Clock,
    ):
        self.status, self.registry = status, registry
        self.store, self.namespace, self.leases = store, namespace, leases
        self.recent = events
        self.meter = RateMeter(counts, clock)

    # --- overview and slaves ---------------------------------------------------------

    def overview(self) -> tuple[Overview, Rates]:
        return self.status.overview(), self.meter.rates()

    def slaves(self, user: User) -> list[SlaveRow]:
        """One row per slave the master knows, by location then name."""
        names = self._slave_names(user)
        rows = [
            SlaveRow(
                name=names[slave.id],
                address="{}:{}".format(*slave.address) if user.admin else None,
                location=slave.location,
                state="live" if slave.alive else "dead",
                total=slave.total,
                free=slave.free,
                stored=slave.stored,
                files=slave.files,
                load=slave.load,
                active=slave.active,
                heartbeat_age=self.registry.heartbeat_age(slave),
                software=slave.software or "?",
                received=slave.received,
                sent=slave.sent,
            )
            for slave in self.registry.slaves.values()
        ]
        return sorted(rows, key=lambda r: (r.location, _natural(r.name)))

    def _slave_names(self, user: User) -> dict[str, str]:
        """What this user calls each slave: its id for administrators, else ``slave N``."""
        ids = sorted(self.registry.slaves)
        if user.admin:
            return {i: i for i in ids}
        return {i: f"slave {n}" for n, i in enumerate(ids, 1)}

    # --- the namespace ---------------------------------------------------------------

    def browse(self, user: User, raw_path: str) -> Listing | Item:
        """A directory's listing or a file's details, as far as ``user`` may see.

        Raises InvalidPath, SectorPermissionError or SectorNotFoundError.
        """
        path = normalize(raw_path or ROOT)
        if not user.can_browse(path):
            raise SectorPermissionError(f"user {user.name} may not read here", path)
        row = self.namespace.stat(path)
        names = self._slave_names(user)
        if not row.is_dir:
            if not user.can_read(path):  # a file is never merely on the way
                raise SectorPermissionError(f"user {user.name} may not read here", path)
            return self._item(path, row, names, all_versions=True)
        partial = not user.can_read(path)
        items = []
        children = self.store.children(row.id)
        visible = [
            child for child in children if not partial or user.can_browse(_join(path, child.name))
        ]
        for child in visible[:LIST_LIMIT]:
            items.append(self._item(_join(path, child.name), child, names))
        parent = None if path == ROOT else split(path)[0]
        return Listing(path, parent, items, len(visible), partial)

    def _item(self, path: str, row: Row, names: dict[str, str], all_versions: bool = False) -> Item:
        replicas = []
        if not row.is_dir:
            for slave_id, version in sorted(self.store.replicas(row.id)):
                if version != row.version and not all_versions:
                    continue
                slave: Slave | None = self.registry.get(slave_id)
                replicas.append(
                    Replica(
                        slave=names.get(slave_id, "a slave no longer known"),
                        state="live" if slave is not None and slave.alive else "dead",
                        location=slave.location if slave is not None else "?",
                        current=version == row.version,
                    )
                )
        return Item(
            path, row.name or "/", row.is_dir, row.size, row.mtime, row.version, row.checksum,
            replicas,
        )  # fmt: skip

    def writing(self, item: Item) -> bool:
        """Whether someone has the file open for writing now."""
        row = self.namespace.find(item.path)
        return row is not None and self.leases.is_writing(row.id)

    # --- the log ---------------------------------------------------------------------

    def events(self, user: User) -> list[Event] | None:
        """The master's recent warnings and errors, newest first; None for non-administrators."""
        return self.recent.events() if user.admin else None


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _natural(name: str) -> tuple[int, str]:
    """``slave 2`` before ``slave 10``."""
    number = name.rsplit(" ", 1)[-1]
    return (int(number), name) if number.isdigit() else (0, name)


def local_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


__all__ = ["Item", "Listing", "Views", "local_time"]
