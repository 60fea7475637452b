"""How many replicas each file wants, how far apart, where, and how surely written.

A file's :class:`Policy` comes from three places, the most specific winning:

* ``REPLICA_NUM`` in master.conf, for every file;
* ``replica.conf`` rules (Sector's ``REPLICATION_NUMBER``, ``REPLICATION_DISTANCE``,
  ``REPLICATION_LOCATION``), each a path pattern and a value;
* settings made at run time with ``sector replicate PATH N`` (replica count and
  HiRELIABLE), kept in the namespace on the entry itself, so that they follow
  it through renames and go away with it.

A pattern covers a path when its names match the path's first names one by
one (``*`` and ``?`` within a name): ``/data`` covers everything under
``/data``, ``/logs/*.gz`` covers ``/logs/a.gz`` and what is below it. Among
the rules covering a path, the one naming the most levels wins, then the one
with fewest wildcards, then (for equal depth) a run-time setting over a
replica.conf line: it is the administrator's latest word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..config import ReplicaRules
from ..protocol.paths import ROOT, components, has_wildcard, matches, split
from .store import Row, Store

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """What one file wants."""

    #: Replicas to keep.
    number: int
    #: The most two replicas may be apart (REPLICATION_DISTANCE); None: no limit.
    distance: int | None = None
    #: Replicas live only at or below this topology location (REPLICATION_LOCATION).
    location: str | None = None
    #: Writes return only once every replica holds the new version (HiRELIABLE).
    hireliable: bool = False


@dataclass(frozen=True)
class _Pattern:
    names: tuple[str, ...]
    wildcards: int

    @classmethod
    def of(cls, text: str) -> _Pattern:
        names = tuple(components(text))
        return cls(names, sum(has_wildcard(name) for name in names))

    def covers(self, names: list[str]) -> bool:
        if len(self.names) > len(names):
            return False
        return all(matches(name, pattern) for name, pattern in zip(names, self.names, strict=False))

    @property
    def rank(self) -> tuple[int, int]:
        """Higher is more specific."""
        return (len(self.names), -self.wildcards)


class Targets:
    """Each file's :class:`Policy`, from the configuration and the namespace's settings."""

    def __init__(self, store: Store, replica_num: int, rules: ReplicaRules | None = None):
        self.store = store
        self.replica_num = replica_num
        rules = rules or ReplicaRules()
        self._number = [(_Pattern.of(p), v) for p, v in rules.number]
        self._distance = [(_Pattern.of(p), v) for p, v in rules.distance]
        self._location = [(_Pattern.of(p), v) for p, v in rules.location]
        self._has_rules = bool(self._number or self._distance or self._location)
        self.default = Policy(replica_num)

    def policy(self, row: Row) -> Policy:
        """``row``'s policy (a file's, or for a directory what a new file in it would get)."""
        if not self._has_rules and not self.store.has_replication_settings:
            return self.default  # the common case: no path needs to be known
        chain = self.store.ancestry(row.id)
        if not chain:
            return self.default
        return self._resolve(chain)

    def policy_for_new(self, path: str, find: Callable[[str], Row | None]) -> Policy:
        """The policy a file about to be created at ``path`` will have (``find`` looks an
        entry up by path: the nearest existing directory above it carries the settings)."""
        if not self._has_rules and not self.store.has_replication_settings:
            return self.default
        below: list[str] = []
        parent = None
        while parent is None and path != ROOT:
            path, name = split(path)
            below.insert(0, name)
            parent = find(path)
        chain = self.store.ancestry(parent.id) if parent is not None else []
        return self._resolve(chain, below)

    def _resolve(self, chain: list[Row], below: list[str] | None = None) -> Policy:
        names = [row.name for row in chain[1:]] + (below or [])  # the root has no name
        number, rank = self.replica_num, (-1, 0)
        for pattern, value in self._number:
            if pattern.covers(names) and pattern.rank > rank:
                number, rank = value, pattern.rank
        hireliable, hireliable_depth = False, -1
        settings = self.store.replication_settings([row.id for row in chain])
        for depth, row in enumerate(chain):
            setting = settings.get(row.id)
            if setting is None:
                continue
            set_number, set_hireliable = setting
            if set_number is not None and (depth, 0) >= rank:
                number, rank = set_number, (depth, 0)
            if set_hireliable is not None and depth > hireliable_depth:
                hireliable, hireliable_depth = set_hireliable, depth
        return Policy(
            number=number,
            distance=_most_specific(self._distance, names),
            location=_most_specific(self._location, names),
            hireliable=hireliable,
        )


def _most_specific(rules: list[tuple[_Pattern, T]], names: list[str]) -> T | None:
    best: T | None = None
    rank = (-1, 0)
    for pattern, value in rules:
        if pattern.covers(names) and pattern.rank > rank:
            best, rank = value, pattern.rank
    return best
