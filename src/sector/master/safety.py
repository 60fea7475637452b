"""Safe mode: the master deletes nothing while it may not know the whole cluster.

A master whose namespace is younger than what its slaves hold - metadata
restored from an old backup, a ``metadata.db`` truncated or lost, a master
started with ``--home`` on an empty directory - would otherwise take every
object it does not know for garbage and have it deleted. It notices instead:
a slave of another cluster (see ``cluster_id`` in :mod:`.store`) or an object
id this namespace never handed out puts it in safe mode, where every deletion
that reconciling, trimming or collecting would order is held back (a user's
own ``rm`` still works: the master knows that file). It stays there until an
administrator decides - ``sector fsck --adopt`` rebuilds the namespace from
what the slaves hold, ``sector fsck --leave-safe-mode`` accepts the loss.

What the slaves reported is kept here meanwhile, for ``--adopt``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..protocol.data import ObjectInfo

log = logging.getLogger("sector.master")


@dataclass
class Stranger:
    """A slave whose objects this namespace does not (fully) know."""

    slave_id: str
    cluster: str
    #: The objects it holds that the namespace does not know.
    objects: list[ObjectInfo] = field(default_factory=list)


class Safety:
    def __init__(self) -> None:
        self.reason = ""
        #: Slaves met while in doubt, by id: what ``--adopt`` would bring in.
        self.strangers: dict[str, Stranger] = {}

    @property
    def on(self) -> bool:
        return bool(self.reason)

    def deletes_allowed(self) -> bool:
        return not self.reason

    def enter(self, reason: str) -> None:
        if not self.reason:
            log.error(
                "SAFE MODE: %s. Nothing will be deleted until an administrator runs "
                "`sector fsck --adopt` (rebuild the namespace from the slaves) or "
                "`sector fsck --leave-safe-mode`",
                reason,
            )
            self.reason = reason

    def describe(self) -> str:
        """Why, and what was seen so far (``sysinfo`` shows it): empty when not in safe mode."""
        if not self.reason:
            return ""
        objects = sum(len(s.objects) for s in self.strangers.values())
        return (
            f"{self.reason}; seen so far: {len(self.strangers)} slaves holding {objects} "
            "objects the namespace does not know"
        )

    def met(self, slave_id: str, cluster: str, objects: list[ObjectInfo]) -> None:
        """Remember what a slave in doubt holds (replacing what it said before)."""
        self.strangers[slave_id] = Stranger(slave_id, cluster, list(objects))

    def leave(self) -> None:
        if self.reason:
            log.warning("leaving safe mode (was: %s)", self.reason)
        self.reason = ""
        self.strangers.clear()
