"""Fixtures that start real Sector processes on 127.0.0.1 with ephemeral ports.

``cluster`` is one master and three slaves shared by the whole session (tests
keep to their own ``workdir``); ``make_cluster`` gives a private cluster to a
test that kills or restarts processes. Both are real ``python -m sector.*``
processes driven through public APIs only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sector
from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import PASSWORD, USER, connect, start_cluster

_names = itertools.count()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = start_cluster(tmp_path_factory.mktemp("sector-home"))
    yield running
    running.stop()


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalCluster]]:
    started: list[LocalCluster] = []

    def make(slaves: int = 3, **options: Any) -> LocalCluster:
        """A private cluster; ``options`` as :func:`tests.support.start_cluster` takes them."""
        running = start_cluster(tmp_path_factory.mktemp("private-home"), slaves, **options)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    session = connect(cluster)
    yield session
    session.close()


@pytest.fixture
def workdir(client: Client, request: pytest.FixtureRequest) -> str:
    """A fresh Sector directory for this test on the shared cluster."""
    path = f"/tests/{request.node.name[:60].replace('/', '_')}-{next(_names)}"
    client.mkdir(path)
    return path


@pytest.fixture
def pysector(cluster: LocalCluster) -> Iterator[object]:
    """The module API logged in to the shared cluster, logged out afterwards."""
    assert cluster.master_address is not None
    host, port = cluster.master_address
    assert sector.init(host, port) == 0
    assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == 0
    yield sector
    sector.logout()
    sector.closeclient()
