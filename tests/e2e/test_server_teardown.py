"""Everything a server starts is released once, in reverse order, on every path: a start
that fails halfway leaves no embedded Redis, data-dir lock or bound port behind."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import pytest

from assignsvc.config import ConfigError, ServerConfig
from assignsvc.server import create_server
from tests.support import free_port


def test_a_failed_start_releases_what_it_started(tmp_path: Path) -> None:
    port = free_port()
    config = ServerConfig(port=port, redis_url=None, data_dir=tmp_path / "data", grace_period_s=0.2)
    with socket.socket() as busy:  # the metrics port is taken: the start fails after gRPC bound its port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        failing = dataclasses.replace(config, metrics_port=busy.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            asyncio.run(create_server(failing))

    async def start_again() -> None:  # same data dir (its lock) and port: both were released
        running = await create_server(config)
        try:
            assert running.port == port
            assert running.embedded is not None and running.ready.is_set()
        finally:
            await running.stop()

    asyncio.run(start_again())
