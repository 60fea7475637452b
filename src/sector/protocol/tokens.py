"""Short-lived signed capabilities for data connections.

The master never carries file data. Instead it signs a token naming exactly
what a client may do on one slave (read object 42 version 3, or write a new
version of it) and for how long; the slave checks the signature with the key it
received when it registered. The same key signs the commit receipt a slave
hands back after a write, which is how the master knows the client did not
invent the size or checksum it reports on close.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import msgpack

KEY_BYTES = 32
MAC_BYTES = 32


class TokenError(Exception):
    """Bad signature, wrong shape or expired: refuse the request."""


def sign(key: bytes, claims: dict[str, Any], ttl: float | None = None) -> bytes:
    """Token bytes carrying ``claims``; with ``ttl`` it stops being valid after that."""
    if ttl is not None:
        claims = {**claims, "exp": time.time() + ttl}
    body = msgpack.packb(claims, use_bin_type=True)
    return body + hmac.new(key, body, hashlib.sha256).digest()


def verify(key: bytes, token: object, now: float | None = None) -> dict[str, Any]:
    """The claims inside ``token`` if its signature is good and it has not expired."""
    if not isinstance(token, bytes) or len(token) <= MAC_BYTES:
        raise TokenError("malformed token")
    body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise TokenError("bad token signature")
    try:
        claims = msgpack.unpackb(body, raw=False)
    except Exception:
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    expiry = claims.get("exp")
    if expiry is not None and (now if now is not None else time.time()) > expiry:
        raise TokenError("token expired")
    return claims
