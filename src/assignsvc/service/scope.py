"""The caller's datasource, set by the interceptor for the call, and ids as it names them.

Servicers qualify every id a request names with `scoped` and show callers only
`local_part` (core.scoping): a caller cannot name, list or see another datasource's
objects, whatever ids it sends.
"""

from __future__ import annotations

from contextvars import ContextVar

from assignsvc.core.scoping import DEFAULT_DATASOURCE, local_part, qualify

# Set per call by the server interceptor (the authenticated key's datasource); without
# auth every call is the default datasource's.
CALLER_DATASOURCE: ContextVar[str] = ContextVar("caller_datasource", default=DEFAULT_DATASOURCE)

__all__ = ["CALLER_DATASOURCE", "caller_datasource", "local_part", "scoped"]


def caller_datasource() -> str:
    """The datasource of the current call."""
    return CALLER_DATASOURCE.get()


def scoped(local_id: str) -> str:
    """The internal id of an object the current caller names `local_id`."""
    return qualify(CALLER_DATASOURCE.get(), local_id)
