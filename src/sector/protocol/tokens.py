"""Short-lived signed capabilities for data connections, and the commit receipt.

The master never carries file data. Instead it signs a token naming exactly
what a client may do on one slave (read object 42 version 3, or write a new
version of it) and until when; the slave checks the signature with the key it
received when it registered. The same key signs the commit receipt a slave
hands back after a write, which is how the master knows the client did not
invent the size or checksum it reports on ``close``.

Every slave has a key of its own, :func:`slave_key` of the master's cluster
key and the slave's id, sent only to that slave (over the mutually
authenticated link of a member, see :mod:`sector.certs`). So a slave that is
compromised can forge tokens and receipts for itself - whose bytes it holds
anyway - and for no other slave. The rule that follows, for every token the
master makes: **sign it with the key of the slave that will check it.** A
read grant carries one token per replica; a token for a transfer between
slaves (a slave fetching a replica from another) is checked by the *source*
slave, so the master signs it with the source's key, and the receipt of the
copy is signed by the destination with its own.

A token is ``msgpack([expires, claims]) + HMAC-SHA256(key, that)``; the claims
are one of the tagged structs below, so a token for one purpose can never be
read as another (a read token offered for a write is refused by its tag).
Times are passed in by the caller, who reads them from its clock
(:mod:`sector.clock`), so tests can expire a token without waiting.

Tokens are bearer credentials, and on a plain data connection anyone on the
path may see one, so what must happen once is bound to happen once: a write
token names its lease, and the slave accepts one write session per lease
(:mod:`sector.slave.spent`); an admin token carries the digest of the one
order it allows and is accepted once; a receipt names its lease, whose ids
are never reused (not even across master restarts), and the master accepts
one ``close`` per lease. Read tokens may be used as often as their expiry
allows, for the one version of the one file they name.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TypeVar

import msgspec

from ..errors import E_EXPIRED, E_SECURITY, SecurityError

KEY_BYTES = 32
MAC_BYTES = 32


class TokenError(SecurityError):
    """Bad signature, wrong shape, wrong purpose or expired: refuse the request.

    ``code`` says which refusal it is: E_EXPIRED for a token that is merely
    too old (a reader renews it and carries on), E_SECURITY for everything else.
    """

    def __init__(self, message: str, code: int = E_SECURITY):
        super().__init__(message, code=code)


class Claims(msgspec.Struct, array_like=True, frozen=True, tag_field="kind"):
    """What a token allows; the tag says for what."""


class ReadClaims(Claims, tag="read"):
    """Read version ``version`` of object ``oid``, on any slave holding it."""

    oid: int
    version: int


class WriteClaims(Claims, tag="write"):
    """Write version ``version`` of ``oid`` on slave ``slave``, under lease ``lease``,
    starting from the bytes of version ``base`` (0: from nothing). ``path`` is the
    file's path, which the slave keeps beside the object (for ``fsck --adopt``);
    ``limit`` the most bytes the new version may grow to (the writer's quota; -1: no
    limit)."""

    oid: int
    version: int
    base: int
    lease: int
    slave: str
    path: str = ""
    limit: int = -1


class AdminClaims(Claims, tag="admin"):
    """One order of the master to slave ``slave``: the order whose
    :meth:`~sector.protocol.data.AdminRequest.digest` is ``digest``, once."""

    slave: str
    digest: bytes = b""


class Receipt(Claims, tag="receipt"):
    """Signed by a slave at commit: what it stored, for which lease."""

    oid: int
    version: int
    size: int
    checksum: str
    slave: str
    lease: int


C = TypeVar("C", bound=Claims)


def slave_key(cluster_key: bytes, slave_id: str) -> bytes:
    """The key of slave ``slave_id``: what it checks tokens with and signs receipts with.

    Derived (HMAC-SHA256) rather than stored, so the master keeps one secret
    however many slaves join, and a slave's key cannot be worked back to the
    cluster key or to another slave's.
    """
    return hmac.new(cluster_key, b"sector slave key\x00" + slave_id.encode(), "sha256").digest()


class KeyRing:
    """The master's cluster key and the per-slave keys derived from it (kept once made)."""

    def __init__(self, cluster_key: bytes):
        self._cluster_key = cluster_key
        self._keys: dict[str, bytes] = {}

    def __call__(self, slave_id: str) -> bytes:
        key = self._keys.get(slave_id)
        if key is None:
            if len(self._keys) >= 100_000:  # ids are the registered slaves': a bound, not a cap
                self._keys.clear()
            key = self._keys[slave_id] = slave_key(self._cluster_key, slave_id)
        return key

    def sign(self, slave_id: str, claims: Claims, expires: float | None = None) -> bytes:
        """A token (or receipt) that slave ``slave_id`` will check."""
        return sign(self(slave_id), claims, expires)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(
    tuple[float | None, ReadClaims | WriteClaims | AdminClaims | Receipt]
)


def sign(key: bytes, claims: Claims, expires: float | None = None) -> bytes:
    """Token bytes carrying ``claims``, valid until ``expires`` (epoch seconds; None: forever)."""
    body = _encoder.encode((expires, claims))
    return body + hmac.new(key, body, hashlib.sha256).digest()


def verify(key: bytes, token: object, kind: type[C], now: float) -> C:
    """The claims inside ``token`` if its signature is good, it is a ``kind`` token,
    and ``now`` (epoch seconds) is not past its expiry; else :class:`TokenError`."""
    return verified(key, token, kind, now)[0]


def verified(key: bytes, token: object, kind: type[C], now: float) -> tuple[C, float | None]:
    """:func:`verify`, with the token's expiry: how long a single-use token must be
    remembered as used (after that its expiry refuses it anyway)."""
    if not isinstance(token, bytes) or len(token) <= MAC_BYTES:
        raise TokenError("malformed token")
    body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise TokenError("bad token signature")
    try:
        expires, claims = _decoder.decode(body)
    except msgspec.DecodeError:
        raise TokenError("malformed token") from None
    if not isinstance(claims, kind):
        raise TokenError("token is not valid for this operation")
    if expires is not None and now > expires:
        raise TokenError("token expired", code=E_EXPIRED)
    return claims, expires
