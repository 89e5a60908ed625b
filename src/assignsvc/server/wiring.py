"""Wiring: config -> Redis (external or embedded) -> stores -> use cases -> gRPC server.

`create_server` binds (port 0 picks a free port) and starts everything; `serve`
runs until SIGTERM/SIGINT and then drains within the grace period.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from redis.asyncio.cluster import RedisCluster

from assignsvc.api import (
    AssignmentServicer,
    BulkAssignmentServicer,
    ExperimentServicer,
    SavedGroupServicer,
    WebhookServicer,
)
from assignsvc.api.access_servicer import ApiKeyServicer, DatasourceServicer
from assignsvc.api.convert import experiment_to_pb
from assignsvc.api.http import HttpEdge, UseCases, loopback_address, readiness, serve_http
from assignsvc.api.interceptors import ServerInterceptor
from assignsvc.api.reflection import enable_reflection
from assignsvc.app.access import AccessManager, KeyRing
from assignsvc.app.apply import ExperimentApplier
from assignsvc.app.assign import Assigner
from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.export import Exporter
from assignsvc.app.preassign import Preassigner
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.saved_groups import SavedGroupCatalog
from assignsvc.app.webhooks import DeliverySettings, SrmWatcher, WebhookDispatcher, WebhookManager
from assignsvc.config import SERVER_CHANNEL_OPTIONS, ConfigError, ServerConfig, is_loopback_host
from assignsvc.core.access import key_digest, well_formed
from assignsvc.core.retry import RetrySchedule
from assignsvc.errors import StoreUnavailableError
from assignsvc.logs import scrub
from assignsvc.metrics import MetricsEndpoint, ServerCollector, WorkerMetrics
from assignsvc.store import RedisAssignmentStore, RedisExperimentStore
from assignsvc.store.access import RedisAccessStore
from assignsvc.store.assignments import CLAIM_BATCH_SCRIPT
from assignsvc.store.cluster import ClusterAssignmentStore
from assignsvc.store.codec import experiment_from_json
from assignsvc.store.connection import RedisClient, connect
from assignsvc.store.embedded import EmbeddedRedis
from assignsvc.store.fastpipe import FastScriptPipe
from assignsvc.store.keys import Keyspace
from assignsvc.store.outbox import RedisOutbox
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.protocols import AssignmentStore
from assignsvc.store.rows import BULK_TIMEOUT_S, PREASSIGN_SCRIPT, AssignmentRows, cluster_runner, pipe_runner
from assignsvc.store.saved_groups import RedisSavedGroupStore
from assignsvc.store.sticky_cache import StickyCache
from assignsvc.store.webhooks import RedisWebhookStore
from assignsvc.v1 import (
    access_service_pb2,
    assignment_service_pb2,
    bulk_assignment_service_pb2,
    experiment_service_pb2,
    saved_group_service_pb2,
    webhook_service_pb2,
)
from assignsvc.v1 import access_service_pb2_grpc as access_grpc
from assignsvc.v1 import assignment_service_pb2_grpc as assignment_grpc
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bulk_grpc
from assignsvc.v1 import experiment_service_pb2_grpc as experiment_grpc
from assignsvc.v1 import saved_group_service_pb2_grpc as saved_group_grpc
from assignsvc.v1 import webhook_service_pb2_grpc as webhook_grpc

log = logging.getLogger("assignsvc")

SERVICE_NAMES = (
    experiment_service_pb2.DESCRIPTOR.services_by_name["ExperimentService"].full_name,
    assignment_service_pb2.DESCRIPTOR.services_by_name["AssignmentService"].full_name,
    bulk_assignment_service_pb2.DESCRIPTOR.services_by_name["BulkAssignmentService"].full_name,
    webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    saved_group_service_pb2.DESCRIPTOR.services_by_name["SavedGroupService"].full_name,
    access_service_pb2.DESCRIPTOR.services_by_name["DatasourceService"].full_name,
    access_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"].full_name,
)


def render_experiment(stored_json: str) -> dict[str, Any]:
    """A stored experiment as the API returns it (webhook events' data.object)."""
    message = experiment_to_pb(experiment_from_json(stored_json))
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))


def _add_webhook_service(
    server: grpc.aio.Server, redis: RedisClient, keys: Keyspace, config: ServerConfig
) -> tuple[RedisWebhookStore, RedisOutbox, DeliverySettings]:
    """Register WebhookService; its stores and the delivery settings, for the dispatcher."""
    settings = delivery_settings(config)
    webhook_store, outbox = RedisWebhookStore(redis, keys), RedisOutbox(redis, keys)
    webhook_grpc.add_WebhookServiceServicer_to_server(
        WebhookServicer(WebhookManager(webhook_store, outbox, settings.allowed)), server
    )
    return webhook_store, outbox, settings


def delivery_settings(config: ServerConfig) -> DeliverySettings:
    """The webhook delivery settings of a server config."""
    return DeliverySettings(
        timeout_s=config.webhook_timeout_s,
        schedule=RetrySchedule(config.webhook_retry_schedule),
        disable_after=config.webhook_disable_after,
        allowed=tuple(ipaddress.ip_network(n) for n in config.webhook_allow_networks),
        poll_interval_s=config.webhook_poll_interval_s,
    )


@dataclass
class RunningServer:
    """A started server and everything it owns, for an orderly stop."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    registry: ExperimentRegistry
    redis: RedisClient
    redis_url: str
    embedded: EmbeddedRedis | None = None
    grace_period_s: float = 5.0
    fast_pipe: FastScriptPipe | None = None
    bulk_pipe: FastScriptPipe | None = None
    dispatcher: WebhookDispatcher | None = None
    srm_watcher: SrmWatcher | None = None
    interceptor: ServerInterceptor | None = None
    metrics: MetricsEndpoint | None = None
    worker_metrics: WorkerMetrics | None = None
    key_ring: KeyRing | None = None
    http: HttpEdge | None = None
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        """NOT_SERVING at once and refuse new calls (UNAVAILABLE), let in-flight calls
        finish within the grace period, then release Redis."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + self.grace_period_s
        if self.interceptor is not None:
            self.interceptor.draining = True
        await self.health.enter_graceful_shutdown()
        if self.http is not None:
            await self.http.stop(deadline)
        if self.interceptor is not None:
            await self.interceptor.quiesce(deadline)
        await self.server.stop(max(0.0, deadline - time.monotonic()))
        if self.metrics is not None:
            self.metrics.stop()
        if self.worker_metrics is not None:
            await self.worker_metrics.stop()
        await _release(self.srm_watcher, self.dispatcher)
        if self.key_ring is not None:
            await self.key_ring.stop()
        await self.registry.stop()
        await _release(self.fast_pipe, self.bulk_pipe, self.redis, self.embedded)


Closeable = SrmWatcher | WebhookDispatcher | FastScriptPipe | EmbeddedRedis | RedisClient | None


async def _release(*owned: Closeable) -> None:
    """Stop or close each, in the order given (None: never started)."""
    for thing in owned:
        if isinstance(thing, SrmWatcher | WebhookDispatcher | EmbeddedRedis):
            await thing.stop()
        elif isinstance(thing, FastScriptPipe):
            await thing.close()
        elif thing is not None:
            await thing.aclose()


def _assignment_stores(
    redis: RedisClient, redis_url: str, keys: Keyspace, config: ServerConfig
) -> tuple[AssignmentStore, FastScriptPipe | None, AssignmentRows, FastScriptPipe | None]:
    """The Assign path's store (claims pipelined on the fast pipe unless it is off or on a
    cluster), and the bulk rows store (export, preassign) on a connection of its own, so
    that neither queues behind the other."""
    redis_assignments: RedisAssignmentStore = (
        ClusterAssignmentStore(redis, keys) if isinstance(redis, RedisCluster) else RedisAssignmentStore(redis, keys)
    )
    assignment_store: AssignmentStore = redis_assignments
    fast_pipe = bulk_pipe = None
    if config.redis_pipelines > 0:
        if not isinstance(redis, RedisCluster):  # cluster routing stays with redis-py
            fast_pipe = FastScriptPipe(redis_url, CLAIM_BATCH_SCRIPT, config.redis_timeout_s)
        assignment_store = PipelinedAssignmentStore(redis_assignments, fast_pipe, max_in_flight=config.redis_pipelines)
    if isinstance(redis, RedisCluster):
        return assignment_store, fast_pipe, AssignmentRows(cluster_runner(redis), keys), None
    bulk_timeout_s = max(config.redis_timeout_s, BULK_TIMEOUT_S)
    bulk_pipe = FastScriptPipe(redis_url, PREASSIGN_SCRIPT, bulk_timeout_s, name="assignsvc-bulk")
    return assignment_store, fast_pipe, AssignmentRows(pipe_runner(bulk_pipe), keys), bulk_pipe


async def create_server(config: ServerConfig) -> RunningServer:
    """Start Redis if embedded, load experiments, bind and start the gRPC server."""
    embedded = None
    redis_url = config.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(config.data_dir)
        redis_url = await embedded.start()
    redis = connect(redis_url, config.redis_timeout_s)
    fast_pipe = bulk_pipe = None
    dispatcher: WebhookDispatcher | None = None
    srm_watcher: SrmWatcher | None = None
    try:
        keys = Keyspace(config.key_prefix)
        experiment_store = RedisExperimentStore(redis, keys)
        group_store = RedisSavedGroupStore(redis, keys)
        access_store = RedisAccessStore(redis, keys)
        key_ring = _key_ring(config, access_store)
        registry = ExperimentRegistry(
            experiment_store,
            config.refresh_interval_s,
            group_store,
            on_access_change=key_ring.reload if key_ring is not None else None,
        )
        await registry.start()
        assignment_store, fast_pipe, rows, bulk_pipe = _assignment_stores(redis, redis_url, keys, config)
        catalog = ExperimentCatalog(registry, experiment_store, assignment_store, rows=rows)
        # Workers of `serve --workers N` bind one port together (workers.py).
        # gRPC turns SO_REUSEPORT on by default: a second single-process server on a busy
        # port would then start silently and take half the connections (with its own Redis,
        # other arms). Only the workers of one `serve --workers N` may share a port.
        interceptor = ServerInterceptor(
            config.max_concurrent_rpcs, record_metrics=config.metrics_port != 0, key_ring=key_ring
        )
        server = grpc.aio.server(
            interceptors=[interceptor],
            options=[*SERVER_CHANNEL_OPTIONS, ("grpc.so_reuseport", 1 if config.workers > 1 else 0)],
        )
        experiment_grpc.add_ExperimentServiceServicer_to_server(
            ExperimentServicer(catalog, ExperimentApplier(catalog, registry, experiment_store, assignment_store)),
            server,
        )
        # Two timeouts: a claim may wait out pipelines in flight before its own round trip
        # (store/pipelining.py), and a cluster retries once on a refreshed slot map.
        assigner = Assigner(
            registry, assignment_store, cache=StickyCache(config.cache_size), store_timeout_s=2 * config.redis_timeout_s
        )
        assignment_grpc.add_AssignmentServiceServicer_to_server(AssignmentServicer(assigner), server)
        bulk_grpc.add_BulkAssignmentServiceServicer_to_server(
            BulkAssignmentServicer(
                Exporter(registry, experiment_store, rows),
                Preassigner(registry, rows),
                activity=lambda: assigner.served,
            ),
            server,
        )
        webhook_store, outbox, settings = _add_webhook_service(server, redis, keys, config)
        saved_group_grpc.add_SavedGroupServiceServicer_to_server(
            SavedGroupServicer(SavedGroupCatalog(registry, group_store)), server
        )
        _add_access_services(server, AccessManager(access_store, key_ring))
        health = HealthServicer()
        for name in ("", *SERVICE_NAMES):  # grpc_health starts "" as SERVING: not before we are
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        enable_reflection((*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
        try:
            port = _listen(server, config)
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise ConfigError(f"cannot listen on {config.host}:{config.port} (in use?): {exc}") from None
        grpc_target = await _start_grpc(server, config, port)
        # Delivery runs beside the server on its loop, never inside an RPC: Assign does not wait for it.
        dispatcher = WebhookDispatcher(webhook_store, outbox, render_experiment, settings)
        await dispatcher.start()
        srm_watcher = SrmWatcher(registry, catalog, outbox, config.srm_threshold, config.srm_check_interval_s)
        srm_watcher.start()
        if key_ring is not None:
            key_ring.start()
        metrics, worker_metrics = _metrics(config, assigner, interceptor)
        http = await serve_http(
            config,
            UseCases(
                assigner, catalog, Exporter(registry, experiment_store, rows), key_ring, readiness(health), grpc_target
            ),
        )
    except BaseException:
        await _release(srm_watcher, dispatcher, fast_pipe, bulk_pipe, redis, embedded)
        raise
    # Redis answered and the registry holds every experiment and group (registry.start()
    # returned with its change feed live): only now may probes and balancers send traffic.
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(
        server,
        port,
        health,
        registry,
        redis,
        redis_url,
        embedded,
        config.grace_period_s,
        fast_pipe,
        bulk_pipe,
        dispatcher,
        srm_watcher,
        interceptor,
        metrics,
        worker_metrics,
        key_ring,
        http,
    )


async def _start_grpc(server: grpc.aio.Server, config: ServerConfig, port: int) -> str | None:
    """Start the gRPC server; with HTTP on, also on the address the HTTP edge's transcoded
    calls reach it at, which is returned (None: HTTP off)."""
    target = loopback_address(os.getpid(), port) if config.http_port else None
    if target is not None:
        server.add_insecure_port(target)
    await server.start()
    return target


def _listen(server: grpc.aio.Server, config: ServerConfig) -> int:
    """Bind host:port, with TLS when a certificate is configured; the port bound."""
    address = f"{config.host}:{config.port}"
    if config.tls_cert is None or config.tls_key is None:
        if config.auth and not is_loopback_host(config.host):
            log.warning(
                "API keys on a plaintext port (%s): protect them on the network with --tls-cert/--tls-key "
                "or a service mesh's mTLS (a sidecar dialled on 127.0.0.1 needs neither)",
                address,
            )
        return int(server.add_insecure_port(address))
    credentials = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())])
    return int(server.add_secure_port(address, credentials))


def _add_access_services(server: grpc.aio.Server, manager: AccessManager) -> None:
    access_grpc.add_DatasourceServiceServicer_to_server(DatasourceServicer(manager), server)
    access_grpc.add_ApiKeyServiceServicer_to_server(ApiKeyServicer(manager), server)


def _key_ring(config: ServerConfig, store: RedisAccessStore) -> KeyRing | None:
    """The key ring every call is checked against (None without auth: loopback only, loudly);
    the registry's change feed reloads it."""
    if not config.auth:
        if not is_loopback_host(config.host):
            raise ConfigError(f"authentication is off: refusing to listen on {config.host} (loopback only)")
        log.warning(
            "AUTHENTICATION IS OFF: every caller on this machine may read and change every experiment "
            "(default datasource). Only for local development; bind elsewhere with --auth on."
        )
        return None
    operator_digest = ""
    if config.operator_key:
        if not well_formed(config.operator_key):
            raise ConfigError("ASSIGNSVC_OPERATOR_KEY is not a well-formed key (make one with `assignsvc keygen`)")
        operator_digest = key_digest(config.operator_key)
    return KeyRing(store, operator_digest)


def _metrics(
    config: ServerConfig, assigner: Assigner, interceptor: ServerInterceptor
) -> tuple[MetricsEndpoint | None, WorkerMetrics | None]:
    """The Prometheus endpoint on config.metrics_port (none when 0: off); under
    `--workers N` the supervisor serves it, and this worker publishes its figures to it."""
    if not config.metrics_port:
        return None, None
    cache = assigner.cache
    sources = (assigner.arm_counts, lambda: (cache.hits, cache.misses), lambda: interceptor.in_flight)
    if config.workers > 1:
        shared = WorkerMetrics(*sources)
        shared.start()
        return None, shared
    try:
        return MetricsEndpoint(config.host, config.metrics_port, ServerCollector(*sources)), None
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {config.host}:{config.metrics_port} (in use?): {exc}") from None


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    try:
        running = await create_server(config)
    except StoreUnavailableError as exc:
        raise ConfigError(f"cannot reach Redis: {exc}") from exc
    where = "embedded at " + running.redis_url if running.embedded else running.redis_url
    log.info("assignsvc serving on %s:%d (pid %d, redis %s)", config.host, running.port, os.getpid(), scrub(where))
    if running.metrics is not None:
        log.info("metrics on http://%s:%d/metrics", config.host, running.metrics.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info(
            "stopping: NOT_SERVING, draining %d calls for up to %.1fs",
            running.interceptor.in_flight if running.interceptor else 0,
            config.grace_period_s,
        )
    finally:
        await running.stop()
    log.info("stopped")
