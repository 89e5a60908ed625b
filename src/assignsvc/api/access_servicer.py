"""DatasourceService and ApiKeyService: gRPC adapters for AccessManager."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.api.scope import caller_datasource
from assignsvc.api.status import maps_domain_errors
from assignsvc.app.access import AccessManager
from assignsvc.core.access import ApiKey, Datasource, RateLimit, Scope
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import access_service_pb2 as pb
from assignsvc.v1 import access_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_SCOPES = {
    pb.API_KEY_SCOPE_ASSIGN: Scope.ASSIGN,
    pb.API_KEY_SCOPE_READ: Scope.READ,
    pb.API_KEY_SCOPE_ADMIN: Scope.ADMIN,
}
_SCOPES_PB = {v: k for k, v in _SCOPES.items()}


def _ts(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def datasource_to_pb(datasource: Datasource) -> pb.Datasource:
    """The API's view of a datasource."""
    return pb.Datasource(id=datasource.id, name=datasource.name, create_time=_ts(datasource.create_time_ms))


def api_key_to_pb(key: ApiKey, last_used_ms: int = 0) -> pb.ApiKey:
    """The API's view of a key record (never its digest)."""
    msg = pb.ApiKey(
        id=key.id,
        name=key.name,
        scopes=sorted(_SCOPES_PB[s] for s in key.scopes if s in _SCOPES_PB),
        requests_per_second=key.rate_limit.per_second,
        burst=key.rate_limit.burst,
        hint=key.hint,
        create_time=_ts(key.create_time_ms),
    )
    if key.revoke_time_ms:
        msg.revoke_time.CopyFrom(_ts(key.revoke_time_ms))
    if last_used_ms:
        msg.last_used_time.CopyFrom(_ts(last_used_ms))
    return msg


def scopes_from_pb(values: Any) -> frozenset[Scope]:
    """Scopes named in a request; an unknown or unspecified value is a field violation."""
    scopes = set()
    for i, value in enumerate(values):
        if value not in _SCOPES:
            raise InvalidArgumentError.single(f"api_key.scopes[{i}]", "must be ASSIGN, READ or ADMIN")
        scopes.add(_SCOPES[value])
    return frozenset(scopes)


class DatasourceServicer(pb_grpc.DatasourceServiceServicer):
    """gRPC adapter for the operator's datasource calls."""

    def __init__(self, manager: AccessManager) -> None:
        self._manager = manager

    @maps_domain_errors
    async def CreateDatasource(  # noqa: N802 - gRPC method name
        self, request: pb.CreateDatasourceRequest, context: Context
    ) -> pb.CreateDatasourceResponse:
        msg = request.datasource
        created = await self._manager.create_datasource(Datasource(msg.id, msg.name))
        return pb.CreateDatasourceResponse(datasource=datasource_to_pb(created))

    @maps_domain_errors
    async def ListDatasources(  # noqa: N802 - gRPC method name
        self, request: pb.ListDatasourcesRequest, context: Context
    ) -> pb.ListDatasourcesResponse:
        return pb.ListDatasourcesResponse(datasources=[datasource_to_pb(d) for d in await self._manager.datasources()])


class ApiKeyServicer(pb_grpc.ApiKeyServiceServicer):
    """gRPC adapter for the keys of the caller's datasource."""

    def __init__(self, manager: AccessManager) -> None:
        self._manager = manager

    @maps_domain_errors
    async def CreateApiKey(  # noqa: N802 - gRPC method name
        self, request: pb.CreateApiKeyRequest, context: Context
    ) -> pb.CreateApiKeyResponse:
        msg = request.api_key
        limit = RateLimit(msg.requests_per_second, msg.burst)
        created = await self._manager.create_key(caller_datasource(), msg.name, scopes_from_pb(msg.scopes), limit)
        return pb.CreateApiKeyResponse(api_key=api_key_to_pb(created.record), secret=created.secret)

    @maps_domain_errors
    async def ListApiKeys(  # noqa: N802 - gRPC method name
        self, request: pb.ListApiKeysRequest, context: Context
    ) -> pb.ListApiKeysResponse:
        keys = await self._manager.keys(caller_datasource())
        return pb.ListApiKeysResponse(api_keys=[api_key_to_pb(k, used) for k, used in keys])

    @maps_domain_errors
    async def RevokeApiKey(  # noqa: N802 - gRPC method name
        self, request: pb.RevokeApiKeyRequest, context: Context
    ) -> pb.RevokeApiKeyResponse:
        if not request.api_key_id:
            raise InvalidArgumentError.single("api_key_id", "is required")
        revoked = await self._manager.revoke_key(caller_datasource(), request.api_key_id)
        return pb.RevokeApiKeyResponse(api_key=api_key_to_pb(revoked))
