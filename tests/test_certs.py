"""The cluster's authority: slave certificates and join tokens, without any server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from sector import certs


@pytest.fixture
def authority(tmp_path: Path) -> certs.Authority:
    certs.create(tmp_path / "master.cert", tmp_path / "master.key")
    return certs.Authority.load(tmp_path / "master.cert", tmp_path / "master.key")


def other_cluster(tmp_path: Path) -> certs.Authority:
    certs.create(tmp_path / "other.cert", tmp_path / "other.key")
    return certs.Authority.load(tmp_path / "other.cert", tmp_path / "other.key")


def test_a_join_token_is_good_until_it_expires(authority: certs.Authority) -> None:
    now = time.time()
    token = authority.join_token(60, now)
    certs.check_join_token(token, authority.cert, now + 59)
    with pytest.raises(certs.CertificateError, match="expired"):
        certs.check_join_token(token, authority.cert, now + 61)


def test_a_join_token_of_another_cluster_or_tampered_with_is_refused(
    authority: certs.Authority, tmp_path: Path
) -> None:
    now = time.time()
    foreign = other_cluster(tmp_path).join_token(60, now)
    with pytest.raises(certs.CertificateError, match="not made for this cluster"):
        certs.check_join_token(foreign, authority.cert, now)
    prefix, payload, signature = authority.join_token(60, now).split(".")
    longer = certs._b64(certs._unb64(payload).replace(b'"expires":', b'"expires":9'))
    with pytest.raises(certs.CertificateError, match="not made for this cluster"):
        certs.check_join_token(f"{prefix}.{longer}.{signature}", authority.cert, now)
    for garbage in ("", "abc", "sector-join-1.x.y", "a.b.c.d"):
        with pytest.raises(certs.CertificateError, match="not a join token"):
            certs.check_join_token(garbage, authority.cert, now)


def test_an_issued_certificate_names_the_slave_and_its_role_and_chains_to_the_master(
    authority: certs.Authority, tmp_path: Path
) -> None:
    request = certs.make_request(tmp_path / "slave.key", "asked-for-this")
    (tmp_path / "slave.cert").write_bytes(authority.issue(request, "s-42"))
    assert certs.issued_by(tmp_path / "slave.cert", tmp_path / "master.cert")
    assert not certs.issued_by(tmp_path / "slave.cert", _other_cert(tmp_path))
    assert (tmp_path / "slave.key").stat().st_mode & 0o777 == 0o600
    # the name the master chose, not the one the request asked for, as TLS reports it
    subject = x509.load_pem_x509_certificate((tmp_path / "slave.cert").read_bytes()).subject
    names = {
        NameOID.COMMON_NAME: "commonName",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    }
    as_ssl_reports = {"subject": tuple(((names[a.oid], a.value),) for a in subject)}
    assert certs.identity(as_ssl_reports) == certs.Identity(certs.ROLE_SLAVE, "s-42")


def test_a_slave_asks_again_for_the_key_it_has_and_a_new_one_only_when_it_has_none(
    tmp_path: Path,
) -> None:
    first = certs.requested_key(certs.make_request(tmp_path / "slave.key", "s"))
    assert certs.requested_key(certs.make_request(tmp_path / "slave.key", "s")) == first
    assert certs.requested_key(certs.make_request(tmp_path / "other.key", "s")) != first
    with pytest.raises(certs.CertificateError, match="unreadable certificate request"):
        certs.requested_key(b"not a request")


def _other_cert(tmp_path: Path) -> Path:
    other_cluster(tmp_path)
    return tmp_path / "other.cert"


def test_a_request_that_is_not_one_is_refused(authority: certs.Authority) -> None:
    with pytest.raises(certs.CertificateError, match="unreadable certificate request"):
        authority.issue(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "s1")


def test_no_certificate_means_no_identity() -> None:
    assert certs.identity(None) is None and certs.identity({}) is None
