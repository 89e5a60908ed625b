"""`assignsvc serve`: its flags (each also an ASSIGNSVC_ variable) and the start."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from assignsvc import logs
from assignsvc.cli.common import flags
from assignsvc.config import ServerConfig

# The flags each config reads, by the names its load() takes (argparse's dest names).
SERVE_FLAGS = (
    "host",
    "port",
    "redis_url",
    "data_dir",
    "require_external_redis",
    "log_level",
    "grace_period",
    "workers",
    "webhook_allow_networks",
    "srm_threshold",
    "metrics_port",
    "http_port",
    "log_format",
    "max_concurrent_rpcs",
    "auth",
    "tls_cert",
    "tls_key",
)


def run_serve(args: argparse.Namespace) -> int:
    """Serve with the configuration of the flags over ASSIGNSVC_* over the defaults."""
    from assignsvc.server.wiring import serve  # noqa: PLC0415 - keep client commands light

    config = ServerConfig.load(os.environ, **flags(args, SERVE_FLAGS))
    logs.configure(config.log_level, config.log_format)
    if config.workers > 1:
        from assignsvc.server.workers import supervise  # noqa: PLC0415 - as above

        return asyncio.run(supervise(config))
    asyncio.run(serve(config))
    return 0


def add_serve_command(sub: Any) -> None:
    """The `serve` subcommand and its flags."""
    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", help="bind address (ASSIGNSVC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port, 0 = any free (ASSIGNSVC_PORT, default 50051)")
    serve.add_argument(
        "--redis-url",
        help="redis://, rediss://, unix:// or redis+cluster:// URL "
        "(ASSIGNSVC_REDIS_URL); "
        "unset: an embedded Redis in --data-dir",
    )
    serve.add_argument(
        "--require-external-redis",
        action="store_const",
        const=True,
        default=None,
        help="never start the embedded Redis: refuse to start without --redis-url "
        "(ASSIGNSVC_REQUIRE_EXTERNAL_REDIS=1; for production images)",
    )
    serve.add_argument("--data-dir", help="embedded Redis data (ASSIGNSVC_DATA_DIR, default ./.assignsvc)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (ASSIGNSVC_LOG_LEVEL)")
    serve.add_argument("--grace-period", type=float, help="seconds to drain on SIGTERM (ASSIGNSVC_GRACE_PERIOD)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port, 1-64 (ASSIGNSVC_WORKERS, "
        "default 1); more than 1: a supervisor runs them and owns the embedded Redis",
    )
    serve.add_argument(
        "--webhook-allow-networks",
        metavar="CIDR[,CIDR...]",
        help="non-public networks webhooks may reach, e.g. 127.0.0.0/8 for a local receiver "
        "(ASSIGNSVC_WEBHOOK_ALLOW_NETWORKS; default none: only public addresses)",
    )
    serve.add_argument(
        "--srm-threshold",
        type=float,
        help="raise experiment.warning when a RUNNING experiment's "
        "SRM p-value drops below this (ASSIGNSVC_SRM_THRESHOLD, default 0.001)",
    )
    _port_flags(serve)
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines for people or one JSON object per line (ASSIGNSVC_LOG_FORMAT, default text)",
    )
    serve.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        help="RPCs served at once; past it RESOURCE_EXHAUSTED (ASSIGNSVC_MAX_CONCURRENT_RPCS, default 1000; 0: no cap)",
    )
    serve.add_argument(
        "--tls-cert", help="PEM certificate (chain) to serve TLS with (ASSIGNSVC_TLS_CERT; with --tls-key)"
    )
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert (ASSIGNSVC_TLS_KEY)")
    serve.add_argument(
        "--auth",
        choices=("auto", "on", "off"),
        help="API keys on every call (ASSIGNSVC_AUTH, "
        "default auto: on unless --host is loopback; off is refused on any other bind)",
    )
    serve.set_defaults(run=run_serve)


def _port_flags(serve: argparse.ArgumentParser) -> None:
    """The ports beside gRPC's: metrics and the HTTP/JSON API."""
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port, on --host (ASSIGNSVC_METRICS_PORT; default 0: off)",
    )
    serve.add_argument("--http-port", type=int, help=_HTTP_PORT_HELP)


_HTTP_PORT_HELP = (
    "serve the HTTP/JSON API (transcoded v1, Evidential's routes, OFREP) on this port, on --host"
    " (ASSIGNSVC_HTTP_PORT; default 0: off; make run and the image: 8080)"
)
