"""The HTTP/JSON edge: the v1 API transcoded, Evidential's routes, OFREP, health, OpenAPI, the console.

`start_http` is all the server wiring calls: it builds the aiohttp application on the
running (grpc.aio) event loop, binds it, and returns the HttpEdge to stop at drain.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from assignsvc.api.http import console, evidential, ofrep, transcode
from assignsvc.api.http.app import HttpEdge, UseCases
from assignsvc.api.http.openapi import document
from assignsvc.config import ConfigError, ServerConfig

__all__ = ["HttpEdge", "UseCases", "loopback_address", "readiness", "serve_http", "start_http"]


def loopback_address(pid: int, grpc_port: int) -> str:
    """The address the transcoder dials this process's gRPC server on: an abstract Unix
    socket (no file, this host only, plaintext whatever TLS the TCP port has); the
    interceptor still checks every call's key."""
    return f"unix-abstract:assignsvc-{pid}-{grpc_port}"


async def start_http(
    use_cases: UseCases, host: str, port: int, *, max_in_flight: int, record_metrics: bool, reuse_port: bool
) -> HttpEdge:
    """Build every route and serve them on host:port; the running edge."""
    edge = HttpEdge(use_cases, max_in_flight, record_metrics)
    openapi = json.dumps(document()).encode()

    async def serve_openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type="application/json")

    edge.app.router.add_get("/openapi.json", serve_openapi)
    evidential.add_routes(edge)
    ofrep.add_routes(edge)
    console.add_routes(edge.app)
    channel: grpc.aio.Channel | None = None
    if use_cases.grpc_target is not None:
        channel = transcode.add_routes(edge, use_cases.grpc_target)
        edge.on_stop(channel.close)
    try:
        await edge.start(host, port, reuse_port=reuse_port)
    except BaseException:
        if channel is not None:
            await channel.close()
        raise
    return edge


async def serve_http(config: ServerConfig, use_cases: UseCases) -> HttpEdge | None:
    """The HTTP/JSON edge on config.http_port (none when 0: off), on this event loop."""
    if not config.http_port:
        return None
    try:
        return await start_http(
            use_cases,
            config.host,
            config.http_port,
            max_in_flight=config.max_concurrent_rpcs,
            record_metrics=config.metrics_port != 0,
            reuse_port=config.workers > 1,
        )
    except OSError as exc:
        raise ConfigError(f"cannot serve HTTP on {config.host}:{config.http_port} (in use?): {exc}") from None


def readiness(health: HealthServicer) -> Callable[[], Awaitable[bool]]:
    """Readiness as the gRPC health service says it (the server's overall status)."""

    async def ready() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), None)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return ready
