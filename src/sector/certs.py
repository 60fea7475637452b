"""The cluster's certificates: the master's, the slaves' it issues, and join tokens.

The master's self-signed certificate (``master_node.cert``) is also the
cluster's certificate authority: it was always made with ``CA:TRUE,
pathlen:0``, so it can sign end-entity certificates and nothing that signs in
turn. Everyone trusts exactly that certificate, in two ways:

* clients and slaves dialling the master accept only that very certificate as
  the master (:func:`sector.transport.check_master`), never one it issued - a
  slave's certificate chains to it, and must not pass for the master;
* the master, and clients opening encrypted data connections, accept a
  certificate it issued whose role (the subject's OU) is ``slave``, naming
  the slave in its CN (:func:`identity`).

A slave makes its own key and asks to join (:func:`make_request`); the master
signs the request (:meth:`Authority.issue`) when it comes with a join token
the cluster's operator made (:meth:`Authority.join_token`). The token is
signed with the master's key, so only someone who could read that key - the
operator on the master's machine, or ``sector up`` - can make one, and the
master needs no list of tokens to check it. The slave's private key never
leaves the slave.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The roles a certificate may carry (the subject's organizational unit).
ROLE_MASTER, ROLE_SLAVE = "master", "slave"
#: How long an issued slave certificate lasts (as long as the master's own by default).
SLAVE_CERT_DAYS = 3650
_TOKEN_PREFIX = "sector-join-1"


class CertificateError(Exception):
    """A certificate, request or join token is unreadable, forged or expired."""


def create(cert_path: Path, key_path: Path, days: int = 3650, names: Iterable[str] = ()) -> None:
    """Write a new EC key (mode 0600) and a self-signed certificate for it: a new cluster.

    The certificate names localhost, this host and ``names`` (the master's
    address as clients dial it). Clients trust the certificate itself rather
    than a name in it (:func:`sector.transport.client_tls_context`), so the
    names serve tools that do check them, such as ``openssl s_client``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Sector master"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_MASTER),
        ]
    )
    now = _now()
    alt_names: list[x509.GeneralName] = []
    for text in ["localhost", socket.gethostname(), "127.0.0.1", *names]:
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            name = x509.DNSName(text)
        if name not in alt_names:
            alt_names.append(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key in PEM, created mode 0600 (never readable by others, even briefly)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)


# --- who a peer is ----------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What a verified peer certificate says: its role and its name (a slave's id)."""

    role: str
    name: str


def identity(peercert: dict | None) -> Identity | None:
    """The role and name in a certificate as ``ssl`` reports a *verified* one
    (``getpeercert()``); None when the peer showed no certificate."""
    if not peercert:
        return None
    fields: dict[str, str] = {}
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            fields.setdefault(key, value)
    return Identity(fields.get("organizationalUnitName", ""), fields.get("commonName", ""))


# --- the authority: the master's key ---------------------------------------------------


class Authority:
    """The master's certificate and key, as the issuer of slave certificates and join tokens."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.cert, self.key = cert, key

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> Authority:
        """Read the master's certificate and key; CertificateError if either is unusable."""
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise CertificateError(f"cannot load {cert_path} and {key_path}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{key_path}: not an EC key (made by `sector conf init`?)")
        return cls(cert, key)

    def issue(self, request_pem: bytes, name: str, days: int = SLAVE_CERT_DAYS) -> bytes:
        """A slave certificate (PEM) for the key in ``request_pem``, naming slave ``name``.

        The subject is ours, not the request's: the requester chooses only its key.
        """
        request = _load_request(request_pem)
        public_key = request.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateError("a slave's key must be an EC key")
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_slave_subject(name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def join_token(self, valid_for: float, now: float) -> str:
        """A token that lets slaves join until ``now + valid_for`` (epoch seconds).

        It may be used by several slaves (one configuration directory serves
        every disk of a machine) until it expires; whoever holds it can join
        the cluster, so it is kept like a password (``join.token``, mode 0600).
        """
        payload = json.dumps(
            {"expires": round(now + valid_for, 3), "nonce": secrets.token_hex(8)},
            separators=(",", ":"),
        ).encode()
        signature = self.key.sign(_TOKEN_PREFIX.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return f"{_TOKEN_PREFIX}.{_b64(payload)}.{_b64(signature)}"


def check_join_token(token: str, cert: x509.Certificate, now: float) -> None:
    """Raise CertificateError unless ``token`` was made with ``cert``'s key and is unexpired."""
    try:
        prefix, payload_text, signature_text = token.strip().split(".")
        if prefix != _TOKEN_PREFIX:
            raise ValueError(prefix)
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except ValueError:
        raise CertificateError("not a join token (made by `sector conf join-token`?)") from None
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    try:
        public_key.verify(signature, _TOKEN_PREFIX.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CertificateError("the join token was not made for this cluster") from None
    expires = json.loads(payload).get("expires")
    if not isinstance(expires, (int, float)) or now > expires:
        raise CertificateError("the join token has expired: make a new one on the master")


# --- the slave's side -------------------------------------------------------------------


def make_request(key_path: Path, name: str) -> bytes:
    """A request to certify this slave's key, made at ``key_path`` (0600) unless one is
    there already: a slave joining again (its certificate lost, or the master's replaced)
    keeps its key, which the master pinned to its id at the first join."""
    key = _existing_key(key_path)
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        write_key(key_path, key)
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_slave_subject(name))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def _existing_key(key_path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def requested_key(request_pem: bytes) -> str:
    """The fingerprint (SHA-256 of the public key, hex) of the key a certificate request
    asks to certify; CertificateError if the request is unreadable or not self-signed."""
    public = (
        _load_request(request_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(public).hexdigest()


def _load_request(request_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate request: {exc}") from None
    if not request.is_signature_valid:
        raise CertificateError("the certificate request is not signed by its own key")
    return request


def issued_by(cert_path: Path, authority_path: Path) -> bool:
    """Whether the certificate at ``cert_path`` is one the master at ``authority_path``
    issued and is still valid (a slave whose cluster was re-created must join again)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        authority = x509.load_pem_x509_certificate(authority_path.read_bytes())
        cert.verify_directly_issued_by(authority)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc > _now()


def _slave_subject(name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_SLAVE),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError(text) from None
