"""Accounts: salted password hashes, login checks and path permissions.

Sector let a user file hold the password in clear. We still accept that, but
the master hashes every password as it loads it and keeps only the hash, and
:func:`hash_password` writes entries that never held the clear text at all.

``conf/users/`` is read again at the first login after any file in it
changed, so ``sector user add``/``passwd``/``rm`` take effect without a
restart; a file with a bad line is logged (file and line) and the accounts
as they were stay in force. Sessions already logged in are not affected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..config import MB, ConfigError, UserSettings, address_allowed, read_users
from ..errors import (
    E_ACCOUNT,
    E_ACL,
    E_PASSWORD,
    SectorPermissionError,
    SecurityError,
)
from ..protocol.master import Rights
from ..protocol.paths import is_within

#: What a wrong password and (by default) an unknown user are told, alike.
WRONG = "incorrect user name or password"
_SCHEME = "scrypt"
# n=2**14 costs ~30 ms per check: cheap for a login, slow for a guesser.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt>$<hash>``, the form a user file may hold instead of clear text."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.b64encode
    return f"{_SCHEME}${encode(salt).decode()}${encode(digest).decode()}"


def is_hashed(text: str) -> bool:
    return text.startswith(_SCHEME + "$") and text.count("$") == 2


def check_password(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=_N, r=_R, p=_P, dklen=32
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


@dataclass
class User:
    """An account; ``admin`` (the user ``root``, or ``ADMIN TRUE`` in its file) may do anything."""

    name: str
    password_hash: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    acl: list = field(default_factory=list)
    admin: bool = False
    #: Bytes the user may own (QUOTA, given in MB); 0: no quota.
    quota: int = 0

    def __post_init__(self) -> None:
        self.rights = Rights(list(self.read), list(self.write), self.admin)

    def can_read(self, path: str) -> bool:
        return self.rights.can_read(path)

    def can_write(self, path: str) -> bool:
        return self.rights.can_write(path)

    def can_browse(self, path: str) -> bool:
        """Whether a browser may show ``path``: readable, or on the way to something
        readable (``/home`` for a user who may read ``/home/alice``), so that the
        dashboard can lead there without showing what else lies on the way."""
        return self.can_read(path) or any(is_within(p, path) for p in self.read + self.write)

    def check_read(self, path: str) -> None:
        if not self.can_read(path):
            raise SectorPermissionError(f"user {self.name} may not read here", path)

    def check_write(self, path: str) -> None:
        if not self.can_write(path):
            raise SectorPermissionError(f"user {self.name} may not write here", path)

    def check_removable(self, path: str) -> None:
        """Refuse to remove or move away one of the user's write roots (or a directory
        holding one): a root is where the administrator let the user write, often
        shared with others, and removing it would take their files too."""
        if self.admin:
            return
        for root in self.write:
            if is_within(root, path):
                raise SectorPermissionError(
                    f"{root} is where user {self.name} may write: only an administrator "
                    "may remove or move it",
                    path,
                )


log = logging.getLogger("sector.master")


class Users:
    """Every account the master knows, loaded from ``conf/users`` and kept in step with it."""

    def __init__(
        self, users: dict[str, User], directory: Path | None = None, reveal_unknown: bool = False
    ):
        self._users = users
        self._directory = directory
        self._seen = _signature(directory)
        self._lock = threading.Lock()
        #: Whether an unknown user is told so (E_ACCOUNT) rather than "incorrect user
        #: name or password" (E_PASSWORD): Sector told; we do only when asked.
        self.reveal_unknown = reveal_unknown
        self._decoy_hash: str | None = None

    @classmethod
    def load(cls, users_dir: Path, reveal_unknown: bool = False) -> Users:
        """Read every user file; a bad one raises ConfigError (the master does not start)."""
        seen = _signature(users_dir)
        users = cls(_read(users_dir), users_dir, reveal_unknown)
        users._seen = seen
        return users

    def __contains__(self, name: str) -> bool:
        return name in self._users

    def refresh(self) -> None:
        """Reread ``conf/users`` if anything in it changed since it was last read."""
        if self._directory is None or _signature(self._directory) == self._seen:
            return
        with self._lock:  # logins run on several threads: one rereads, the others wait
            seen = _signature(self._directory)
            if seen == self._seen:
                return
            try:
                self._users = _read(self._directory)
            except ConfigError as exc:
                log.error("users not reloaded, the accounts in force stay: %s", exc)
            else:
                log.info("users reloaded from %s: %d accounts", self._directory, len(self._users))
            self._seen = seen

    def authenticate(self, name: str, password: str, address: str) -> User:
        """The user, if the password matches and the address is allowed.

        An unknown user costs the same scrypt as a known one and, unless
        ``reveal_unknown`` (``UNKNOWN_USER_ERROR E_ACCOUNT``), gets the same
        answer as a wrong password: issue 9 measured 5 ms against 70 ms and
        E_ACCOUNT against E_PASSWORD, so names could be listed at ~600/s.
        """
        self.refresh()
        user = self._users.get(name)
        if user is None:
            check_password(password, self._decoy())
            if self.reveal_unknown:
                raise SecurityError(f"no user named {name!r}", code=E_ACCOUNT)
            raise SecurityError(WRONG, code=E_PASSWORD)
        if not check_password(password, user.password_hash):
            raise SecurityError(WRONG, code=E_PASSWORD)
        if not address_allowed(address, user.acl):
            raise SecurityError(f"user {name} may not log in from {address}", code=E_ACL)
        return user

    def _decoy(self) -> str:
        """A hash no password matches, checked for unknown users to take as long."""
        if self._decoy_hash is None:
            self._decoy_hash = hash_password(secrets.token_urlsafe(24))
        return self._decoy_hash


def _read(users_dir: Path) -> dict[str, User]:
    return {name: _from_settings(s) for name, s in read_users(users_dir).items()}


def _signature(directory: Path | None) -> tuple:
    """What changes when a user file is added, removed, replaced or edited."""
    if directory is None:
        return ()
    try:
        with os.scandir(directory) as entries:
            return tuple(
                sorted(
                    (e.name, e.inode(), s.st_mtime_ns, s.st_size)
                    for e in entries
                    if not e.name.startswith(".") and (s := e.stat())
                )
            )
    except OSError:
        return ("unreadable",)


def _from_settings(settings: UserSettings) -> User:
    stored = settings.password
    return User(
        name=settings.name,
        password_hash=stored if is_hashed(stored) else hash_password(stored),
        read=settings.read,
        write=settings.write,
        acl=settings.acl,
        admin=settings.name == "root" or settings.admin,
        quota=settings.quota * MB,
    )


__all__ = ["User", "Users", "check_password", "hash_password", "is_hashed"]
