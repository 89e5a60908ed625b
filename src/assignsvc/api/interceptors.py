"""The server interceptor: authentication, request ids, load shedding, drain refusals, RPC metrics.

One interceptor does all five so Assign pays for one wrapper, not five. The server
uses it without gRPC's interceptor machinery: `wrap` builds each method's handler once
at registration (api.handlers.add_services), and the handler itself authenticates the
call from its metadata before anything else, then aborts (UNAUTHENTICATED,
PERMISSION_DENIED, or RESOURCE_EXHAUSTED over a key's rate limit) or runs with its
datasource in service.scope.CALLER_DATASOURCE. grpc.aio's interceptor path alone cost an
empty handler 3-11% more CPU per call (docs/performance.md), which is why this is not a
grpc.aio.ServerInterceptor. Each call's cost stays a metadata scan, a counter, and a
clock read and histogram observe when metrics are on.
Health and reflection are never wrapped nor authenticated: probes must answer while
the server sheds load or drains.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from assignsvc.api.access_policy import OPEN_PREFIXES, required_scope
from assignsvc.api.scope import CALLER_DATASOURCE, CALLER_GRANT
from assignsvc.api.status import (
    DRAINING,
    OVERLOADED,
    PERMISSION_DENIED,
    STARTING,
    UNAUTHENTICATED_INVALID,
    UNAUTHENTICATED_MALFORMED,
    UNAUTHENTICATED_MISSING,
    rate_limited,
)
from assignsvc.app.access import KeyRing, Refusal
from assignsvc.core.access import Scope
from assignsvc.logs import REQUEST_ID
from assignsvc.metrics import RPC_DURATION

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = OPEN_PREFIXES
# Reads are not logged (Assign is the hot path, and every Get/List would flood the log);
# every other RPC changes something and gets one line with its outcome: an audit trail.
READS = ("Get", "List", "Assign", "BatchAssign", "StreamAssign", "ExportAssignments", "Check", "Watch")
REQUEST_ID_KEY = "x-request-id"
DATASOURCE_KEY = "datasource-id"  # Evidential's metadata names
API_KEY_KEY = "x-api-key"
QUIET_S = 0.25  # drain: no new call for this long before gRPC's own stop
# The end of a drain under steady load: gRPC's stop cancels (CANCELLED, never retried) the calls
# that reached its core but no handler yet. So for HOLD_S before the stop, refusals are held
# (each client then waits on its refused call instead of sending the next one), and they are
# answered UNAVAILABLE only once the stop began (clients sent GOAWAY, nothing queued in the
# core); the stop then waits STOP_TAIL_S for them and for calls still in flight.
HOLD_S = 0.2
STOP_TAIL_S = 0.5
MAX_REQUEST_ID = 128  # a longer client id is cut: it is logged on every line

Behavior = Callable[..., Any]


class ServerInterceptor:
    """Admits at most max_concurrent RPCs (0 = no cap), refuses all while draining;
    times each call into RPC_DURATION when record_metrics (the metrics port is on)."""

    def __init__(self, max_concurrent: int, record_metrics: bool = True, key_ring: KeyRing | None = None) -> None:
        self.max_concurrent = max_concurrent
        self.key_ring = key_ring  # None: no authentication (loopback development only)
        self._policies: dict[str, tuple[Scope, bool]] = {}  # method -> required_scope(method)
        self.record_metrics = record_metrics
        self.in_flight = 0
        self.draining = False
        self.ready = True  # False while the server starts without its Redis: refuse with STARTING
        self._held: asyncio.Event | None = None  # set: held refusals may answer (end of a drain)
        self._last_refused = 0.0  # monotonic time of the last call refused while draining
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-{int(time.time()) & 0xFFFFFF:x}-"

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` of the full method name `method`, doing inside itself, per call, the
        checks (_check) and then the admission, counting and timing (_wrap); built once per
        method: api.handlers.add_services applies it to every method it registers. Health
        and reflection are returned as they are."""
        if method.startswith(EXEMPT_PREFIXES):
            return handler
        return self._wrap(method.rsplit("/", 1)[-1], handler, checked=method)

    def _check(self, method: str, metadata: Any) -> Any:
        """None if the call may go on (its request id, datasource and grant now set for it),
        else the status to refuse it with (STARTING, or the key's refusal)."""
        if not self.ready:
            refusal = STARTING
        else:
            request_id, datasource, api_key = _read_metadata(metadata)
            REQUEST_ID.set(request_id or f"{self._id_prefix}{next(self._ids)}")
            if self.key_ring is None:
                return None
            refusal = self._authenticate(method, datasource, api_key)
            if refusal is None:
                return None
        if self.record_metrics:
            RPC_DURATION.labels(method.rsplit("/", 1)[-1], refusal.code.name).observe(0.0)
        return refusal

    def _authenticate(self, method: str, datasource: str, api_key: str) -> Any:
        """None if the call may go on (its datasource now set for it), else the refusal status."""
        assert self.key_ring is not None
        if not api_key:
            return UNAUTHENTICATED_MISSING
        policy = self._policies.get(method)
        if policy is None:
            policy = self._policies[method] = required_scope(method)
        verdict = self.key_ring.check(datasource, api_key, *policy)
        if not isinstance(verdict, tuple):
            CALLER_DATASOURCE.set(datasource)
            CALLER_GRANT.set(verdict)
            return None
        refusal, delay = verdict
        if refusal is Refusal.PERMISSION_DENIED:
            return PERMISSION_DENIED
        if refusal is Refusal.RATE_LIMITED:
            return rate_limited(delay)
        if refusal is Refusal.MALFORMED:
            return UNAUTHENTICATED_MALFORMED
        return UNAUTHENTICATED_INVALID

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler, checked: str | None = None) -> grpc.RpcMethodHandler:
        """The handler admitted, counted and timed (audited when it changes something); with
        `checked` (the full method name), each call also runs _check first (see wrap)."""
        if not method.startswith(READS):
            handler = _audited(method, handler)
        serializers = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(method, handler.unary_unary, checked), *serializers)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary, checked), *serializers
            )
        streaming = handler.unary_stream is not None
        factory = grpc.unary_stream_rpc_method_handler if streaming else grpc.stream_stream_rpc_method_handler
        behavior = handler.unary_stream or handler.stream_stream
        if not inspect.isasyncgenfunction(behavior):  # a coroutine writing with context.write
            return factory(self._unary(method, behavior, checked), *serializers)
        return factory(self._streaming(method, behavior, checked), *serializers)

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        """Refuse the call (raises) while draining or at the cap."""
        if self.draining:
            self._last_refused = time.monotonic()
            if self._held is not None:
                await self._held.wait()
            if self.record_metrics:
                RPC_DURATION.labels(method, "UNAVAILABLE").observe(0.0)
            await context.abort(DRAINING.code, DRAINING.details, DRAINING.trailing_metadata)
        if self.max_concurrent and self.in_flight >= self.max_concurrent:
            if self.record_metrics:
                RPC_DURATION.labels(method, "RESOURCE_EXHAUSTED").observe(0.0)
            await context.abort(OVERLOADED.code, OVERLOADED.details, OVERLOADED.trailing_metadata)

    async def quiesce(self, deadline: float, quiet_s: float = QUIET_S) -> None:
        """Refuse new calls and wait until none is in flight and none arrived for quiet_s
        (or the monotonic deadline passes). gRPC's own stop would answer calls still
        queued in its core with CANCELLED (grpc/grpc#41785), which clients do not retry:
        this lets clients see NOT_SERVING (client-side health checking) or UNAVAILABLE
        (retried on another replica) first. Under steady load quiet never comes: the
        caller then stops gRPC with a tail of STOP_TAIL_S, still refusing at admission."""
        self.draining = True
        self._last_refused = time.monotonic()
        while time.monotonic() < deadline:
            if self.in_flight == 0 and time.monotonic() - self._last_refused >= quiet_s:
                return
            await asyncio.sleep(0.01)

    def hold_refusals(self) -> None:
        """From now on, a refused call waits for release_refusals() before its UNAVAILABLE."""
        if self._held is None:
            self._held = asyncio.Event()

    def release_refusals(self) -> None:
        """Answer the held refusals (and every later one at once)."""
        if self._held is not None:
            self._held.set()

    def _unary(self, method: str, behavior: Behavior, checked: str | None = None) -> Behavior:
        if not self.record_metrics:
            return self._unary_unmetered(behavior, checked)
        ok = RPC_DURATION.labels(method, "OK")

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if checked is not None and (refusal := self._check(checked, context.invocation_metadata())) is not None:
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            if self.draining or 0 < self.max_concurrent <= self.in_flight:  # a coroutine only to refuse
                await self._admit(context, method)
            self.in_flight += 1
            started = time.perf_counter()
            try:
                response = await behavior(request, context)
            except BaseException:
                self._observe_failure(method, context, started)
                raise
            finally:
                self.in_flight -= 1
            ok.observe(time.perf_counter() - started)
            return response

        return observed

    def _unary_unmetered(self, behavior: Behavior, checked: str | None = None) -> Behavior:
        """The unary wrapper without a clock or histogram: what Assign pays with metrics off."""

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if checked is not None and (refusal := self._check(checked, context.invocation_metadata())) is not None:
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            if self.draining or 0 < self.max_concurrent <= self.in_flight:  # a coroutine only to refuse
                await self._admit(context, "")
            self.in_flight += 1
            try:
                return await behavior(request, context)
            finally:
                self.in_flight -= 1

        return admitted

    def _streaming(self, method: str, behavior: Behavior, checked: str | None = None) -> Behavior:
        ok = RPC_DURATION.labels(method, "OK")

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            if checked is not None and (refusal := self._check(checked, context.invocation_metadata())) is not None:
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            await self._admit(context, method)
            self.in_flight += 1
            started = time.perf_counter()
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException:
                self._observe_failure(method, context, started)
                raise
            finally:
                self.in_flight -= 1
            ok.observe(time.perf_counter() - started)

        return observed

    @staticmethod
    def _observe_failure(method: str, context: grpc.aio.ServicerContext[Any, Any], started: float) -> None:
        code = context.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "CANCELLED" if context.cancelled() else "UNKNOWN"
        RPC_DURATION.labels(method, name).observe(time.perf_counter() - started)


def _read_metadata(metadata: Any) -> tuple[str, str, str]:
    """(request id, datasource id, API key) from the call's metadata, each '' if absent."""
    request_id = datasource = api_key = ""
    for name, value in metadata or ():
        if not isinstance(value, str):
            continue  # a binary (-bin) header
        if name == API_KEY_KEY:
            api_key = value
        elif name == DATASOURCE_KEY:
            datasource = value
        elif name == REQUEST_ID_KEY:
            request_id = value[:MAX_REQUEST_ID]
    return request_id, datasource, api_key


def _audited(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler, logging one line per call (method, status code, milliseconds) when it ends."""

    def logged(behavior: Behavior) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await behavior(request, context)
            except BaseException:
                found = context.code()
                code = found.name if isinstance(found, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                log.info("%s %s in %.1f ms", method, code, (time.perf_counter() - started) * 1000)

        return call

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            logged(handler.unary_unary), handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            logged(handler.stream_unary), handler.request_deserializer, handler.response_serializer
        )
    return handler  # streaming answers: StreamAssign and ExportAssignments, both reads
