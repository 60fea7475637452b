"""What the master tells Prometheus: counted as it happens, or read when scraped.

Two kinds of figure, both in one ``prometheus_client`` registry per master
(never the library's global one, so two masters in one process - tests - do
not mix their counts):

* **Events**, counted on the request path: how long each request took the
  master, by op (``sector_master_request_duration_seconds``, a histogram whose
  ``_count`` is the number of requests), the requests refused, by op and Sector
  error code, and logins by interface and result. The histogram's children are
  bound once per op here, so the hot path is one dict look-up and one
  ``observe``: ``python -m bench.dispatch`` measures +1.2-2.7 µs of CPU per
  request, against 63-92 µs of master CPU per ``stat`` in all (README,
  "Dashboard and metrics").
* **State**, read when scraped by :class:`ClusterCollector` from the objects
  that hold it (slave registry, leases, store, replication) - so nothing on the
  request path keeps a copy up to date. Per-slave bytes in and out are the
  counters each slave sends in its heartbeats (``Usage.received``/``sent``):
  the master exports them for every slave, so Prometheus needs one target, not
  one per slave, and learns of new slaves with no configuration.

Names follow Prometheus' conventions: ``sector_`` then the subsystem, base
units (seconds, bytes), ``_total`` on counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import code_name
from ..protocol.messages import Error, Request, tag_of

if TYPE_CHECKING:
    from .status import Status

#: Bucket bounds (seconds) of request handling times: most requests take the master
#: 25-150 µs, a login ~30 ms (scrypt), an fsck or a copy seconds. Each op exports
#: one series per bucket, so there are few.
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0, 5.0)

#: Where a login came from: the Sector protocol or the dashboard's form.
PROTOCOL, DASHBOARD = "protocol", "dashboard"
ACCEPTED, REFUSED = "accepted", "refused"


class Metrics:
    """The master's counters and the registry ``/metrics`` serves."""

    def __init__(self, requests: Iterable[type[Request]]):
        self.registry = CollectorRegistry()
        self._duration = Histogram(
            "sector_master_request_duration_seconds",
            "Time the master took to answer a request (from decoded to reply ready), by op; "
            "_count is the number of requests.",
            ["op"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "sector_master_request_errors_total",
            "Requests answered with an error, by op and Sector error code.",
            ["op", "code"],
            registry=self.registry,
        )
        self._logins = Counter(
            "sector_master_logins_total",
            "Logins by interface (protocol, dashboard) and result (accepted, refused).",
            ["interface", "result"],
            registry=self.registry,
        )
        #: ``observe(seconds)`` of each request type's histogram child, bound once.
        self.observe: dict[type[Request], Callable[[float], None]] = {
            kind: self._duration.labels(tag_of(kind)).observe for kind in requests
        }
        for interface in (PROTOCOL, DASHBOARD):
            for result in (ACCEPTED, REFUSED):
                self._logins.labels(interface, result)  # shown as 0 before the first
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def answered(self, kind: type[Request], started: float, reply: object) -> None:
        """Count one answered request that began at ``started`` (``time.perf_counter``)."""
        self.observe[kind](time.perf_counter() - started)
        if type(reply) is Error:
            self._errors.labels(tag_of(kind), code_name(reply.code)).inc()

    def login(self, interface: str, accepted: bool) -> None:
        self._logins.labels(interface, ACCEPTED if accepted else REFUSED).inc()

    def requests_by_op(self) -> dict[str, int]:
        """How many requests of each op were answered since the master started."""
        counts: dict[str, int] = {}
        for metric in self._duration.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.value:
                    counts[sample.labels["op"]] = int(sample.value)
        return counts

    def watch(self, status: Status) -> None:
        """Export the cluster's state as ``status`` reads it, at every scrape."""
        self.registry.register(ClusterCollector(status))

    def exposition(self) -> bytes:
        """The text a Prometheus scrape gets."""
        return generate_latest(self.registry)


class ClusterCollector(Collector):
    """The cluster's state, read from the master's parts when scraped."""

    def __init__(self, status: Status):
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status
        overview = status.overview()
        yield _gauge("sector_master_start_time_seconds", "When the master started (Unix time).",
                     overview.started)  # fmt: skip
        slaves = GaugeMetricFamily(
            "sector_slaves", "Slaves the master knows, by state.", labels=["state"]
        )
        for state, count in overview.slaves_by_state.items():
            slaves.add_metric([state], count)
        yield slaves
        capacity = overview.capacity
        yield _gauge("sector_capacity_bytes",
                     "Size of the file systems under the live slaves, each counted once.",
                     capacity.total)  # fmt: skip
        yield _gauge("sector_free_bytes", "Free space on those file systems, each counted once.",
                     capacity.free)  # fmt: skip
        yield _gauge("sector_stored_bytes", "Bytes the live slaves store for Sector (every copy).",
                     capacity.stored)  # fmt: skip
        yield _gauge("sector_disks", "Distinct file systems under the live slaves.",
                     capacity.disks)  # fmt: skip
        yield _gauge("sector_files", "Files in the namespace.", overview.files)
        yield _gauge("sector_directories", "Directories in the namespace (not the root).",
                     overview.dirs)  # fmt: skip
        yield _gauge("sector_namespace_bytes", "Sum of the sizes of the files in the namespace.",
                     overview.size)  # fmt: skip
        yield _gauge("sector_open_write_leases", "Files open for writing now.", overview.leases)
        health = overview.health
        if health.under_replicated is not None:
            yield _gauge("sector_under_replicated_files",
                         "Files with fewer live copies than wanted.",
                         health.under_replicated)  # fmt: skip
        if health.lost is not None:
            yield _gauge("sector_lost_files", "Files no live slave holds a copy of.", health.lost)
        if health.repairs is not None:
            yield _gauge("sector_repairs_in_flight", "Copies being made to repair replication.",
                         health.repairs)  # fmt: skip
        yield from self._per_slave(status)

    def _per_slave(self, status: Status) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "sector_slave_up", "1 while the slave sends heartbeats, else 0.", labels=["slave"]
        )
        received = CounterMetricFamily(
            "sector_slave_received_bytes",
            "File bytes the slave received from writers (its own counter, reset when it "
            "restarts), as of its last heartbeat.",
            labels=["slave"],
        )
        sent = CounterMetricFamily(
            "sector_slave_sent_bytes",
            "File bytes the slave sent to readers, as of its last heartbeat.",
            labels=["slave"],
        )
        free = GaugeMetricFamily(
            "sector_slave_free_bytes", "Free space on the slave's file system.", labels=["slave"]
        )
        stored = GaugeMetricFamily(
            "sector_slave_stored_bytes", "Bytes the slave stores for Sector.", labels=["slave"]
        )
        age = GaugeMetricFamily(
            "sector_slave_heartbeat_age_seconds",
            "Seconds since the slave was last heard from.",
            labels=["slave"],
        )
        for slave in status.registry.slaves.values():
            label = [slave.id]
            up.add_metric(label, 1 if slave.alive else 0)
            received.add_metric(label, slave.received)
            sent.add_metric(label, slave.sent)
            free.add_metric(label, slave.free)
            stored.add_metric(label, slave.stored)
            age.add_metric(label, status.registry.heartbeat_age(slave))
        yield from (up, received, sent, free, stored, age)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


__all__ = ["Metrics"]
