"""Prometheus metrics: what an operator scrapes from the metrics port.

Hot-path counts (assignments by arm, sticky cache hits) are plain ints that the
code already keeps; `ServerCollector` reads them only when Prometheus scrapes, so
Assign pays no metric call for them. Rare events (webhook deliveries, export rows,
Redis round trips of whole pipelines) use prometheus_client directly.
Cardinality: `experiment` x `arm` series are capped at MAX_ARM_SERIES per process;
beyond that, new pairs are counted under experiment="_other", arm="_other".

Under `serve --workers N` (N > 1) every worker writes its metrics to prometheus-client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the supervisor before it spawns
them) and the supervisor serves their sum (`MultiProcessEndpoint`). A collector's
figures live in one process's memory, which the supervisor cannot read, so each worker
copies them into multiprocess counters and a gauge once a second (`WorkerMetrics`):
Assign still pays nothing for them, and they lag by up to a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MAX_ARM_SERIES = 10_000
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name, read at its import
PUBLISH_INTERVAL_S = 1.0
OTHER = ("_other", "_other")
# Latency buckets from 100 us (a cached Assign) to 10 s (a slow export chunk).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

RPC_DURATION = Histogram(
    "assignsvc_rpc_duration_seconds",
    "RPC latency by method and status code (its _count is the RPC count)",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
)
HTTP_DURATION = Histogram(
    "assignsvc_http_duration_seconds",
    "HTTP request latency by route (its template, never the raw path) and status (its _count is the request count)",
    ["route", "status"],
    buckets=LATENCY_BUCKETS,
)
REDIS_CLAIM_DURATION = Histogram(
    "assignsvc_redis_claim_duration_seconds",
    "One pipelined round trip of Assign claims to Redis",
    buckets=LATENCY_BUCKETS,
)
REDIS_CLAIM_ERRORS = Counter("assignsvc_redis_claim_errors", "Claim round trips that failed (Redis unavailable)")
FAIL_OPEN_ANSWERS = Counter(
    "assignsvc_fail_open_answers",
    "Assign answers made without Redis (FAIL_OPEN experiments: persisted=false)",
)
WEBHOOK_DELIVERIES = Counter("assignsvc_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"])
EXPORT_ROWS = Counter("assignsvc_export_rows", "Rows sent by ExportAssignments")


class ArmCounts:
    """(experiment id, arm id) -> assignments answered, bounded to MAX_ARM_SERIES pairs."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, experiment_id: str, arm_id: str, count: int = 1) -> None:
        """Count `count` assignments to an arm (a dict update: cheap enough for Assign)."""
        key = (experiment_id, arm_id)
        counts = self.counts
        if key not in counts and len(counts) >= MAX_ARM_SERIES:
            key = OTHER
        counts[key] = counts.get(key, 0) + count


class ServerCollector(Collector):
    """Exports one server's own counters at scrape time."""

    def __init__(self, arms: ArmCounts, cache_hits: Callable[[], tuple[int, int]], in_flight: Callable[[], int]):
        self._arms = arms
        self._cache_hits = cache_hits
        self._in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        """The current values (called by prometheus_client on each scrape)."""
        arms = CounterMetricFamily(
            "assignsvc_assignments",
            "Assignments answered with an arm, by experiment and arm",
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


class WorkerMetrics:
    """One worker's collector figures (assignments by arm, cache lookups, RPCs in flight)
    copied into multiprocess metrics every PUBLISH_INTERVAL_S, and once more at stop."""

    def __init__(self, arms: ArmCounts, cache_hits: Callable[[], tuple[int, int]], in_flight: Callable[[], int]):
        self._arms = arms
        self._cache_hits = cache_hits
        self._in_flight = in_flight
        # registry=None: nothing scrapes this process; the values go to its multiprocess file.
        self._assignments = Counter(
            "assignsvc_assignments",
            "Assignments answered with an arm, by experiment and arm",
            ["experiment", "arm"],
            registry=None,
        )
        self._lookups = Counter("assignsvc_sticky_cache_lookups", "Sticky cache lookups", ["result"], registry=None)
        # livesum: the workers' figures added up, a dead worker's dropped (mark_process_dead).
        self._gauge = Gauge(
            "assignsvc_rpc_in_flight", "RPCs being served now", multiprocess_mode="livesum", registry=None
        )
        self._published: dict[tuple[str, str], int] = {}
        self._published_lookups = (0, 0)
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        """Add what was counted since the last call; set the gauge."""
        for key, count in list(self._arms.counts.items()):
            delta = count - self._published.get(key, 0)
            if delta:
                self._assignments.labels(*key).inc(delta)
                self._published[key] = count
        hits, misses = self._cache_hits()
        if hits > self._published_lookups[0]:
            self._lookups.labels("hit").inc(hits - self._published_lookups[0])
        if misses > self._published_lookups[1]:
            self._lookups.labels("miss").inc(misses - self._published_lookups[1])
        self._published_lookups = (hits, misses)
        self._gauge.set(self._in_flight())

    def start(self) -> None:
        """Publish every PUBLISH_INTERVAL_S on the running loop."""
        self._task = asyncio.create_task(self._run(), name="worker-metrics")

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_INTERVAL_S)

    async def stop(self) -> None:
        """Stop publishing, after a last publish (what this worker counted is kept)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.publish()


def share_with_workers(path: Path) -> None:
    """Make the processes spawned from now on write their metrics to files in `path`.

    prometheus-client reads the variable when it is imported, which a spawned worker does
    before any of its code runs: the supervisor has to set it in its own environment.
    """
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_DIR_VARIABLE] = str(path)


class MultiProcessEndpoint:
    """The supervisor's metrics endpoint: every worker's multiprocess files, summed at scrape time."""

    def __init__(self, host: str, port: int, path: Path) -> None:
        self.path = path
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call, unused-ignore]  # no annotations upstream
        self._http, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(self._http.server_address[1])

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's live gauge (RPCs in flight); its counters stay in the sums."""
        multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call, unused-ignore]  # as above

    def stop(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()
