"""The master's Prometheus figures: counted on the request path, or read at a scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sector.clock import ManualClock
from sector.errors import E_NOEXIST
from sector.master.leases import Leases
from sector.master.metrics import DASHBOARD, PROTOCOL, Metrics
from sector.master.sessions import Session
from sector.master.slaves import Registry
from sector.master.status import TOTALS_TTL, Health, Status
from sector.master.store import ROOT_ID, Store
from sector.master.users import User
from sector.protocol.master import CLIENT_REQUESTS, Ls, Stat, Usage
from sector.protocol.messages import Done, Error


def scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed as Prometheus would."""
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_are_timed_by_op_and_errors_counted_by_code() -> None:
    metrics = Metrics(CLIENT_REQUESTS)
    started = time.perf_counter()
    metrics.answered(Stat, started, Done())
    metrics.answered(Stat, started, Error(E_NOEXIST, "no"))
    metrics.answered(Ls, started, Done())
    found = scrape(metrics)
    assert found[("sector_master_request_duration_seconds_count", (("op", "stat"),))] == 2
    assert found[("sector_master_request_duration_seconds_count", (("op", "ls"),))] == 1
    assert found[("sector_master_request_duration_seconds_sum", (("op", "stat"),))] > 0
    errors = ("sector_master_request_errors_total", (("code", "E_NOEXIST"), ("op", "stat")))
    assert found[errors] == 1
    assert metrics.requests_by_op() == {"stat": 2, "ls": 1}
    assert "process_cpu_seconds_total" in {name for name, _ in found}


def test_logins_are_counted_by_interface_and_result_from_zero() -> None:
    metrics = Metrics(CLIENT_REQUESTS)
    metrics.login(PROTOCOL, accepted=True)
    metrics.login(DASHBOARD, accepted=False)
    metrics.login(DASHBOARD, accepted=False)
    found = scrape(metrics)

    def logins(interface: str, result: str) -> float:
        key = (("interface", interface), ("result", result))
        return found[("sector_master_logins_total", key)]

    assert logins(PROTOCOL, "accepted") == 1 and logins(PROTOCOL, "refused") == 0
    assert logins(DASHBOARD, "refused") == 2 and logins(DASHBOARD, "accepted") == 0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    opened = Store(tmp_path / "meta.db", clock)
    yield opened
    opened.close()


def test_a_scrape_reads_the_cluster_as_it_is_then(store: Store, clock: ManualClock) -> None:
    registry = Registry(clock, timeout=10.0)
    leases = Leases()
    health = Health(under_replicated=2, lost=1, repairs=3)
    status = Status(store, registry, leases, clock, lambda: "127.0.0.1:6000", 2, lambda: health)
    metrics = Metrics(CLIENT_REQUESTS)
    metrics.watch(status)
    shared = "host/801/aa"
    registry.register("a", "127.0.0.2", 1, Usage(1000, 400, 50, 2, shared, received=7, sent=9))
    registry.register("b", "127.0.0.3", 1, Usage(1000, 400, 30, 1, shared))
    clock.advance(11.0)
    registry.update(registry.slaves["a"], Usage(1000, 390, 60, 3, shared, received=70, sent=90))
    registry.expire()  # b fell silent
    store.insert(ROOT_ID, "f", False, size=123, version=1)
    leases.grant(Session(User("u", ""), "x"), 5, 1, "/g", True, "a")

    found = scrape(metrics)
    assert found[("sector_slaves", (("state", "live"),))] == 1
    assert found[("sector_slaves", (("state", "dead"),))] == 1
    assert found[("sector_capacity_bytes", ())] == 1000  # a's disk; b is dead
    assert found[("sector_free_bytes", ())] == 390
    assert found[("sector_disks", ())] == 1
    assert (found[("sector_files", ())], found[("sector_namespace_bytes", ())]) == (1, 123)
    assert found[("sector_open_write_leases", ())] == 1
    assert found[("sector_under_replicated_files", ())] == 2
    assert found[("sector_lost_files", ())] == 1
    assert found[("sector_repairs_in_flight", ())] == 3
    assert found[("sector_slave_received_bytes_total", (("slave", "a"),))] == 70
    assert found[("sector_slave_sent_bytes_total", (("slave", "a"),))] == 90
    assert found[("sector_slave_up", (("slave", "b"),))] == 0
    assert found[("sector_slave_heartbeat_age_seconds", (("slave", "b"),))] == 11.0


def test_replication_figures_are_left_out_while_nothing_tracks_them(
    store: Store, clock: ManualClock
) -> None:
    status = Status(store, Registry(clock, 10.0), Leases(), clock, lambda: "m", 1)
    metrics = Metrics(CLIENT_REQUESTS)
    metrics.watch(status)
    names = {name for name, _ in scrape(metrics)}
    assert "sector_files" in names
    assert not names & {"sector_under_replicated_files", "sector_lost_files"}


def test_namespace_totals_are_reread_at_most_every_few_seconds(
    store: Store, clock: ManualClock
) -> None:
    status = Status(store, Registry(clock, 10.0), Leases(), clock, lambda: "m", 1)
    assert status.overview().files == 0
    store.insert(ROOT_ID, "f", False, size=1, version=1)
    assert status.overview().files == 0  # one table scan serves a while
    clock.advance(TOTALS_TTL)
    assert status.overview().files == 1
