"""Running scripts and commands on a standalone Redis or a Redis Cluster alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from assignsvc.store.cluster import run_one
from assignsvc.store.connection import RedisClient


class Scripts:
    """Routes each call as store.experiments does: through store.cluster on a cluster
    (which follows ASK and reloads scripts after NOSCRIPT), directly otherwise."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    def register(self, source: str) -> AsyncScript:
        """A script object (EVALSHA, loaded on first NOSCRIPT)."""
        return self.redis.register_script(source)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]) -> Any:
        """The script's reply."""
        if isinstance(self.redis, RedisCluster):
            return await run_one(self.redis, ("EVALSHA", script.sha, len(keys), *keys, *args), script.script)
        return await script(keys=keys, args=args)

    async def command(self, *command: EncodableT) -> Any:
        """One plain command's reply."""
        if isinstance(self.redis, RedisCluster):
            return await run_one(self.redis, command)
        return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in redis-py
