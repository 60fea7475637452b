"""QUOTA: a user owns so much and no more; a write past it fails cleanly.

Issue 9, finding 6: ``QUOTA`` was parsed and ignored (a user with ``QUOTA 1``
stored 10 MB). A file is owned by the user who wrote its current version; a
write that would pass the quota fails with E_NODISK at the put that passes
it, nothing of it is left anywhere, and what the user owns is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import NoDiskError
from sector.master.users import hash_password
from sector.protocol.messages import READ, WRITE
from sector.provision import UserFile, write_file
from tests.support import wait_until

KB = 1024
QUOTA_MB = 1


def _user(cluster: LocalCluster, name: str, quota_mb: int) -> Client:
    """A user who may write under /<name>, owning ``quota_mb`` MB at most; logged in."""
    account = UserFile(name, hash_password("pw"), write=[f"/{name}"], quota_mb=quota_mb)
    write_file(cluster.layout.conf / "users" / name, account.text(), secret=True)
    assert cluster.master_address is not None
    client = Client(*cluster.master_address)
    client.login(name, "pw", cluster.layout.cert)
    return client


def _objects(cluster: LocalCluster) -> list[Path]:
    """Every object (and every temporary) on the cluster's one slave."""
    data = cluster.layout.slave_dir(1)
    return [*(data / "objects").rglob("*.*.*"), *(data / "tmp").iterdir()]


@pytest.fixture
def quota_cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    return make_cluster(slaves=1)


def test_an_upload_past_the_quota_fails_cleanly_and_leaves_nothing(
    quota_cluster: LocalCluster, tmp_path: Path
) -> None:
    client = _user(quota_cluster, "qa", QUOTA_MB)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(os.urandom(600 * KB))
    second.write_bytes(os.urandom(600 * KB))
    client.upload(first, "/qa/first")
    owned = client.quota()
    assert owned == {"user": "qa", "used": 600 * KB, "files": 1, "quota": QUOTA_MB * 1024 * KB}
    kept = _objects(quota_cluster)

    with pytest.raises(NoDiskError, match="quota exceeded"):
        client.upload(second, "/qa/second")  # 1,200 KB in all: the put passes the quota
    assert not client.exists("/qa/second")
    assert client.quota() == owned
    wait_until(lambda: _objects(quota_cluster) == kept, what="nothing left on the slave")

    with client.open("/qa/first", READ) as handle:  # the first file is whole
        assert handle.read() == first.read_bytes()
    client.close()


def test_a_streamed_write_past_the_quota_fails_at_close_and_keeps_the_old_version(
    quota_cluster: LocalCluster,
) -> None:
    client = _user(quota_cluster, "qb", QUOTA_MB)
    with client.open("/qb/f", WRITE) as handle:
        handle.write(b"old")
    handle = client.open("/qb/f", WRITE)
    for _ in range(6):
        handle.write(os.urandom(200 * KB))  # 1,200 KB: past the quota on the way
    with pytest.raises(NoDiskError, match="quota exceeded"):
        handle.close()
    with client.open("/qb/f", READ) as reader:
        assert reader.read() == b"old"
    assert client.quota()["used"] == 3
    # rewriting one's own file frees what it held: 900 KB fits where 600 KB more would not
    with client.open("/qb/f", WRITE) as handle:
        handle.write(b"x" * 900 * KB)
    assert client.quota()["used"] == 900 * KB
    client.close()


def test_writes_that_fit_alone_but_not_together_are_refused_at_the_second_commit(
    quota_cluster: LocalCluster,
) -> None:
    client = _user(quota_cluster, "qc", QUOTA_MB)
    one, two = client.open("/qc/one", WRITE), client.open("/qc/two", WRITE)
    one.write(b"1" * 600 * KB)
    two.write(b"2" * 600 * KB)
    one.close()
    with pytest.raises(NoDiskError, match="quota exceeded"):
        two.close()
    assert not client.exists("/qc/two")
    assert client.quota()["used"] == 600 * KB
    with pytest.raises(NoDiskError):  # a copy is the copier's, and counts too
        client.copy("/qc/one", "/qc/copy")
    client.close()
