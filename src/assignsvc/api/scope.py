"""The caller's datasource, set by the interceptor for the call, and ids as it names them.

Servicers qualify every id a request names with `scoped` and show callers only
`local_part` (core.scoping): a caller cannot name, list or see another datasource's
objects, whatever ids it sends.
"""

from __future__ import annotations

from contextvars import ContextVar

from assignsvc.app.access import CallerGrant
from assignsvc.core.scoping import DEFAULT_DATASOURCE, local_part, qualify

# Set per call by the server interceptor (the authenticated key's datasource); without
# auth every call is the default datasource's.
CALLER_DATASOURCE: ContextVar[str] = ContextVar("caller_datasource", default=DEFAULT_DATASOURCE)
# The call's key, for streams and batches to check again as they go (None without auth).
CALLER_GRANT: ContextVar[CallerGrant | None] = ContextVar("caller_grant", default=None)

__all__ = [
    "CALLER_DATASOURCE",
    "CALLER_GRANT",
    "bill_items",
    "caller_datasource",
    "ensure_live",
    "local_part",
    "scoped",
    "take_item",
]


def caller_datasource() -> str:
    """The datasource of the current call."""
    return CALLER_DATASOURCE.get()


def bill_items(items: int) -> None:
    """Charge a batch's items beyond the first to the caller's rate limit (the call was
    admitted for one; later calls wait until the bucket has refilled)."""
    grant = CALLER_GRANT.get()
    if grant is not None:
        grant.bill(items)


def take_item() -> None:
    """One more request of a stream: UnauthenticatedError once the key is revoked,
    RateLimitedError over its limit."""
    grant = CALLER_GRANT.get()
    if grant is not None:
        grant.take()


def ensure_live() -> None:
    """UnauthenticatedError once the caller's key was revoked (long streams check per chunk)."""
    grant = CALLER_GRANT.get()
    if grant is not None:
        grant.ensure_live()


def scoped(local_id: str) -> str:
    """The internal id of an object the current caller names `local_id`."""
    return qualify(CALLER_DATASOURCE.get(), local_id)
