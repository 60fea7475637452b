"""Quotas: how much each user may own (``QUOTA`` in MB in its user file).

A file is owned by the user who wrote its current version (or copied it
there), and what a user owns is summed by the store as files come and go
(:data:`~.store._USAGE`). A write is held to its quota twice: the write grant
tells the slave how large the new version may grow (``WriteClaims.limit``), so
the write fails the moment it would pass the quota, with ``E_NODISK``, and
keeps nothing; and the commit is checked again against what the user owns
then, since several writes of one user may each have fitted alone. Either way
the previous version stays, and nothing of the refused one remains.
"""

from __future__ import annotations

from ..config import MB
from ..errors import NoDiskError
from .store import Row, Store
from .users import User

#: WriteClaims.limit for a user without a quota.
UNLIMITED = -1


class Quotas:
    def __init__(self, store: Store):
        self.store = store

    def room(self, user: User, replacing: Row | None) -> int:
        """Bytes a new version written by ``user`` may hold (UNLIMITED without a quota);
        ``replacing``: the file it replaces, whose bytes it frees if the user owns them."""
        if not user.quota:
            return UNLIMITED
        used, _ = self.store.usage(user.name)
        freed = replacing.size if replacing is not None and replacing.owner == user.name else 0
        return max(0, user.quota - used + freed)

    def check(self, user: User, size: int, replacing: Row | None, path: str) -> None:
        """Raise E_NODISK unless ``user`` may own ``size`` more bytes (less what it frees)."""
        room = self.room(user, replacing)
        if room != UNLIMITED and size > room:
            raise NoDiskError(
                f"quota exceeded: user {user.name} may own {user.quota // MB} MB "
                f"(QUOTA) and has {room} bytes left for this file",
                path,
            )
