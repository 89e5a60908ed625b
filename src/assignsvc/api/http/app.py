"""The HTTP server: one aiohttp application on grpc.aio's event loop, beside the gRPC port.

One middleware does what the gRPC interceptor does for RPCs: request ids, start, drain and
in-flight refusals (503 with Retry-After instead of an unbounded queue), per-route latency
histograms, and the last word on errors: a domain error is its Status, aiohttp's own
refusals (404, 405, 413) become Status JSON too, and anything else is logged and answered
500 with a generic body (a bug; never a stack trace). Routes: health (`/healthz`,
`/readyz` following the gRPC health state), the transcoded v1 API, Evidential's routes
and OFREP (modules beside this one).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.rpc import code_pb2

from assignsvc.api.http.connections import ConnectionGuard, ConnectionLimits, GuardedSite
from assignsvc.api.http.errors import HttpRefusalError, error_response, status_of, status_response
from assignsvc.api.local_calls import LocalUnary
from assignsvc.api.status import STARTING_MESSAGE
from assignsvc.app.access import KeyRing
from assignsvc.app.assign import Assigner
from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.export import Exporter
from assignsvc.errors import AssignsvcError
from assignsvc.logs import REQUEST_ID
from assignsvc.metrics import HTTP_DURATION

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128
# A JSON body past this is refused with 413 (streamed NDJSON and CSV bodies are read line by line).
MAX_BODY_BYTES = 1024 * 1024
# A client that has not sent its whole body by then is cut off (408).
BODY_TIMEOUT_S = 30.0
# Idle keep-alive connections are closed after this long.
KEEPALIVE_TIMEOUT_S = 75.0
DRAIN_RETRY_AFTER_S = "1"
OPEN_PATHS = ("/healthz", "/readyz")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class UseCases:
    """What the HTTP routes call: the same use cases (and key ring) as the gRPC servicers."""

    assigner: Assigner
    catalog: ExperimentCatalog
    exporter: Exporter
    key_ring: KeyRing | None
    ready: Callable[[], Awaitable[bool]]
    # The gRPC server's own address, for the transcoded API's calls (None: not transcoded).
    grpc_target: str | None = None
    # False while the server starts without its Redis: routes answer 503 (STARTING), as RPCs do.
    serving: Callable[[], bool] = lambda: True
    # The registered unary handlers, which transcoded routes call in process (api.local_calls).
    local_unaries: Mapping[str, LocalUnary] = field(default_factory=dict)


class HttpEdge:
    """The HTTP server's state: its runner, in-flight count and drain flag."""

    def __init__(
        self, use_cases: UseCases, max_in_flight: int, record_metrics: bool, limits: ConnectionLimits | None = None
    ) -> None:
        self.use_cases = use_cases
        self.connections = ConnectionGuard(limits or ConnectionLimits())
        self.max_in_flight = max_in_flight
        self.record_metrics = record_metrics
        self.in_flight = 0
        self.draining = False
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self._id_prefix = f"h{os.getpid():x}-{int(time.time()) & 0xFFFFFF:x}-"
        self._histograms: dict[tuple[str, int], Any] = {}
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        self.app.on_response_prepare.append(_request_id_header)  # streamed answers too
        self.app.router.add_get("/healthz", _healthz)
        self.app.router.add_get("/readyz", self._readyz)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Bind and serve; the port bound (port 0 picks a free one)."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT_S)
        await runner.setup()
        site = GuardedSite(runner, host, port, self.connections, reuse_port=reuse_port or None, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    def on_stop(self, close: Callable[[], Awaitable[None]]) -> None:
        """Call `close` when the edge stops (after the last request)."""
        self._on_stop.append(close)

    async def stop(self, deadline: float) -> None:
        """Refuse new requests (503), let those in flight finish until the monotonic deadline, close."""
        self.draining = True
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for close in self._on_stop:
            await close()
        self._on_stop.clear()

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.draining or not await self.use_cases.ready():
            return web.json_response({"status": "NOT_SERVING"}, status=503)
        return web.json_response({"status": "SERVING"})

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = (
            request.headers.get(REQUEST_ID_HEADER, "")[:MAX_REQUEST_ID] or f"{self._id_prefix}{next(self._ids)}"
        )
        REQUEST_ID.set(request_id)
        self.connections.headers_received(request.transport)
        started = time.perf_counter()
        if request.path in OPEN_PATHS:
            response = await handler(request)
        elif self.draining:
            response = status_response(
                status_of(code_pb2.UNAVAILABLE, "DRAINING", "server is shutting down; retry on another replica"),
                {"Retry-After": DRAIN_RETRY_AFTER_S},
            )
        elif not self.use_cases.serving():
            response = status_response(
                status_of(code_pb2.UNAVAILABLE, "STARTING", STARTING_MESSAGE), {"Retry-After": DRAIN_RETRY_AFTER_S}
            )
        elif self.max_in_flight and self.in_flight >= self.max_in_flight:
            response = status_response(
                status_of(code_pb2.UNAVAILABLE, "OVERLOADED", "too many requests in flight; retry after the delay"),
                {"Retry-After": "1"},
            )
        else:
            self.in_flight += 1
            try:
                response = await self._answer(request, handler)
            finally:
                self.in_flight -= 1
        if self.record_metrics:
            self._observe(request, response.status, time.perf_counter() - started)
        return response

    @staticmethod
    async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpRefusalError as refusal:
            return refusal.response
        except AssignsvcError as error:
            return error_response(error)
        except web.HTTPException as exc:
            return _http_exception(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error answering %s %s", request.method, request.path)
            return status_response(status_of(code_pb2.INTERNAL, "INTERNAL", "internal error"))

    def _observe(self, request: web.Request, status: int, seconds: float) -> None:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else "unmatched"
        child = self._histograms.get((template, status))
        if child is None:
            child = self._histograms[(template, status)] = HTTP_DURATION.labels(template, str(status))
        child.observe(seconds)


async def _request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request id (as the logs do)."""
    response.headers[REQUEST_ID_HEADER] = REQUEST_ID.get()


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP."""
    return web.json_response({"status": "SERVING"})


def _http_exception(exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own refusals (no route, wrong method, body too large, ...) as Status JSON."""
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        status = status_of(code_pb2.UNIMPLEMENTED, "METHOD_NOT_ALLOWED", f"method not allowed here; allowed: {allow}")
        response = status_response(status, {"Allow": allow})
    elif exc.status == 404:
        response = status_response(status_of(code_pb2.NOT_FOUND, "ROUTE_NOT_FOUND", "no such route"))
    elif exc.status == 413:
        status = status_of(
            code_pb2.INVALID_ARGUMENT, "BODY_TOO_LARGE", f"the body must be at most {MAX_BODY_BYTES} bytes"
        )
        response = status_response(status)
    elif exc.status < 500:
        response = status_response(status_of(code_pb2.INVALID_ARGUMENT, "BAD_REQUEST", exc.reason))
    else:
        response = status_response(status_of(code_pb2.UNAVAILABLE, "UNAVAILABLE", exc.reason))
    response.set_status(exc.status)
    return response
