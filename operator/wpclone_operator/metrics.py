"""Prometheus metrics of the operator: what a hosting team watches on a dashboard."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wpclone_common import constants

# A clone without a phase yet is counted as Pending.
WAITING_PHASES = (constants.PENDING, constants.PROVISIONING, constants.CLONING)
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

PROVISIONING_SECONDS = Histogram("wpclone_provisioning_seconds", "From a clone's creation until it is Ready",
                                 buckets=DURATION_BUCKETS)
COPY_SECONDS = Histogram("wpclone_copy_seconds", "Duration of copying a site's content", ["kind"],
                         buckets=DURATION_BUCKETS)
COPY_BYTES = Counter("wpclone_copy_bytes", "Bytes of database and files streamed", ["kind"])
SNAPSHOT_COPIES = Counter("wpclone_snapshot_copies", "Clone copies by how a source snapshot served them: "
                          "hit (built from one), recorded (read the site and kept one)", ["outcome"])
SNAPSHOT_BYTES = Counter("wpclone_snapshot_bytes", "Bytes clones read from snapshots instead of from production")
POOL_CLAIMS = Counter("wpclone_pool_claims", "New clones of a pool by whether a ready slot was there to take: "
                      "hit, or miss (made the usual way)", ["outcome"])
POOL_SLOTS = Gauge("wpclone_pool_slots", "Slots of each warm pool: ready to be taken, or starting",
                   ["namespace", "pool", "state"])
FAILURES = Counter("wpclone_failures", "Failed steps by machine-readable reason", ["reason"])


class PhaseCollector(Collector):
    """Counts clones by phase at scrape time, from kopf's in-memory index of all clones."""

    def __init__(self, phases: Callable[[], Mapping[object, Iterable[str | None]]]) -> None:
        self.phases = phases

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts: dict[str, int] = {}
        for values in self.phases().values():
            for phase in values:
                counts[phase or constants.PENDING] = counts.get(phase or constants.PENDING, 0) + 1
        by_phase = GaugeMetricFamily("wpclone_clones", "WordPressClones by phase", labels=["phase"])
        for phase in (constants.PENDING, constants.PROVISIONING, constants.CLONING, constants.PHASE_READY,
                      constants.FAILED, constants.EXPIRING, constants.EXPIRED):
            by_phase.add_metric([phase], counts.get(phase, 0))
        yield by_phase
        waiting = sum(counts.get(phase, 0) for phase in WAITING_PHASES)
        yield GaugeMetricFamily("wpclone_queue_depth", "Clones not yet Ready nor Failed", value=waiting)


def serve(port: int, phases: Callable[[], Mapping[object, Iterable[str | None]]]) -> None:
    REGISTRY.register(PhaseCollector(phases))
    start_http_server(port)
