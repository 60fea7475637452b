"""Data tokens: claims signed by the master, checked by the slave with a shared key."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sector.errors import E_EXPIRED, E_SECURITY, SecurityError
from sector.protocol.tokens import (
    KEY_BYTES,
    MAC_BYTES,
    AdminClaims,
    ReadClaims,
    Receipt,
    TokenError,
    WriteClaims,
    sign,
    verify,
)
from tests.strategies import structs

KEY = b"k" * KEY_BYTES
OTHER_KEY = b"o" * KEY_BYTES
CLAIMS = ReadClaims(oid=42, version=3)
NOW = 1_700_000_000.0


def test_verify_returns_the_claims_that_were_signed() -> None:
    assert verify(KEY, sign(KEY, CLAIMS), ReadClaims, NOW) == CLAIMS


@given(st.one_of(structs(ReadClaims), structs(WriteClaims), structs(AdminClaims), structs(Receipt)))
def test_every_kind_of_claims_survives_signing(claims: object) -> None:
    assert verify(KEY, sign(KEY, claims), type(claims), NOW) == claims  # type: ignore[arg-type]


def test_a_token_is_the_msgpack_expiry_and_claims_followed_by_an_hmac_sha256() -> None:
    token = sign(KEY, CLAIMS, expires=NOW + 60)
    body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
    assert msgspec.msgpack.decode(body) == [NOW + 60, ["read", 42, 3]]
    assert mac == hmac.new(KEY, body, hashlib.sha256).digest()


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(TokenError, match="signature"):
        verify(KEY, sign(OTHER_KEY, CLAIMS), ReadClaims, NOW)


def test_changing_any_single_byte_of_a_token_is_detected() -> None:
    token = sign(KEY, CLAIMS)
    for index in range(len(token)):
        tampered = bytearray(token)
        tampered[index] ^= 0x01
        with pytest.raises(TokenError):
            verify(KEY, bytes(tampered), ReadClaims, NOW)


def test_claims_cannot_be_swapped_under_an_old_signature() -> None:
    token = sign(KEY, CLAIMS)
    forged = msgspec.msgpack.encode((None, ReadClaims(43, 3))) + token[-MAC_BYTES:]
    with pytest.raises(TokenError):
        verify(KEY, forged, ReadClaims, NOW)


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    """A read token offered for a write (or as an admin order) fails on its tag."""
    token = sign(KEY, CLAIMS)
    for other in (WriteClaims, AdminClaims, Receipt):
        with pytest.raises(TokenError, match="not valid for this operation") as refused:
            verify(KEY, token, other, NOW)
        assert refused.value.code == E_SECURITY


def test_a_token_is_valid_until_it_expires_and_then_says_so_by_its_code() -> None:
    token = sign(KEY, CLAIMS, expires=NOW + 60)
    assert verify(KEY, token, ReadClaims, now=NOW + 60) == CLAIMS
    with pytest.raises(TokenError, match="expired") as expired:
        verify(KEY, token, ReadClaims, now=NOW + 61)
    assert expired.value.code == E_EXPIRED


def test_a_token_without_expiry_never_expires() -> None:
    assert verify(KEY, sign(KEY, CLAIMS), ReadClaims, now=NOW + 10 * 365 * 86400) == CLAIMS


def test_a_token_error_is_a_security_error_so_servers_answer_it_like_any_other() -> None:
    assert issubclass(TokenError, SecurityError)
    assert TokenError("bad token signature").code == E_SECURITY


def _signed_body(body: bytes) -> bytes:
    return body + hmac.new(KEY, body, hashlib.sha256).digest()


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("a string", id="str"),
        pytest.param(None, id="none"),
        pytest.param(bytearray(b"x" * 64), id="bytearray"),
        pytest.param(b"", id="empty"),
        pytest.param(b"x" * MAC_BYTES, id="mac-only"),
        pytest.param(_signed_body(b"\xc1"), id="signed-garbage-body"),
        pytest.param(_signed_body(msgspec.msgpack.encode([1, 2])), id="signed-wrong-shape"),
        pytest.param(_signed_body(msgspec.msgpack.encode({"a": 1})), id="signed-map"),
        pytest.param(
            _signed_body(msgspec.msgpack.encode([None, ["read", 1, 2]]) + b"\x00"),
            id="signed-trailing",
        ),
        pytest.param(
            _signed_body(msgspec.msgpack.encode([None, ["read", "1", 2]])), id="signed-ill-typed"
        ),
    ],
)
def test_malformed_tokens_are_refused_with_token_error(token: object) -> None:
    with pytest.raises(TokenError):
        verify(KEY, token, ReadClaims, NOW)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_token_error_only(token: bytes) -> None:
    with pytest.raises(TokenError):
        verify(KEY, token, ReadClaims, NOW)
