"""The HTTP edge's connection limits, on a live aiohttp server over real sockets: a
connection that stalls inside its first request's headers is closed, connections past
the cap get 503 with Retry-After instead of a queue, and a freed slot serves again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from assignsvc.api.http.app import HttpEdge, UseCases
from assignsvc.api.http.connections import ConnectionLimits

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


async def _ready() -> bool:
    return True


def _edge(limits: ConnectionLimits) -> HttpEdge:
    # /healthz reaches no use case: the edge's own plumbing is what is under test.
    nothing: Any = None
    return HttpEdge(UseCases(nothing, nothing, nothing, None, _ready), 0, False, limits)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """The status line and headers of one answer (its body is read and dropped)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head


def test_a_stalled_request_line_is_cut_off_and_others_are_served() -> None:
    async def scenario() -> tuple[bytes, float, bytes]:
        edge = _edge(ConnectionLimits(max_connections=10, header_timeout_s=0.3))
        port = await edge.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /heal")  # and nothing more
            started = time.monotonic()
            closed = await asyncio.wait_for(reader.read(), 5)  # b"" once the server closes it
            waited = time.monotonic() - started
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEALTH)
            served = await _answer(reader)
            await asyncio.sleep(0.5)  # past the header timeout: a served connection stays open
            writer.write(HEALTH)
            again = await _answer(reader)
            writer.close()
            assert again.startswith(b"HTTP/1.1 200"), again
            assert edge.connections.timed_out == 1
            return closed, waited, served
        finally:
            await edge.stop(time.monotonic())

    closed, waited, served = asyncio.run(scenario())
    assert closed == b""
    assert waited < 4  # closed by the header timer, not by the read's own 5 s bound
    assert served.startswith(b"HTTP/1.1 200"), served


def test_connections_past_the_cap_get_503_with_retry_after() -> None:
    async def scenario() -> tuple[bytes, bytes, int]:
        edge = _edge(ConnectionLimits(max_connections=2, header_timeout_s=30))
        port = await edge.start("127.0.0.1", 0)
        try:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            for reader, writer in held:  # both served, and kept open
                writer.write(HEALTH)
                assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEALTH)
            refused = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            held[0][1].close()
            await held[0][1].wait_closed()
            for _ in range(100):  # the server sees the close on its next loop turn
                if edge.connections.open < 2:
                    break
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEALTH)
            freed = await _answer(reader)
            writer.close()
            held[1][1].close()
            return refused, freed, edge.connections.refused
        finally:
            await edge.stop(time.monotonic())

    refused, freed, count = asyncio.run(scenario())
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), refused
    assert b"\r\nRetry-After: 1" in head
    assert b"too many open connections" in body
    assert count == 1
    assert freed.startswith(b"HTTP/1.1 200"), freed
