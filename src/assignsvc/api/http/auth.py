"""Authentication of HTTP requests: the gRPC edge's keys, scopes and rate limits, in headers.

`X-API-Key` and `Datasource-ID` (header names are case-insensitive) are checked by the
same KeyRing against the same scope table (api.access_policy) as the gRPC metadata of the
RPC a route stands for; an admitted request runs with its datasource in api.scope, so
every id it names is scoped exactly as over gRPC. The refusals are api.status's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.rpc import status_pb2

from assignsvc.api.access_policy import required_scope
from assignsvc.api.http.errors import status_from_grpc
from assignsvc.api.scope import CALLER_DATASOURCE, CALLER_GRANT
from assignsvc.api.status import (
    PERMISSION_DENIED,
    UNAUTHENTICATED_INVALID,
    UNAUTHENTICATED_MALFORMED,
    UNAUTHENTICATED_MISSING,
    rate_limited,
)
from assignsvc.app.access import KeyRing, Refusal

API_KEY_HEADER = "X-API-Key"
DATASOURCE_HEADER = "Datasource-ID"


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was refused: the kind (None: no key sent) and the Status gRPC would send."""

    kind: Refusal | None
    status: status_pb2.Status


def _status(grpc_status: Any) -> status_pb2.Status:
    return status_from_grpc(grpc_status.code.value[0], grpc_status.details, grpc_status.trailing_metadata)


_MISSING = _status(UNAUTHENTICATED_MISSING)
_MALFORMED = _status(UNAUTHENTICATED_MALFORMED)
_INVALID = _status(UNAUTHENTICATED_INVALID)
_DENIED = _status(PERMISSION_DENIED)
_REFUSALS = {Refusal.PERMISSION_DENIED: _DENIED, Refusal.MALFORMED: _MALFORMED}


def authenticate(
    request: web.Request, key_ring: KeyRing | None, method: str, *, key_alone: bool = False
) -> Refused | None:
    """None if the request may go on as a call of `method` (/package.Service/Method), its
    datasource now set; else why not. `key_alone`: a datasource key's own datasource is
    used, whatever Datasource-ID says (a datasource key belongs to exactly one)."""
    if key_ring is None:
        return None
    api_key = request.headers.get(API_KEY_HEADER, "")
    if not api_key:
        return Refused(None, _MISSING)
    datasource = request.headers.get(DATASOURCE_HEADER, "")
    if key_alone:  # a datasource key names its own; a Datasource-ID header is ignored (as Evidential does)
        datasource = key_ring.datasource_of(api_key) or datasource
    verdict = key_ring.check(datasource, api_key, *required_scope(method))
    if not isinstance(verdict, tuple):
        CALLER_DATASOURCE.set(datasource)
        CALLER_GRANT.set(verdict)
        return None
    refusal, delay = verdict
    if refusal is Refusal.RATE_LIMITED:
        return Refused(refusal, _status(rate_limited(delay)))
    return Refused(refusal, _REFUSALS.get(refusal, _INVALID))
