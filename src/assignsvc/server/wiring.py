"""Wiring: config -> Redis (external or embedded) -> stores -> use cases -> gRPC server.

`create_server` binds (port 0 picks a free port) and starts everything; `serve`
runs until SIGTERM/SIGINT and then drains within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
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
from assignsvc.api.handlers import add_services
from assignsvc.api.http import UseCases, loopback_address, readiness, serve_http
from assignsvc.api.interceptors import ServerInterceptor
from assignsvc.api.local_calls import local_unaries
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
from assignsvc.logs import scrub
from assignsvc.metrics import MetricsEndpoint, ServerCollector, WorkerMetrics
from assignsvc.server.running import Beside, RunningServer, start_when_redis_answers
from assignsvc.store import RedisAssignmentStore, RedisExperimentStore
from assignsvc.store.access import RedisAccessStore
from assignsvc.store.claims import ClaimCodec
from assignsvc.store.cluster import ClusterAssignmentStore, ClusterTransport
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
from assignsvc.store.transports import FastPipeTransport, RedisPyTransport
from assignsvc.store.webhooks import RedisWebhookStore
from assignsvc.v1 import (
    access_service_pb2,
    assignment_service_pb2,
    bulk_assignment_service_pb2,
    experiment_service_pb2,
    saved_group_service_pb2,
    webhook_service_pb2,
)

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


def _webhook_service(
    redis: RedisClient, keys: Keyspace, config: ServerConfig
) -> tuple[WebhookServicer, RedisWebhookStore, RedisOutbox, DeliverySettings]:
    """WebhookService's servicer; its stores and the delivery settings, for the dispatcher."""
    settings = delivery_settings(config)
    webhook_store, outbox = RedisWebhookStore(redis, keys), RedisOutbox(redis, keys)
    servicer = WebhookServicer(WebhookManager(webhook_store, outbox, settings.allowed))
    return servicer, webhook_store, outbox, settings


def delivery_settings(config: ServerConfig) -> DeliverySettings:
    """The webhook delivery settings of a server config."""
    return DeliverySettings(
        timeout_s=config.webhook_timeout_s,
        schedule=RetrySchedule(config.webhook_retry_schedule),
        disable_after=config.webhook_disable_after,
        allowed=tuple(ipaddress.ip_network(n) for n in config.webhook_allow_networks),
        poll_interval_s=config.webhook_poll_interval_s,
        public_url=config.public_url,
    )


def _assignment_stores(
    redis: RedisClient, redis_url: str, keys: Keyspace, config: ServerConfig
) -> tuple[AssignmentStore, FastScriptPipe | None, AssignmentRows, FastScriptPipe | None]:
    """The Assign path's store (claims on the fast pipe unless it is off or on a cluster,
    pipelined unless that is off), and the bulk rows store (export, preassign) on a
    connection of its own, so that neither queues behind the other."""
    codec = ClaimCodec(keys)
    fast_pipe = None
    redis_assignments: RedisAssignmentStore | ClusterAssignmentStore
    if isinstance(redis, RedisCluster):  # cluster routing stays with redis-py
        redis_assignments = ClusterAssignmentStore(redis, keys, ClusterTransport(redis, codec))
    elif config.redis_pipelines > 0:
        fast = FastPipeTransport(redis_url, config.redis_timeout_s, codec)
        redis_assignments, fast_pipe = RedisAssignmentStore(redis, keys, fast), fast.pipe
    else:
        redis_assignments = RedisAssignmentStore(redis, keys, RedisPyTransport(redis, codec))
    assignment_store: AssignmentStore = redis_assignments
    if config.redis_pipelines > 0:
        assignment_store = PipelinedAssignmentStore(
            redis_assignments, redis_assignments.transport, max_in_flight=config.redis_pipelines
        )
    if isinstance(redis, RedisCluster):
        return assignment_store, fast_pipe, AssignmentRows(cluster_runner(redis), keys), None
    bulk_timeout_s = max(config.redis_timeout_s, BULK_TIMEOUT_S)
    bulk_pipe = FastScriptPipe(redis_url, PREASSIGN_SCRIPT, bulk_timeout_s, name="assignsvc-bulk")
    return assignment_store, fast_pipe, AssignmentRows(pipe_runner(bulk_pipe), keys), bulk_pipe


async def create_server(config: ServerConfig) -> RunningServer:
    """Start Redis if embedded, bind and start the gRPC server, load experiments.

    If Redis does not answer, the server still starts: NOT_SERVING, every call refused
    with UNAVAILABLE (STARTING), retrying in the background until Redis answers
    (`running.ready` is set then). Everything started goes on one exit stack, so each is
    released once, in reverse order, on every path (a failed start as well as stop()).
    """
    owned = contextlib.AsyncExitStack()
    await owned.__aenter__()
    try:
        return await _start(config, owned)
    except BaseException:
        await owned.aclose()
        raise


async def _redis(
    config: ServerConfig, owned: contextlib.AsyncExitStack
) -> tuple[EmbeddedRedis | None, str, RedisClient]:
    """The embedded Redis (started) unless a URL is given, its URL, and a client (connects lazily)."""
    embedded = None
    redis_url = config.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(config.data_dir)
        redis_url = await embedded.start()
        owned.push_async_callback(embedded.stop)
    redis = connect(redis_url, config.redis_timeout_s)
    owned.push_async_callback(redis.aclose)
    return embedded, redis_url, redis


async def _start(config: ServerConfig, owned: contextlib.AsyncExitStack) -> RunningServer:
    """create_server's steps, each started thing pushed on owned as soon as it started."""
    embedded, redis_url, redis = await _redis(config, owned)
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
    owned.push_async_callback(registry.stop)
    assignment_store, fast_pipe, rows, bulk_pipe = _assignment_stores(redis, redis_url, keys, config)
    for pipe in (fast_pipe, bulk_pipe):
        if pipe is not None:
            owned.push_async_callback(pipe.close)
    catalog = ExperimentCatalog(registry, experiment_store, assignment_store, rows=rows)
    # Workers of `serve --workers N` bind one port together (workers.py).
    # gRPC turns SO_REUSEPORT on by default: a second single-process server on a busy
    # port would then start silently and take half the connections (with its own Redis,
    # other arms). Only the workers of one `serve --workers N` may share a port.
    interceptor = ServerInterceptor(
        config.max_concurrent_rpcs, record_metrics=config.metrics_port != 0, key_ring=key_ring
    )
    interceptor.ready = False  # until Redis answered and the registry holds every experiment
    # No gRPC interceptor: add_services wraps each handler with the interceptor's per-call
    # work (the same checks, in the handler), which spares every call grpc.aio's interceptor path.
    server = grpc.aio.server(options=[*SERVER_CHANNEL_OPTIONS, ("grpc.so_reuseport", 1 if config.workers > 1 else 0)])
    # Two timeouts: a claim may wait out pipelines in flight before its own round trip
    # (store/pipelining.py), and a cluster retries once on a refreshed slot map.
    assigner = Assigner(
        registry, assignment_store, cache=StickyCache(config.cache_size), store_timeout_s=2 * config.redis_timeout_s
    )
    webhooks, webhook_store, outbox, settings = _webhook_service(redis, keys, config)
    access = AccessManager(access_store, key_ring)
    registered = add_services(  # bytes in, bytes out: requests are decoded after authentication (api/handlers.py)
        server,
        ExperimentServicer(catalog, ExperimentApplier(catalog, registry, experiment_store, assignment_store)),
        AssignmentServicer(assigner),
        BulkAssignmentServicer(
            Exporter(registry, experiment_store, rows),
            Preassigner(registry, rows),
            activity=lambda: assigner.served,
        ),
        webhooks,
        SavedGroupServicer(SavedGroupCatalog(registry, group_store)),
        DatasourceServicer(access),
        ApiKeyServicer(access),
        wrap=interceptor.wrap,
    )
    health = health_aio.HealthServicer()
    for name in ("", *SERVICE_NAMES):  # grpc_health starts "" as SERVING: not before we are
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    enable_reflection((*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    try:
        port = _listen(server, config)
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        raise ConfigError(f"cannot listen on {config.host}:{config.port} (in use?): {exc}") from None
    grpc_target = await _start_grpc(server, config, port)
    owned.push_async_callback(server.stop, 0)  # after a drain (RunningServer.stop) a no-op
    use_cases = UseCases(
        assigner,
        catalog,
        Exporter(registry, experiment_store, rows),
        key_ring,
        readiness(health),
        grpc_target,
        serving=lambda: interceptor.ready,
        local_unaries=local_unaries(registered),
    )
    http = await serve_http(config, use_cases)
    if http is not None:
        owned.push_async_callback(http.stop, 0.0)  # after a drain (RunningServer.stop) a no-op
    metrics, worker_metrics = _metrics(config, assigner, interceptor)
    if metrics is not None:
        owned.callback(metrics.stop)
    if worker_metrics is not None:
        owned.push_async_callback(worker_metrics.stop)
    running = RunningServer(
        server, port, health, registry, redis, redis_url, interceptor, owned, embedded, config.grace_period_s
    )
    running.metrics, running.key_ring, running.http = metrics, key_ring, http

    # Delivery runs beside the server on its loop, never inside an RPC: Assign does not wait for it.
    beside = Beside(
        WebhookDispatcher(webhook_store, outbox, render_experiment, settings),
        SrmWatcher(registry, catalog, outbox, config.srm_threshold, config.srm_check_interval_s),
        key_ring,
    )
    await start_when_redis_answers(running, beside, ("", *SERVICE_NAMES))
    return running


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


# The collector's thresholds in a serving process. Python's defaults (700, 10, 10) run a
# young collection every 700 allocations and a full one (every live object: the registry,
# the sticky cache's rows) every 100 of those; an Assign allocates tens of objects and a
# BatchAssign item about ten, nearly all freed by reference counting, never by the
# collector. Measured in process (benchmarks/hot_path.py): BatchAssign 14.8 -> 10 us of CPU
# per item with these and gc.freeze(); memory held by cyclic garbage grows by at most
# one threshold's worth of young objects.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Once started: what startup built is never scanned again, collections run less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = await create_server(config)
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before "serving on": a SIGTERM right after it drains
        loop.add_signal_handler(signum, stop.set)
    where = "embedded at " + running.redis_url if running.embedded else running.redis_url
    state = "" if running.ready.is_set() else "; NOT_SERVING until Redis answers"
    log.info(
        "assignsvc serving on %s:%d (pid %d, redis %s%s)", config.host, running.port, os.getpid(), scrub(where), state
    )
    if running.http is not None:
        base = f"http://{config.host}:{running.http.port}"
        log.info("HTTP/JSON on %s (OFREP %s/ofrep/v1, console %s/ui)", base, base, base)
    if running.metrics is not None:
        log.info("metrics on http://%s:%d/metrics", config.host, running.metrics.port)
    try:
        await stop.wait()
        log.info(
            "stopping: NOT_SERVING, draining %d calls for up to %.1fs",
            running.interceptor.in_flight,
            config.grace_period_s,
        )
    finally:
        await running.stop()
    log.info("stopped")
