"""Data tokens: claims signed by the master, checked by the slave with a shared key."""

from __future__ import annotations

import hashlib
import hmac
import time

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sector.protocol.tokens import KEY_BYTES, MAC_BYTES, TokenError, sign, verify

KEY = b"k" * KEY_BYTES
OTHER_KEY = b"o" * KEY_BYTES
CLAIMS = {"op": "read", "oid": 42, "version": 3, "slave": "s1"}


def test_verify_returns_the_claims_that_were_signed() -> None:
    assert verify(KEY, sign(KEY, CLAIMS)) == CLAIMS


def test_a_token_is_the_msgpack_claims_followed_by_an_hmac_sha256() -> None:
    token = sign(KEY, CLAIMS)
    body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
    assert msgpack.unpackb(body) == CLAIMS
    assert mac == hmac.new(KEY, body, hashlib.sha256).digest()


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(TokenError, match="signature"):
        verify(KEY, sign(OTHER_KEY, CLAIMS))


def test_changing_any_single_byte_of_a_token_is_detected() -> None:
    token = sign(KEY, CLAIMS)
    for index in range(len(token)):
        tampered = bytearray(token)
        tampered[index] ^= 0x01
        with pytest.raises(TokenError):
            verify(KEY, bytes(tampered))


def test_claims_cannot_be_swapped_under_an_old_signature() -> None:
    token = sign(KEY, CLAIMS)
    forged = msgpack.packb({**CLAIMS, "oid": 43}) + token[-MAC_BYTES:]
    with pytest.raises(TokenError):
        verify(KEY, forged)


def test_a_token_with_ttl_is_valid_until_it_expires() -> None:
    before = time.time()
    token = sign(KEY, CLAIMS, ttl=60)
    claims = verify(KEY, token, now=before)
    assert before + 60 <= claims["exp"] <= time.time() + 60
    assert verify(KEY, token, now=before + 59)["oid"] == 42
    with pytest.raises(TokenError, match="expired"):
        verify(KEY, token, now=time.time() + 61)


def test_a_token_without_ttl_never_expires() -> None:
    assert "exp" not in verify(KEY, sign(KEY, CLAIMS), now=time.time() + 10 * 365 * 86400)


def test_sign_does_not_change_the_callers_claims() -> None:
    claims = dict(CLAIMS)
    sign(KEY, claims, ttl=5)
    assert claims == CLAIMS


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
        pytest.param(_signed_body(msgpack.packb([1, 2])), id="signed-list-not-map"),
        pytest.param(_signed_body(msgpack.packb({"a": 1}) + b"\x00"), id="signed-trailing"),
    ],
)
def test_malformed_tokens_are_refused_with_token_error(token: object) -> None:
    with pytest.raises(TokenError):
        verify(KEY, token)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_token_error_only(token: bytes) -> None:
    with pytest.raises(TokenError):
        verify(KEY, token)
