"""A started server's lifecycle: becoming ready once Redis answers, and the orderly stop.

Everything `create_server` starts is pushed on one exit stack, so each thing is released
once, in reverse order of its start, whether the start failed halfway or stop() ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from assignsvc.api.http import HttpEdge
from assignsvc.api.interceptors import HOLD_S, STOP_TAIL_S, ServerInterceptor
from assignsvc.app.access import KeyRing
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.webhooks import SrmWatcher, WebhookDispatcher
from assignsvc.errors import StoreUnavailableError
from assignsvc.metrics import MetricsEndpoint
from assignsvc.store.connection import RedisClient
from assignsvc.store.embedded import EmbeddedRedis

log = logging.getLogger("assignsvc")


@dataclass
class RunningServer:
    """A started server and everything it owns (on one exit stack), for an orderly stop."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    registry: ExperimentRegistry
    redis: RedisClient
    redis_url: str
    interceptor: ServerInterceptor
    owned: contextlib.AsyncExitStack
    embedded: EmbeddedRedis | None = None
    grace_period_s: float = 5.0
    metrics: MetricsEndpoint | None = None
    key_ring: KeyRing | None = None
    http: HttpEdge | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        """NOT_SERVING at once and refuse new calls (UNAVAILABLE), let in-flight calls
        finish within the grace period, stop gRPC so that no call it took in is CANCELLED
        (interceptors.HOLD_S), then release everything in reverse order."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + self.grace_period_s
        self.interceptor.draining = True
        try:
            await self.health.enter_graceful_shutdown()
            if self.http is not None:
                await self.http.stop(deadline - HOLD_S)
            await self.interceptor.quiesce(deadline - HOLD_S)
            self.interceptor.hold_refusals()
            await asyncio.sleep(max(0.0, min(HOLD_S, deadline - time.monotonic())))
            stopping = asyncio.create_task(self.server.stop(max(0.0, deadline - time.monotonic()) + STOP_TAIL_S))
            await asyncio.sleep(0.05)  # the stop began: clients got GOAWAY, the core takes no new call
            self.interceptor.release_refusals()
            await stopping
        finally:
            self.interceptor.release_refusals()
            await self.owned.aclose()


@dataclass(frozen=True)
class Beside:
    """What runs beside the server once Redis answered: webhook delivery, SRM checks, key use."""

    dispatcher: WebhookDispatcher
    srm_watcher: SrmWatcher
    key_ring: KeyRing | None


async def start_when_redis_answers(running: RunningServer, beside: Beside, services: tuple[str, ...]) -> None:
    """Load the registry and start what runs beside the server, then SERVING; if Redis does
    not answer, return at once and do it in the background (NOT_SERVING, calls refused
    with UNAVAILABLE meanwhile), retrying with backoff."""
    try:  # the common case: Redis answers at once, and create_server returns a SERVING server
        await running.registry.start()
    except StoreUnavailableError as exc:
        log.warning("Redis does not answer (%s): NOT_SERVING, retrying until it does", exc)
        starting = asyncio.create_task(_logged(_become_ready(running, beside, services)), name="assignsvc-start")
        running.owned.push_async_callback(_cancel, starting)
    else:
        await _become_ready(running, beside, services, loaded=True)


async def _become_ready(
    running: RunningServer, beside: Beside, services: tuple[str, ...], *, loaded: bool = False
) -> None:
    owned = running.owned
    if not loaded:
        await _retry_until_redis_answers(running.registry.start)
    await _retry_until_redis_answers(beside.dispatcher.start)
    owned.push_async_callback(beside.dispatcher.stop)
    beside.srm_watcher.start()
    owned.push_async_callback(beside.srm_watcher.stop)
    if beside.key_ring is not None:
        beside.key_ring.start()
        owned.push_async_callback(beside.key_ring.stop)
    # Redis answered and the registry holds every experiment and group (registry.start()
    # returned with its change feed live): only now may probes and balancers send traffic.
    running.interceptor.ready = True
    for name in services:
        await running.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    running.ready.set()


START_RETRY_S = (0.05, 1.0)  # backoff while Redis does not answer at start: first, longest


async def _retry_until_redis_answers(step: Callable[[], Awaitable[None]]) -> None:
    """Run step until it does not fail with StoreUnavailableError, backing off up to 1 s
    (so a replica serves within about a second of its Redis answering)."""
    delay, longest = START_RETRY_S
    while True:
        try:
            await step()
            return
        except StoreUnavailableError as exc:
            log.info("waiting for Redis: %s (retrying in %.2fs)", exc, delay)
        await asyncio.sleep(delay)
        delay = min(2 * delay, longest)


async def _logged(step: Awaitable[None]) -> None:
    """Await step in the background, logging a failure at once (the server stays NOT_SERVING)."""
    try:
        await step
    except Exception:
        log.exception("starting the server failed: it stays NOT_SERVING")


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
