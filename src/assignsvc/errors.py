"""Domain errors: what went wrong, in the service's own words (no gRPC here).

service.status is the one place that turns these into gRPC status codes and
google.rpc details. Anything not in this tree reaching a servicer is a bug.

    AssignsvcError
    ├── InvalidArgumentError      the request is malformed (carries FieldViolations)
    │   └── MalformedRequestError the request's bytes do not decode at all
    ├── NotFoundError             the named object does not exist
    ├── AlreadyExistsError        an object with that id exists
    ├── FailedPreconditionError   the object's state forbids the operation
    ├── ConflictError             a conditional write lost a race (stale etag)
    ├── StoreUnavailableError     the backing store cannot be reached in time
    ├── UnauthenticatedError      the call's API key was revoked while the call ran
    └── RateLimitedError          the call's API key is over its rate limit
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: a dotted path (`experiment.arms[1].weight`) and why."""

    field: str
    description: str


class AssignsvcError(Exception):
    """Base of every domain error; `reason` is a stable UPPER_SNAKE machine code."""

    reason = "ASSIGNSVC_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(AssignsvcError):
    """The request is malformed; `violations` names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}")
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgumentError:
        """An error for exactly one bad field."""
        return cls([FieldViolation(field, description)])


class MalformedRequestError(InvalidArgumentError):
    """The request's bytes do not decode as its message (corrupt wire format, bad UTF-8,
    nesting past protobuf's depth limit); a violation names the field when one is known."""

    reason = "MALFORMED_REQUEST"

    def __init__(self, description: str, field: str = "") -> None:
        super().__init__([FieldViolation(field, description)] if field else [])
        self.message = f"malformed request: {field + ': ' if field else ''}{description}"
        self.args = (self.message,)


class NotFoundError(AssignsvcError):
    """The named object does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(f"{kind} {identifier!r} not found")
        self.kind = kind
        self.identifier = identifier
        self.reason = f"{kind.upper()}_NOT_FOUND"


class AlreadyExistsError(AssignsvcError):
    """An object with that id already exists."""

    def __init__(self, kind: str, identifier: str, note: str = "") -> None:
        """note, when given, follows the message (outside the quoted id): why it exists."""
        super().__init__(f"{kind} {identifier!r} already exists" + (f" ({note})" if note else ""))
        self.kind = kind
        self.identifier = identifier
        self.reason = f"{kind.upper()}_ALREADY_EXISTS"


class FailedPreconditionError(AssignsvcError):
    """The object's current state forbids the operation; `reason` says which rule."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConflictError(AssignsvcError):
    """A conditional write found the object changed since the caller read it; retry on a fresh read."""

    reason = "ETAG_MISMATCH"


class StoreUnavailableError(AssignsvcError):
    """The store could not be reached or answered too late; nothing was written."""

    reason = "STORE_UNAVAILABLE"


class UnauthenticatedError(AssignsvcError):
    """The caller's credentials no longer hold (a key revoked while its stream was open)."""

    reason = "CREDENTIALS_REVOKED"


class RateLimitedError(AssignsvcError):
    """The caller's API key is over its rate limit; `retry_delay_s` says when one more call may go."""

    reason = "RATE_LIMITED"

    def __init__(self, retry_delay_s: float) -> None:
        super().__init__("this API key is over its rate limit; retry after the delay")
        self.retry_delay_s = retry_delay_s
