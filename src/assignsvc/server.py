"""Wiring: config -> Redis (external or embedded) -> stores -> use cases -> gRPC server.

`create_server` binds (port 0 picks a free port) and starts everything; `serve`
runs until SIGTERM/SIGINT and then drains within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from redis.asyncio.cluster import RedisCluster

from assignsvc.applier import ExperimentApplier
from assignsvc.assigner import Assigner
from assignsvc.catalog import ExperimentCatalog
from assignsvc.config import ConfigError, ServerConfig
from assignsvc.errors import StoreUnavailableError
from assignsvc.redis_server import RedisServerProcess, socket_path_for
from assignsvc.registry import ExperimentRegistry
from assignsvc.saved_groups import SavedGroupCatalog
from assignsvc.service import AssignmentServicer, ExperimentServicer, SavedGroupServicer
from assignsvc.sticky_cache import StickyCache
from assignsvc.store import RedisAssignmentStore, RedisExperimentStore
from assignsvc.store.assignments import CLAIM_SCRIPT
from assignsvc.store.cluster import ClusterAssignmentStore
from assignsvc.store.connection import RedisClient, connect
from assignsvc.store.fastpipe import FastScriptPipe
from assignsvc.store.keys import Keyspace
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.protocols import AssignmentStore
from assignsvc.store.saved_groups import RedisSavedGroupStore
from assignsvc.v1 import assignment_service_pb2, experiment_service_pb2, saved_group_service_pb2
from assignsvc.v1 import assignment_service_pb2_grpc as assignment_grpc
from assignsvc.v1 import experiment_service_pb2_grpc as experiment_grpc
from assignsvc.v1 import saved_group_service_pb2_grpc as saved_group_grpc

log = logging.getLogger("assignsvc")

SERVICE_NAMES = (
    experiment_service_pb2.DESCRIPTOR.services_by_name["ExperimentService"].full_name,
    assignment_service_pb2.DESCRIPTOR.services_by_name["AssignmentService"].full_name,
    saved_group_service_pb2.DESCRIPTOR.services_by_name["SavedGroupService"].full_name,
)
EMBEDDED_WATCH_INTERVAL_S = 1.0


class EmbeddedRedis:
    """The embedded Redis of `serve`: one per data dir (locked), restarted if it dies."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = RedisServerProcess(data_dir, unix_socket=socket_path_for(data_dir))
        self._lock_file: IO[str] | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Lock the data dir, start Redis on a unix socket with AOF, return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = (self.data_dir / "serve.lock").open("w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise ConfigError(
                f"data dir {self.data_dir} is in use by another `assignsvc serve`; "
                "give each embedded instance its own --data-dir, or share one with --redis-url"
            ) from None
        self._lock_file = lock_file
        await asyncio.to_thread(self.process.start)
        self._watch = asyncio.create_task(self._restart_if_dead(), name="embedded-redis-watch")
        return self.process.url

    async def _restart_if_dead(self) -> None:
        while True:
            await asyncio.sleep(EMBEDDED_WATCH_INTERVAL_S)
            if not self.process.alive():
                log.error("embedded redis exited; restarting it from %s", self.data_dir)
                try:
                    await asyncio.to_thread(self.process.start)
                except Exception:
                    log.exception("embedded redis restart failed; retrying")

    async def stop(self) -> None:
        """Stop watching, stop Redis (flushing the AOF), release the lock."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.to_thread(self.process.stop)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


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
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        """NOT_SERVING at once, let in-flight calls finish, then release Redis."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_period_s)
        await self.registry.stop()
        if self.fast_pipe is not None:
            await self.fast_pipe.close()
        await self.redis.aclose()
        if self.embedded is not None:
            await self.embedded.stop()


async def create_server(config: ServerConfig) -> RunningServer:
    """Start Redis if embedded, load experiments, bind and start the gRPC server."""
    embedded = None
    redis_url = config.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(config.data_dir)
        redis_url = await embedded.start()
    redis = connect(redis_url, config.redis_timeout_s)
    fast_pipe: FastScriptPipe | None = None
    try:
        keys = Keyspace(config.key_prefix)
        experiment_store = RedisExperimentStore(redis, keys)
        group_store = RedisSavedGroupStore(redis, keys)
        registry = ExperimentRegistry(experiment_store, config.refresh_interval_s, group_store)
        await registry.start()
        redis_assignments: RedisAssignmentStore = (
            ClusterAssignmentStore(redis, keys) if isinstance(redis, RedisCluster)
            else RedisAssignmentStore(redis, keys)
        )
        assignment_store: AssignmentStore = redis_assignments
        if config.redis_pipelines > 0:
            if "cluster" not in redis_url.split("://", 1)[0]:  # cluster routing stays with redis-py
                fast_pipe = FastScriptPipe(redis_url, CLAIM_SCRIPT, config.redis_timeout_s)
            assignment_store = PipelinedAssignmentStore(
                redis_assignments, fast_pipe, max_in_flight=config.redis_pipelines
            )
        catalog = ExperimentCatalog(registry, experiment_store, assignment_store)
        # Workers of `serve --workers N` bind one port together (workers.py).
        # gRPC turns SO_REUSEPORT on by default: a second single-process server on a busy
        # port would then start silently and take half the connections (with its own Redis,
        # other arms). Only the workers of one `serve --workers N` may share a port.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if config.workers > 1 else 0)])
        experiment_grpc.add_ExperimentServiceServicer_to_server(
            ExperimentServicer(catalog, ExperimentApplier(catalog, registry, experiment_store, assignment_store)),
            server,
        )
        assignment_grpc.add_AssignmentServiceServicer_to_server(
            AssignmentServicer(Assigner(registry, assignment_store, cache=StickyCache(config.cache_size))), server
        )
        saved_group_grpc.add_SavedGroupServiceServicer_to_server(
            SavedGroupServicer(SavedGroupCatalog(registry, group_store)), server
        )
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            server,
        )
        try:
            port = server.add_insecure_port(f"{config.host}:{config.port}")
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise ConfigError(f"cannot listen on {config.host}:{config.port} (in use?): {exc}") from None
        await server.start()
    except BaseException:
        if fast_pipe is not None:
            await fast_pipe.close()
        await redis.aclose()
        if embedded is not None:
            await embedded.stop()
        raise
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(
        server, port, health, registry, redis, redis_url, embedded, config.grace_period_s, fast_pipe
    )


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    try:
        running = await create_server(config)
    except StoreUnavailableError as exc:
        raise ConfigError(f"cannot reach Redis: {exc}") from exc
    where = "embedded at " + running.redis_url if running.embedded else running.redis_url
    log.info("assignsvc serving on %s:%d (pid %d, redis %s)", config.host, running.port, os.getpid(), where)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping: draining for up to %.1fs", config.grace_period_s)
    finally:
        await running.stop()
    log.info("stopped")
