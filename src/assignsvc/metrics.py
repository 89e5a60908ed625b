"""Prometheus metrics: what an operator scrapes from the metrics port.

Hot-path counts (assignments by arm, sticky cache hits) are plain ints that the
code already keeps; `ServerCollector` reads them only when Prometheus scrapes, so
Assign pays no metric call for them. Rare events (webhook deliveries, export rows,
Redis round trips of whole pipelines) use prometheus_client directly.
Cardinality: `experiment` x `arm` series are capped at MAX_ARM_SERIES per process;
beyond that, new pairs are counted under experiment="_other", arm="_other".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MAX_ARM_SERIES = 10_000
OTHER = ("_other", "_other")
# Latency buckets from 100 us (a cached Assign) to 10 s (a slow export chunk).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

RPC_DURATION = Histogram(
    "assignsvc_rpc_duration_seconds", "RPC latency by method and status code (its _count is the RPC count)",
    ["method", "code"], buckets=LATENCY_BUCKETS,
)
REDIS_CLAIM_DURATION = Histogram(
    "assignsvc_redis_claim_duration_seconds", "One pipelined round trip of Assign claims to Redis",
    buckets=LATENCY_BUCKETS,
)
REDIS_CLAIM_ERRORS = Counter("assignsvc_redis_claim_errors", "Claim round trips that failed (Redis unavailable)")
FAIL_OPEN_ANSWERS = Counter(
    "assignsvc_fail_open_answers", "Assign answers made without Redis (FAIL_OPEN experiments: persisted=false)",
)
WEBHOOK_DELIVERIES = Counter(
    "assignsvc_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"]
)
EXPORT_ROWS = Counter("assignsvc_export_rows", "Rows sent by ExportAssignments")


class ArmCounts:
    """(experiment id, arm id) -> assignments answered, bounded to MAX_ARM_SERIES pairs."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, experiment_id: str, arm_id: str) -> None:
        """Count one assignment to an arm (a dict update: cheap enough for Assign)."""
        key = (experiment_id, arm_id)
        counts = self.counts
        if key not in counts and len(counts) >= MAX_ARM_SERIES:
            key = OTHER
        counts[key] = counts.get(key, 0) + 1


class ServerCollector(Collector):
    """Exports one server's own counters at scrape time."""

    def __init__(self, arms: ArmCounts, cache_hits: Callable[[], tuple[int, int]], in_flight: Callable[[], int]):
        self._arms = arms
        self._cache_hits = cache_hits
        self._in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        """The current values (called by prometheus_client on each scrape)."""
        arms = CounterMetricFamily(
            "assignsvc_assignments", "Assignments answered with an arm, by experiment and arm",
            labels=["experiment", "arm"],
        )
        for (experiment, arm), count in list(self._arms.counts.items()):
            arms.add_metric([experiment, arm], count)
        yield arms
        hits, misses = self._cache_hits()
        cache = CounterMetricFamily("assignsvc_sticky_cache_lookups", "Sticky cache lookups", labels=["result"])
        cache.add_metric(["hit"], hits)
        cache.add_metric(["miss"], misses)
        yield cache
        yield GaugeMetricFamily("assignsvc_rpc_in_flight", "RPCs being served now", value=self._in_flight())


class MetricsEndpoint:
    """The HTTP server Prometheus scrapes, and this server's collector registered for it."""

    def __init__(self, host: str, port: int, collector: ServerCollector) -> None:
        self._collector = collector
        REGISTRY.register(collector)
        try:
            self._http, self._thread = start_http_server(port, addr=host)
        except BaseException:
            REGISTRY.unregister(collector)
            raise
        self.port = int(self._http.server_address[1])

    def stop(self) -> None:
        """Stop serving and forget this server's collector."""
        self._http.shutdown()
        self._http.server_close()
        REGISTRY.unregister(self._collector)
