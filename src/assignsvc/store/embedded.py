"""The embedded Redis of `assignsvc serve`: a child redis-server on a unix socket, with AOF."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from pathlib import Path
from typing import IO

from assignsvc.config import ConfigError
from assignsvc.store.redis_server import RedisServerError, RedisServerProcess, find_server_binary, socket_path_for

log = logging.getLogger("assignsvc")

EMBEDDED_WATCH_INTERVAL_S = 1.0


class EmbeddedRedis:
    """The embedded Redis of `serve`: one per data dir (locked), restarted if it dies."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = RedisServerProcess(data_dir, unix_socket=socket_path_for(data_dir))
        self._lock_file: IO[str] | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Lock the data dir, start Redis on a unix socket with AOF, return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = (self.data_dir / "serve.lock").open("w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise ConfigError(
                f"data dir {self.data_dir} is in use by another `assignsvc serve`; "
                "give each embedded instance its own --data-dir, or share one with --redis-url"
            ) from None
        self._lock_file = lock_file
        try:
            find_server_binary()  # no binary is a usage error (exit 2 with the fix), not a crash
        except RedisServerError as exc:
            self._release_lock()
            raise ConfigError(str(exc)) from None
        await asyncio.to_thread(self.process.start)
        self._watch = asyncio.create_task(self._restart_if_dead(), name="embedded-redis-watch")
        return self.process.url

    async def _restart_if_dead(self) -> None:
        while True:
            await asyncio.sleep(EMBEDDED_WATCH_INTERVAL_S)
            if not self.process.alive():
                log.error("embedded redis exited; restarting it from %s", self.data_dir)
                try:
                    await asyncio.to_thread(self.process.start)
                except Exception:
                    log.exception("embedded redis restart failed; retrying")

    async def stop(self) -> None:
        """Stop watching, stop Redis (flushing the AOF), release the lock."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.to_thread(self.process.stop)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
