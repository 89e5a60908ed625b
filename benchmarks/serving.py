"""What the baseline servers share: bind, say where (as `assignsvc serve` does), run until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc


async def serve_until_signal(server: grpc.aio.Server, port: int) -> None:
    """Bind 127.0.0.1:port (0: any), print `serving on 127.0.0.1:PORT`, stop on SIGTERM/SIGINT."""
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"serving on 127.0.0.1:{bound}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0)
