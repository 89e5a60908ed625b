"""Unary RPCs called in process: the HTTP edge's transcoded routes run the very handler the
gRPC server registered (authentication, admission, audit, metrics and the servicer, all
wrapped by add_services), without a loopback channel.

Through a loopback channel every call paid a second client, HTTP/2 framing and the
server's own queue (~1 ms of CPU per call here); the handler itself is what the call is
for. A handler reads its call through a few ServicerContext methods (metadata, the time
left, abort, the code it ended with); LocalContext gives those, and `abort` raises
LocalAbort, a grpc.aio.AbortError as the real one is, so the error mapping of api.status
lets it through unchanged. Streaming RPCs still go through the channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

Metadata = Sequence[tuple[str, str]]


class LocalAbort(grpc.aio.AbortError):  # type: ignore[misc]  # grpc ships no stub for it
    """A status a handler ended its call with: code, details and trailing metadata, as a
    client would see them."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Metadata) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


class LocalContext:
    """The ServicerContext of an in-process call: what the handlers read of a call."""

    def __init__(self, metadata: Metadata, timeout_s: float) -> None:
        self._metadata = tuple(metadata)
        self._deadline = time.monotonic() + timeout_s
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def time_remaining(self) -> float:
        return max(self._deadline - time.monotonic(), 0.0)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> None:
        self._code = code
        raise LocalAbort(code, details, trailing_metadata)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def cancelled(self) -> bool:
        return False


class LocalUnary:
    """One registered unary handler, called with a request message's bytes; the reply's bytes."""

    def __init__(self, handler: grpc.RpcMethodHandler) -> None:
        behavior: Callable[[bytes, Any], Awaitable[Any]] = handler.unary_unary
        self._behavior = behavior
        self._serialize: Callable[[Any], bytes] = handler.response_serializer

    async def __call__(self, request: bytes, metadata: Metadata, timeout_s: float) -> bytes:
        """The reply's bytes; LocalAbort with the status the handler ended with, or
        DEADLINE_EXCEEDED past timeout_s."""
        try:
            async with asyncio.timeout(timeout_s):
                reply = await self._behavior(request, LocalContext(metadata, timeout_s))
        except TimeoutError:
            raise LocalAbort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", ()) from None
        return self._serialize(reply)


def local_unaries(handlers: dict[str, grpc.RpcMethodHandler]) -> dict[str, LocalUnary]:
    """The unary handlers among those registered, by full method name."""
    return {method: LocalUnary(h) for method, h in handlers.items() if h.unary_unary is not None}
