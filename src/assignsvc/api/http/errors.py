"""Errors over HTTP: the google.rpc.Status JSON, with the HTTP status of AIP-193's mapping.

A domain error becomes its google.rpc.Status through api.status (the one mapping of
errors to codes); this module only adds the HTTP status of each code (AIP-193) and the
Retry-After header that a RetryInfo detail asks for. So a bad request gets the same
code, reason and field violations over HTTP as over gRPC.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from assignsvc.api.status import ERROR_DOMAIN, to_rpc_status
from assignsvc.errors import AssignsvcError, FieldViolation, InvalidArgumentError

# AIP-193: the HTTP status of each google.rpc.Code.
HTTP_STATUS = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}
JSON = "application/json"
DETAILS_KEY = "grpc-status-details-bin"


def status_of(
    code: int, reason: str, message: str, violations: list[FieldViolation] | None = None
) -> status_pb2.Status:
    """A google.rpc.Status answered by the HTTP edge itself (bad JSON, wrong media type, ...)."""
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ]
        )
        status.details.add().Pack(bad)
    return status


def status_from_grpc(code: int, details: str | None, metadata: Any) -> status_pb2.Status:
    """The google.rpc.Status a gRPC call ended with (its details trailer, else code and message)."""
    for key, value in metadata or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=code, message=details or "")


def status_from_response(response: web.StreamResponse) -> status_pb2.Status:
    """The Status a status_response carries (for a refusal met after the answer has begun)."""
    body = response.body if isinstance(response, web.Response) else None
    status = status_pb2.Status()
    if isinstance(body, bytes):
        json_format.Parse(body, status, ignore_unknown_fields=True)
    return status


def retry_after_s(status: status_pb2.Status) -> int | None:
    """Retry-After in whole seconds (at least 1) when the status carries a RetryInfo."""
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            seconds: int = math.ceil(info.retry_delay.ToTimedelta().total_seconds())
            return max(1, seconds)
    return None


def status_json(status: status_pb2.Status) -> dict[str, Any]:
    """The proto3 JSON of a google.rpc.Status."""
    return dict(json_format.MessageToDict(status))


def status_response(status: status_pb2.Status, headers: dict[str, str] | None = None) -> web.Response:
    """The HTTP answer for a status: AIP-193's HTTP status, the Status JSON, Retry-After when asked."""
    out = dict(headers or {})
    retry = retry_after_s(status)
    if retry is not None and status.code in (code_pb2.RESOURCE_EXHAUSTED, code_pb2.UNAVAILABLE):
        out["Retry-After"] = str(retry)
    return web.Response(
        status=HTTP_STATUS.get(status.code, 500),
        body=json.dumps(status_json(status)).encode(),
        content_type=JSON,
        headers=out,
    )


def error_response(error: AssignsvcError) -> web.Response:
    """The HTTP answer for a domain error: the same Status gRPC would send."""
    return status_response(to_rpc_status(error))


def bad_request(field: str, description: str) -> web.Response:
    """400 with one field violation (INVALID_ARGUMENT), as gRPC answers a bad field."""
    return error_response(InvalidArgumentError.single(field, description))


class HttpRefusalError(Exception):
    """Raised inside a handler to answer with this response (a refusal before any work)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response
