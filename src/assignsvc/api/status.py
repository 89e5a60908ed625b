"""The one place where domain errors become gRPC statuses with google.rpc details.

Every status carries an ErrorInfo (reason, domain); INVALID_ARGUMENT also carries a
BadRequest with one FieldViolation per bad field (none for MALFORMED_REQUEST, a body
that does not decode, when no field could be named: api.handlers); UNAVAILABLE carries RetryInfo, and
so do the interceptor's refusals (RESOURCE_EXHAUSTED past the concurrency cap,
UNAVAILABLE while draining).
An exception outside the domain tree becomes INTERNAL with a generic message (and
a logged traceback): that is always a bug to fix, never an expected answer.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from assignsvc.api.scope import caller_datasource
from assignsvc.core.scoping import SEPARATOR
from assignsvc.errors import (
    AlreadyExistsError,
    AssignsvcError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    StoreUnavailableError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

ERROR_DOMAIN = "assignsvc.dev"
UNAVAILABLE_RETRY_DELAY_S = 1

_CODES: list[tuple[type[AssignsvcError], int]] = [
    (InvalidArgumentError, code_pb2.INVALID_ARGUMENT),
    (NotFoundError, code_pb2.NOT_FOUND),
    (AlreadyExistsError, code_pb2.ALREADY_EXISTS),
    (FailedPreconditionError, code_pb2.FAILED_PRECONDITION),
    (ConflictError, code_pb2.ABORTED),
    (StoreUnavailableError, code_pb2.UNAVAILABLE),
    (UnauthenticatedError, code_pb2.UNAUTHENTICATED),
    (RateLimitedError, code_pb2.RESOURCE_EXHAUSTED),
]


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _as_caller_sees(text: str) -> str:
    """Internal ids (DATASOURCE/ID) in a message, as the caller names them (core.scoping):
    only the caller's own objects are ever named in its errors."""
    prefix = "'" + caller_datasource() + SEPARATOR  # ids are quoted ({id!r}) in every message
    return text.replace(prefix, "'") if prefix in text else text


def to_rpc_status(error: AssignsvcError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error."""
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.INTERNAL)
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, InvalidArgumentError) and error.violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=_as_caller_sees(v.description))
            for v in error.violations
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    if isinstance(error, StoreUnavailableError | RateLimitedError):
        delay = duration_pb2.Duration()
        seconds = error.retry_delay_s if isinstance(error, RateLimitedError) else UNAVAILABLE_RETRY_DELAY_S
        delay.FromTimedelta(datetime.timedelta(seconds=seconds))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code, message=_as_caller_sees(error.message), details=details)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: AssignsvcError) -> None:
    """Abort the call with the status for error (raises, as context.abort does)."""
    status = rpc_status.to_status(to_rpc_status(error))
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _abort_for(context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str) -> None:
    """End the call for an error a servicer method raised (called while handling it): a
    domain error with its status; an AbortError (the method chose its status) as it is;
    anything else, logged, as INTERNAL."""
    if isinstance(error, AssignsvcError):
        await abort_with(context, error)
    elif isinstance(error, grpc.aio.AbortError):
        raise error
    else:
        log.exception("unexpected error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def maps_domain_errors(method: Handler) -> Handler:
    """Decorate a unary servicer method: domain errors become their statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(self, request, context)
        except Exception as error:
            await _abort_for(context, error, method.__qualname__)

    return wrapper  # type: ignore[return-value]


StreamHandler = TypeVar("StreamHandler", bound=Callable[..., AsyncGenerator[Any, None]])


def maps_domain_errors_in_stream(method: StreamHandler) -> StreamHandler:
    """maps_domain_errors for a server-streaming method (an async generator): a domain
    error ends the stream with its status; what was already sent stays sent."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        stream = method(self, request, context)
        try:
            async for response in stream:
                yield response
        except Exception as error:
            await _abort_for(context, error, method.__qualname__)
        finally:  # a cancelled call closes this wrapper: close the method's stream now, not at GC
            await stream.aclose()

    return wrapper  # type: ignore[return-value]


def _refusal(code: int, reason: str, message: str, retry_delay_s: float | None = None) -> Any:
    """A status the interceptor answers with itself: ErrorInfo, and RetryInfo when a retry helps."""
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))]
    if retry_delay_s is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=retry_delay_s))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))


OVERLOADED_RETRY_DELAY_S = 0.05
# Refusals the server interceptor answers before any servicer runs (built once: they never change).
OVERLOADED = _refusal(
    code_pb2.RESOURCE_EXHAUSTED,
    "OVERLOADED",
    "too many concurrent calls; retry after the delay",
    OVERLOADED_RETRY_DELAY_S,
)
DRAINING = _refusal(code_pb2.UNAVAILABLE, "DRAINING", "server is shutting down; retry on another replica", 0.0)
STARTING_MESSAGE = "server is starting: its Redis has not answered yet; retry on another replica"
STARTING = _refusal(code_pb2.UNAVAILABLE, "STARTING", STARTING_MESSAGE, 0.0)

# Authentication refusals (service.interceptors); rate limits carry the key's own delay.
UNAUTHENTICATED_MISSING = _refusal(
    code_pb2.UNAUTHENTICATED, "CREDENTIALS_MISSING", "send the x-api-key and datasource-id metadata"
)
UNAUTHENTICATED_MALFORMED = _refusal(
    code_pb2.UNAUTHENTICATED, "CREDENTIALS_MALFORMED", "x-api-key is not an assignsvc key (asv_..., checksum failed)"
)
UNAUTHENTICATED_INVALID = _refusal(
    code_pb2.UNAUTHENTICATED,
    "CREDENTIALS_INVALID",
    "x-api-key is unknown or revoked, or is not a key of the datasource-id sent",
)
PERMISSION_DENIED = _refusal(
    code_pb2.PERMISSION_DENIED, "SCOPE_MISSING", "this API key's scopes do not allow this call"
)


def rate_limited(retry_delay_s: float) -> Any:
    """RESOURCE_EXHAUSTED for a key over its rate limit, saying when a call may go: the same
    status a stream item over the limit gets (RateLimitedError)."""
    return rpc_status.to_status(to_rpc_status(RateLimitedError(retry_delay_s)))
