"""The master's key and self-signed certificate.

Clients and slaves trust exactly this certificate (see
:func:`sector.transport.client_tls_context`), so a fresh cluster needs no
certificate authority: ``sector up`` calls :func:`create` once and hands
``master_node.cert`` to every client.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def create(cert_path: Path, key_path: Path, days: int = 3650, names: Iterable[str] = ()) -> None:
    """Write a new EC key (mode 0600) and a self-signed certificate for it.

    The certificate names localhost, this host and ``names`` (the master's
    address as clients dial it). Clients trust the certificate itself rather
    than a name in it (:func:`sector.transport.client_tls_context`), so the
    names serve tools that do check them, such as ``openssl s_client``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sector master")])
    now = datetime.datetime.now(datetime.timezone.utc)
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
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
