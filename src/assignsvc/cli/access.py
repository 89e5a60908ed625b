"""Credentials on the CLI's calls, and `assignsvc datasources`, `keys`, `bootstrap`, `keygen`.

Every client command sends `--api-key` / ASSIGNSVC_API_KEY and `--datasource` /
ASSIGNSVC_DATASOURCE as the `x-api-key` / `datasource-id` metadata. `bootstrap` talks
to Redis directly (no server, no key needed): it is how the first operator key exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from assignsvc.app.access import AccessManager
from assignsvc.cli import output as out
from assignsvc.config import ConfigError, ServerConfig
from assignsvc.core.access import Datasource, RateLimit, Scope, new_key
from assignsvc.documents.experiment_file import format_time
from assignsvc.errors import AlreadyExistsError, AssignsvcError
from assignsvc.store.access import RedisAccessStore
from assignsvc.store.connection import connect
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_server import socket_path_for
from assignsvc.v1 import access_service_pb2 as pb
from assignsvc.v1 import access_service_pb2_grpc as pb_grpc

Command = Callable[[grpc.Channel, argparse.Namespace, float], Any]
Wrap = Callable[[Command], Callable[[argparse.Namespace], int]]
_SCOPE_NAMES = {"assign": pb.API_KEY_SCOPE_ASSIGN, "read": pb.API_KEY_SCOPE_READ, "admin": pb.API_KEY_SCOPE_ADMIN}


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _Credentials(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the credentials metadata to every call of a channel."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> _CallDetails:
        metadata = [*(details.metadata or ()), *self._metadata]
        return _CallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def with_credentials(channel: grpc.Channel, api_key: str, datasource: str) -> grpc.Channel:
    """`channel`, sending the key and datasource on every call (unchanged when neither is set)."""
    metadata = [(name, value) for name, value in (("x-api-key", api_key), ("datasource-id", datasource)) if value]
    return grpc.intercept_channel(channel, _Credentials(metadata)) if metadata else channel


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    """--api-key, --datasource and TLS, for every client command."""
    parser.add_argument(
        "--tls", action="store_true", default=None, help="connect with TLS, trusting the system's CAs (ASSIGNSVC_TLS)"
    )
    parser.add_argument("--tls-ca", help="connect with TLS, trusting this PEM CA file (ASSIGNSVC_TLS_CA)")
    parser.add_argument(
        "--api-key",
        help="API key sent as x-api-key (ASSIGNSVC_API_KEY; prefer the variable: flags show in process lists)",
    )
    parser.add_argument("--datasource", help="datasource id sent as datasource-id (ASSIGNSVC_DATASOURCE)")


# --- datasources and keys (through the server) ---------------------------------------------


def _print_datasources(messages: list[Any], output: str) -> None:
    if output != "table":
        out.emit([out.as_dict(m) for m in messages], output)
        return
    rows = [[m.id, m.name, format_time(m.create_time.ToMilliseconds())] for m in messages]
    print(out.table(["ID", "NAME", "CREATED"], rows))


def _print_keys(messages: list[Any], output: str) -> None:
    if output != "table":
        out.emit([out.as_dict(m) for m in messages], output)
        return
    rows = []
    for m in messages:
        scopes = ",".join(pb.ApiKeyScope.Name(s).removeprefix("API_KEY_SCOPE_").lower() for s in m.scopes)
        rate = f"{m.requests_per_second:g}/s burst {m.burst}" if m.requests_per_second else "unlimited"
        revoked = format_time(m.revoke_time.ToMilliseconds()) if m.HasField("revoke_time") else out.NONE
        used = format_time(m.last_used_time.ToMilliseconds()) if m.HasField("last_used_time") else "never"
        rows.append([m.id, m.name or out.NONE, m.hint + "…", scopes, rate, used, revoked])
    print(out.table(["ID", "NAME", "KEY", "SCOPES", "RATE", "LAST USED", "REVOKED"], rows))


def _datasource_create(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    request = pb.CreateDatasourceRequest(datasource=pb.Datasource(id=args.id, name=args.name or ""))
    reply = pb_grpc.DatasourceServiceStub(channel).CreateDatasource(request, timeout=timeout)
    _print_datasources([reply.datasource], args.output)


def _datasource_list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = pb_grpc.DatasourceServiceStub(channel).ListDatasources(pb.ListDatasourcesRequest(), timeout=timeout)
    _print_datasources(list(reply.datasources), args.output)


def _key_create(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    scopes = [_SCOPE_NAMES[s] for s in args.scopes.split(",") if s]
    key = pb.ApiKey(name=args.name or "", scopes=scopes, requests_per_second=args.rate or 0, burst=args.burst or 0)
    reply = pb_grpc.ApiKeyServiceStub(channel).CreateApiKey(pb.CreateApiKeyRequest(api_key=key), timeout=timeout)
    if args.output == "table":
        _print_keys([reply.api_key], args.output)
        print(f"key (shown only now; send it as x-api-key): {reply.secret}")
    else:
        out.emit({"api_key": out.as_dict(reply.api_key), "secret": reply.secret}, args.output)


def _key_list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = pb_grpc.ApiKeyServiceStub(channel).ListApiKeys(pb.ListApiKeysRequest(), timeout=timeout)
    _print_keys(list(reply.api_keys), args.output)


def _key_revoke(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = pb_grpc.ApiKeyServiceStub(channel).RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=args.id), timeout=timeout)
    _print_keys([reply.api_key], args.output)


def _scope_list(text: str) -> str:
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in _SCOPE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"scopes are a comma-separated list of {', '.join(_SCOPE_NAMES)}")
    return text


def add_commands(sub: Any, client: argparse.ArgumentParser, wrap: Wrap) -> None:
    """`assignsvc datasources ...`, `assignsvc keys ...`, `bootstrap` and `keygen`."""
    datasources = sub.add_parser("datasources", help="tenants: create and list them (operator key)")
    ds = datasources.add_subparsers(dest="action", required=True)
    create = ds.add_parser("create", parents=[client], help="create an empty datasource")
    create.add_argument("id")
    create.add_argument("--name")
    create.set_defaults(run=wrap(_datasource_create))
    ds.add_parser("list", parents=[client], help="list every datasource").set_defaults(run=wrap(_datasource_list))

    keys = sub.add_parser("keys", help="API keys of --datasource: create, list, revoke (admin or operator key)")
    ks = keys.add_subparsers(dest="action", required=True)
    kcreate = ks.add_parser("create", parents=[client], help="create a key (prints it once)")
    kcreate.add_argument("--scopes", type=_scope_list, required=True, help="comma-separated: assign, read, admin")
    kcreate.add_argument("--name")
    kcreate.add_argument("--rate", type=float, help="requests per second per replica (default: unlimited)")
    kcreate.add_argument("--burst", type=int, help="requests at once before --rate applies")
    kcreate.set_defaults(run=wrap(_key_create))
    ks.add_parser("list", parents=[client], help="list the datasource's keys").set_defaults(run=wrap(_key_list))
    revoke = ks.add_parser("revoke", parents=[client], help="revoke a key on every replica")
    revoke.add_argument("id", help="the key's id (key_...), from `keys list`")
    revoke.set_defaults(run=wrap(_key_revoke))

    bootstrap = sub.add_parser(
        "bootstrap",
        help="create an operator key (and optionally a datasource with an admin key) in Redis directly",
        description="Writes to Redis, not through a server: run it where Redis is reachable. Without --redis-url "
        "it uses the embedded Redis of a running `assignsvc serve` in --data-dir.",
    )
    bootstrap.add_argument("--redis-url", help="ASSIGNSVC_REDIS_URL; unset: the embedded Redis in --data-dir")
    bootstrap.add_argument("--data-dir", help="ASSIGNSVC_DATA_DIR (default ./.assignsvc)")
    bootstrap.add_argument("--datasource", help="also create this datasource (if absent) and an admin key for it")
    bootstrap.set_defaults(run=_bootstrap)
    keygen = sub.add_parser("keygen", help="print a fresh key, e.g. for ASSIGNSVC_OPERATOR_KEY")
    keygen.set_defaults(run=lambda args: print(new_key()) or 0)


# --- bootstrap (straight to Redis) -----------------------------------------------------------


def _bootstrap(args: argparse.Namespace) -> int:
    config = ServerConfig.load(os.environ, redis_url=args.redis_url, data_dir=args.data_dir)
    url = config.redis_url
    if url is None:
        socket = socket_path_for(Path(config.data_dir).resolve())
        if not socket.exists():
            raise ConfigError(
                f"no embedded Redis running in {config.data_dir} (start `assignsvc serve`, or pass --redis-url)"
            )
        url = f"unix://{socket}"
    try:
        lines = asyncio.run(_bootstrap_in(url, config, args.datasource))
    except AssignsvcError as error:
        print(f"assignsvc: {error.message}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


async def _bootstrap_in(url: str, config: ServerConfig, datasource: str | None) -> list[str]:
    redis = connect(url, config.redis_timeout_s)
    try:
        manager = AccessManager(RedisAccessStore(redis, Keyspace(config.key_prefix)))
        operator = await manager.create_operator_key()
        lines = [f"operator key (shown only now): {operator.secret}"]
        if datasource:
            with contextlib.suppress(AlreadyExistsError):  # bootstrapping twice adds keys, nothing else
                await manager.create_datasource(Datasource(datasource))
            admin = await manager.create_key(datasource, "bootstrap admin", frozenset({Scope.ADMIN}), RateLimit())
            lines.append(f"admin key of datasource {datasource!r} (shown only now): {admin.secret}")
        return lines
    finally:
        await redis.aclose()
