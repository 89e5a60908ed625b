"""Configuration: one frozen dataclass per program, read once from flags and environment.

Precedence: command-line flag, then ASSIGNSVC_* environment variable, then default.
A bad value fails at start with a message naming the variable. Nothing else in the
package reads os.environ.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

DEFAULT_PORT = 50051
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
# redis+cluster:// and rediss+cluster:// (TLS) name a Redis Cluster by one or more of its
# nodes: redis+cluster://[user:password@]host:port[,host:port...][/?options].
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
CLUSTER_SUFFIX = "+cluster"


# The retry policy of a client: UNAVAILABLE (a replica draining or restarting, Redis
# briefly away) is retried up to 4 more times with jittered backoff, on another replica
# when the channel has several (round_robin). Assignment calls are idempotent (the first
# arm stored wins), so a retried Assign never changes an answer. RESOURCE_EXHAUSTED is
# not retried here: the server sheds load, and it says how long to wait in RetryInfo.
CLIENT_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        # Client-side health checking: a replica that turns NOT_SERVING (draining) gets no new calls.
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {
                "name": [
                    {"service": "assignsvc.v1.AssignmentService"},
                    {"service": "assignsvc.v1.ExperimentService"},
                    {"service": "assignsvc.v1.BulkAssignmentService"},
                    {"service": "assignsvc.v1.WebhookService"},
                    {"service": "assignsvc.v1.SavedGroupService"},
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def client_channel_options() -> list[tuple[str, Any]]:
    """gRPC channel options of a client of assignsvc: the retry service config, enforced,
    and reconnection within 2 s of a restarted replica listening again (gRPC's default
    backoff grows to 120 s, leaving a restarted replica unused meanwhile)."""
    return [
        ("grpc.service_config", CLIENT_SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


# Server limits (docs/operations.md, Load shedding and limits). Requests: BatchAssign's 1000 items with attributes
# and PreassignParticipants' upload messages stay far below 16 MiB; responses the same.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping an idle connection every 60 s and drop it if no answer in 20 s (a vanished peer).
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients may ping every 10 s, even without calls, before GOAWAY (too_many_pings).
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which and why."""


def is_cluster_url(url: str) -> bool:
    """True for redis+cluster:// and rediss+cluster:// URLs."""
    return url.split("://", 1)[0].endswith(CLUSTER_SUFFIX)


def split_cluster_url(url: str) -> tuple[str, list[tuple[str, int]]]:
    """(a redis:// or rediss:// URL of the first node, every (host, port) listed).

    The first URL keeps the credentials and ?options, so redis-py parses them as for
    one node. A host may be an [IPv6] literal. Raises ConfigError on a malformed list.
    """
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = []
    for entry in hosts.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"a Redis Cluster URL lists host:port pairs, comma-separated, got {url!r}")
        nodes.append((host.strip("[]"), int(port)))
    first_host = hosts.split(",")[0].strip()
    plain = scheme.removesuffix(CLUSTER_SUFFIX)
    return f"{plain}://{userinfo + '@' if userinfo else ''}{first_host}{tail}", nodes


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
DEFAULT_RETRY_SCHEDULE = "5s,30s,3m,18m"  # 5 attempts, waits growing 6x (core.retry)


def parse_duration(text: str) -> float:
    """'500ms', '5s', '5m', '2h', '1d' or plain seconds -> seconds; ValueError otherwise."""
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        number = text[: -len(unit)]
        if text.endswith(unit) and number.replace(".", "", 1).isdigit():
            return float(number) * _UNITS[unit]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise ValueError(f"not a duration: {text!r} (e.g. 5s, 5m, 2h, 1d)")


def parse_schedule(spec: str) -> tuple[float, ...]:
    """'5s,5m,30m' -> waits in seconds; at most 20 retries (ConfigError otherwise)."""
    try:
        waits = tuple(parse_duration(p) for p in spec.split(",") if p.strip())
    except ValueError as exc:
        raise ConfigError(f"ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE: {exc}") from None
    if len(waits) > 20:
        raise ConfigError("ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE: at most 20 retries")
    return waits


def parse_networks(spec: str) -> tuple[str, ...]:
    """'127.0.0.0/8, ::1' -> normalized CIDR strings; ConfigError names a bad entry."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            try:
                out.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                raise ConfigError(f"ASSIGNSVC_WEBHOOK_ALLOW_NETWORKS: not a network: {part!r}") from None
    return tuple(out)


def _pick(flag: Any, env: Mapping[str, str], name: str, default: Any) -> Any:
    if flag is not None:
        return flag
    return env.get(f"ASSIGNSVC_{name}", default)


Number = TypeVar("Number", int, float)


def _as_number(value: Any, name: str, low: Number, high: Number) -> Number:
    """`value` as the type of `low` (int or float), within [low, high]; else ConfigError."""
    kind = type(low)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        choices = "/".join(_TRUE + _FALSE[:-1])
        raise ConfigError(f"{name} must be one of {choices} (or empty), got {value!r}")
    return text in _TRUE


# The plain numeric settings: (field, variable, lowest, highest). Each is read from the
# flag named like the variable (ASSIGNSVC_CACHE_SIZE: cache_size), else the variable, else
# the field's default, as the type of `lowest` (int or float), within [lowest, highest].
_NUMERIC_SETTINGS: tuple[tuple[str, str, int, int] | tuple[str, str, float, float], ...] = (
    ("port", "ASSIGNSVC_PORT", 0, 65535),
    ("cache_size", "ASSIGNSVC_CACHE_SIZE", 0, 100_000_000),
    ("redis_pipelines", "ASSIGNSVC_REDIS_PIPELINES", 0, 64),
    ("workers", "ASSIGNSVC_WORKERS", 1, 64),
    ("webhook_disable_after", "ASSIGNSVC_WEBHOOK_DISABLE_AFTER", 0, 1_000_000),
    ("max_concurrent_rpcs", "ASSIGNSVC_MAX_CONCURRENT_RPCS", 0, 1_000_000),
    ("redis_timeout_s", "ASSIGNSVC_REDIS_TIMEOUT", 0.01, 60.0),
    ("refresh_interval_s", "ASSIGNSVC_REFRESH_INTERVAL", 0.05, 3600.0),
    ("grace_period_s", "ASSIGNSVC_GRACE_PERIOD", 0.0, 3600.0),
    ("webhook_timeout_s", "ASSIGNSVC_WEBHOOK_TIMEOUT", 0.05, 60.0),
    ("webhook_poll_interval_s", "ASSIGNSVC_WEBHOOK_POLL_INTERVAL", 0.01, 60.0),
    ("srm_threshold", "ASSIGNSVC_SRM_THRESHOLD", 0.0, 1.0),
    ("srm_check_interval_s", "ASSIGNSVC_SRM_CHECK_INTERVAL", 0.05, 86_400.0),
)


def _numeric_settings(env: Mapping[str, str], flags: Mapping[str, Any], defaults: ServerConfig) -> dict[str, Any]:
    """Every setting of _NUMERIC_SETTINGS, read and range-checked."""
    values: dict[str, Any] = {}
    for field_name, variable, low, high in _NUMERIC_SETTINGS:
        name = variable.removeprefix("ASSIGNSVC_")
        value = _pick(flags.get(name.lower()), env, name, getattr(defaults, field_name))
        values[field_name] = _as_number(value, variable, low, high)
    return values


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `assignsvc serve` needs."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # None: start and supervise an embedded Redis in data_dir.
    redis_url: str | None = None
    # Production: refuse to start without redis_url rather than fall back to an embedded
    # Redis that would hold this replica's own arms, invisible to every other replica.
    require_external_redis: bool = False
    data_dir: Path = Path(".assignsvc")
    key_prefix: str = "as"
    redis_timeout_s: float = 1.0
    refresh_interval_s: float = 1.0
    grace_period_s: float = 5.0
    log_level: str = "INFO"
    # Stored assignments remembered per process (sticky_cache); 0 turns the cache off.
    cache_size: int = 100_000
    # Pipelines of concurrent claims in flight at once (store.pipelining); 0 sends one
    # EVALSHA per Assign instead.
    redis_pipelines: int = 4
    # Server processes sharing one port (SO_REUSEPORT) under a supervisor (workers.py);
    # 1 = a single process, no supervisor.
    workers: int = 1
    # Networks webhooks may reach although not public (the SSRF guard's allow-list), CIDRs.
    webhook_allow_networks: tuple[str, ...] = ()
    webhook_timeout_s: float = 10.0
    # Waits between attempts; attempts = waits + 1.
    webhook_retry_schedule: tuple[float, ...] = parse_schedule(DEFAULT_RETRY_SCHEDULE)
    # A webhook is disabled after this many events in a row were given up on; 0 = never.
    webhook_disable_after: int = 5
    webhook_poll_interval_s: float = 0.25
    # This deployment's HTTP base URL as receivers reach it (https://assign.example.com);
    # the evidential webhook format's experiment_url starts with it ("" = a path only).
    public_url: str = ""
    # experiment.warning (srm) is raised when a RUNNING experiment's p-value drops below this.
    srm_threshold: float = 0.001
    srm_check_interval_s: float = 60.0
    # Prometheus metrics on their own HTTP port (on `host`); 0 = no metrics endpoint.
    metrics_port: int = 0
    # The HTTP/JSON API (api/http) on its own port (on `host`); 0 = no HTTP server.
    http_port: int = 0
    # `text` for people, `json` (one object per line) for log pipelines.
    log_format: str = "text"
    # RPCs served at once (streams count for their whole life); past it, RESOURCE_EXHAUSTED.
    # 0 = no cap. Health checks and reflection are never counted.
    max_concurrent_rpcs: int = 1000
    # API keys on every RPC (access.py). Off is allowed only on a loopback bind: see load().
    auth: bool = False
    # ASSIGNSVC_OPERATOR_KEY: an operator credential configured at start (the server keeps
    # only its digest; never printed). "" = operator keys come from `assignsvc bootstrap`.
    operator_key: str = field(default="", repr=False)
    # PEM files: serve TLS (both, or neither for plaintext). API keys cross the network
    # inside it; without it only a loopback bind or a mesh's mTLS protects them.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def load(cls, env: Mapping[str, str], **flags: Any) -> ServerConfig:
        """Build from flags (None = not given) over ASSIGNSVC_* variables over defaults."""
        d = cls()
        redis_url = _pick(flags.get("redis_url"), env, "REDIS_URL", None) or None
        if redis_url is not None and urlsplit(redis_url).scheme not in REDIS_SCHEMES:
            raise ConfigError(f"ASSIGNSVC_REDIS_URL must start with one of {REDIS_SCHEMES}, got {redis_url!r}")
        if redis_url is not None and is_cluster_url(redis_url):
            try:
                split_cluster_url(redis_url)  # a malformed node list fails here, at start
            except ConfigError as exc:
                raise ConfigError(f"ASSIGNSVC_REDIS_URL: {exc}") from None
        require_external = _as_bool(
            _pick(flags.get("require_external_redis"), env, "REQUIRE_EXTERNAL_REDIS", d.require_external_redis),
            "ASSIGNSVC_REQUIRE_EXTERNAL_REDIS",
        )
        if require_external and redis_url is None:
            raise ConfigError(
                "ASSIGNSVC_REQUIRE_EXTERNAL_REDIS is set, so the embedded Redis is not started: "
                "give --redis-url / ASSIGNSVC_REDIS_URL"
            )
        level = str(_pick(flags.get("log_level"), env, "LOG_LEVEL", d.log_level)).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"ASSIGNSVC_LOG_LEVEL must be DEBUG/INFO/WARNING/ERROR, got {level}")
        prefix = str(_pick(flags.get("key_prefix"), env, "KEY_PREFIX", d.key_prefix))
        if not prefix or any(c in prefix for c in "{}: "):
            raise ConfigError(f"ASSIGNSVC_KEY_PREFIX must be non-empty without {{}}: or spaces, got {prefix!r}")
        return cls(
            host=str(_pick(flags.get("host"), env, "HOST", d.host)),
            redis_url=redis_url,
            require_external_redis=require_external,
            data_dir=Path(_pick(flags.get("data_dir"), env, "DATA_DIR", d.data_dir)),
            key_prefix=prefix,
            log_level=level,
            **_numeric_settings(env, flags, d),
            **_webhook_settings(env, flags, d),
            **_operations_settings(env, flags, d),
            **_auth_settings(env, flags, str(_pick(flags.get("host"), env, "HOST", d.host))),
            **_tls_settings(env, flags),
        )


def _tls_settings(env: Mapping[str, str], flags: Mapping[str, Any]) -> dict[str, Any]:
    cert = _pick(flags.get("tls_cert"), env, "TLS_CERT", "") or None
    key = _pick(flags.get("tls_key"), env, "TLS_KEY", "") or None
    if (cert is None) != (key is None):
        raise ConfigError("ASSIGNSVC_TLS_CERT and ASSIGNSVC_TLS_KEY go together (a certificate and its key)")
    for name, path in (("ASSIGNSVC_TLS_CERT", cert), ("ASSIGNSVC_TLS_KEY", key)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{name}: no such file {path!r}")
    return {"tls_cert": Path(cert) if cert else None, "tls_key": Path(key) if key else None}


AUTH_MODES = ("auto", "on", "off")


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host == "localhost" or host.startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _auth_settings(env: Mapping[str, str], flags: Mapping[str, Any], host: str) -> dict[str, Any]:
    """auto: authentication on unless bound to loopback; off anywhere else refuses to start."""
    mode = str(_pick(flags.get("auth"), env, "AUTH", "auto")).lower()
    if mode not in AUTH_MODES:
        raise ConfigError(f"ASSIGNSVC_AUTH must be auto, on or off, got {mode!r}")
    auth = mode == "on" or (mode == "auto" and not is_loopback_host(host))
    if not auth and not is_loopback_host(host):
        raise ConfigError(
            f"ASSIGNSVC_AUTH=off needs a loopback bind (127.0.0.1, ::1, localhost); {host!r} would serve "
            "every experiment to anyone who can reach it. Use --auth on (API keys) instead"
        )
    return {"auth": auth, "operator_key": env.get("ASSIGNSVC_OPERATOR_KEY", "")}


def _webhook_settings(env: Mapping[str, str], flags: Mapping[str, Any], d: ServerConfig) -> dict[str, Any]:
    allow = _pick(flags.get("webhook_allow_networks"), env, "WEBHOOK_ALLOW_NETWORKS", "")
    schedule = _pick(flags.get("webhook_retry_schedule"), env, "WEBHOOK_RETRY_SCHEDULE", None)
    public_url = str(_pick(flags.get("public_url"), env, "PUBLIC_URL", d.public_url)).rstrip("/")
    parts = urlsplit(public_url)
    if public_url and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment):
        raise ConfigError(f"ASSIGNSVC_PUBLIC_URL must be an http(s) base URL, got {public_url!r}")
    return {
        "public_url": public_url,
        "webhook_allow_networks": parse_networks(str(allow)),
        "webhook_retry_schedule": d.webhook_retry_schedule if schedule is None else parse_schedule(str(schedule)),
    }


def _operations_settings(env: Mapping[str, str], flags: Mapping[str, Any], d: ServerConfig) -> dict[str, Any]:
    log_format = str(_pick(flags.get("log_format"), env, "LOG_FORMAT", d.log_format)).lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"ASSIGNSVC_LOG_FORMAT must be text or json, got {log_format!r}")
    metrics_port = _as_number(
        _pick(flags.get("metrics_port"), env, "METRICS_PORT", d.metrics_port) or 0, "ASSIGNSVC_METRICS_PORT", 0, 65535
    )
    http_port = _as_number(
        _pick(flags.get("http_port"), env, "HTTP_PORT", d.http_port) or 0, "ASSIGNSVC_HTTP_PORT", 0, 65535
    )
    return {
        "metrics_port": metrics_port,
        "http_port": http_port,
        "log_format": log_format,
    }


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the CLI's client commands connect."""

    target: str = DEFAULT_TARGET
    timeout_s: float = 10.0
    # Sent as `x-api-key` / `datasource-id` metadata on every call when set.
    api_key: str = field(default="", repr=False)
    datasource: str = ""
    # TLS to the server: the CA's PEM file (ASSIGNSVC_TLS_CA), or `tls` with the system's roots.
    tls_ca: Path | None = None
    tls: bool = False

    @classmethod
    def load(cls, env: Mapping[str, str], **flags: Any) -> ClientConfig:
        """Build from flags over ASSIGNSVC_TARGET / _TIMEOUT / _API_KEY / _DATASOURCE over defaults."""
        d = cls()
        return cls(
            target=str(_pick(flags.get("target"), env, "TARGET", d.target)),
            timeout_s=_as_number(
                _pick(flags.get("timeout"), env, "TIMEOUT", d.timeout_s), "ASSIGNSVC_TIMEOUT", 0.01, 3600.0
            ),
            api_key=str(_pick(flags.get("api_key"), env, "API_KEY", "")),
            datasource=str(_pick(flags.get("datasource"), env, "DATASOURCE", "")),
            tls_ca=Path(ca) if (ca := _pick(flags.get("tls_ca"), env, "TLS_CA", "")) else None,
            tls=bool(ca) or _as_bool(_pick(flags.get("tls") or None, env, "TLS", False), "ASSIGNSVC_TLS"),
        )
