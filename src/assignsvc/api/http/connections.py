"""Connection limits aiohttp does not have: a cap on open connections and a header timeout.

aiohttp bounds a body's read (the routes' BODY_TIMEOUT_S) and an idle keep-alive
connection (keepalive_timeout, which also ends a connection that starts a next request
and never finishes its headers), but a fresh connection that sends a few bytes of a
request line and stalls is held forever, and connections are not counted. Each
accepted connection is wrapped here: past `max_connections` it is answered 503 with
Retry-After and closed (instead of queueing without bound), and one that has not
delivered its first request's headers within `header_timeout_s` is closed. The HTTP edge's
middleware calls `headers_received` when a request reaches it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

# Defaults: a sidecar serves its own pod, so a few thousand connections is far above use.
MAX_CONNECTIONS = 4096
HEADER_TIMEOUT_S = 10.0
# A refused connection is answered after its request arrives (or after this long).
REFUSAL_WAIT_S = 1.0
_REFUSAL_BODY = json.dumps(
    {"code": 14, "message": "too many open connections; retry after the delay", "details": []}
).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections may be open at once, and how long a new one has to send its headers."""

    max_connections: int = MAX_CONNECTIONS
    header_timeout_s: float = HEADER_TIMEOUT_S


class ConnectionGuard:
    """Counts open connections and arms each new one's header timer."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.timed_out = 0
        self._waiting: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """What the listening socket builds per connection: `make`'s protocol, guarded."""

        def build() -> asyncio.Protocol:
            if self.open >= self.limits.max_connections:
                self.refused += 1
                return _Refusing()
            return _Guarded(make(), self)

        return build

    def headers_received(self, transport: asyncio.BaseTransport | None) -> None:
        """A request's headers arrived on this connection: its header timer is done."""
        if transport is not None and self._waiting:
            timer = self._waiting.pop(transport, None)
            if timer is not None:
                timer.cancel()

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        self.open += 1
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self.limits.header_timeout_s, self._expire, transport)

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self.open -= 1
        self.headers_received(transport)

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        if self._waiting.pop(transport, None) is not None:
            self.timed_out += 1
            transport.close()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted and timed by the guard."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guard._opened(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard._closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Refusing(asyncio.Protocol):
    """A connection past the cap: 503 once its request starts (or after a short wait), then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_WAIT_S, self._answer)

    def data_received(self, data: bytes) -> None:
        self._answer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()

    def _answer(self) -> None:
        self._timer.cancel()
        if not self._transport.is_closing():
            assert isinstance(self._transport, asyncio.WriteTransport)
            self._transport.write(REFUSAL)
            self._transport.close()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site with every connection wrapped by a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, **options: object) -> None:
        super().__init__(runner, host, port, **options)  # type: ignore[arg-type]
        self._guard = guard

    async def start(self) -> None:
        """TCPSite.start, with the runner's protocol factory wrapped."""
        server = self._runner.server
        assert server is not None
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
