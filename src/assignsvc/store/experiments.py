"""Experiment definitions in Redis: one hash, a revision counter and a change channel.

Writers bump the revision and publish the id in the same script, so a replica
that misses a message still sees the revision move on its next check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from assignsvc.core.model import Experiment
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_errors import store_errors

# KEYS: experiments hash, revision, ARGV: id, json, channel. Returns the new revision or 0.
_CREATE_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local rev = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return rev
"""

# KEYS: experiments hash, revision, ARGV: id, json, channel. Overwrites; returns the revision.
_PUT_SCRIPT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local rev = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return rev
"""


SUBSCRIBED = ""  # first item of changes(): the subscription is live


class RedisExperimentStore:
    """ExperimentStore on Redis."""

    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys
        self._create = redis.register_script(_CREATE_SCRIPT)
        self._put = redis.register_script(_PUT_SCRIPT)

    async def create(self, experiment: Experiment) -> bool:
        """See ExperimentStore.create."""
        keys = [self._keys.experiments, self._keys.experiments_revision]
        args = [experiment.id, experiment_to_json(experiment), self._keys.experiment_changes]
        with store_errors("create experiment"):
            revision = await self._create(keys=keys, args=args)
        return int(revision) > 0

    async def put(self, experiment: Experiment) -> None:
        """See ExperimentStore.put."""
        keys = [self._keys.experiments, self._keys.experiments_revision]
        args = [experiment.id, experiment_to_json(experiment), self._keys.experiment_changes]
        with store_errors("put experiment"):
            await self._put(keys=keys, args=args)

    async def get(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get."""
        with store_errors("get experiment"):
            raw = await self._redis.hget(self._keys.experiments, experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def load_all(self) -> tuple[int, dict[str, Experiment]]:
        """See ExperimentStore.load_all (one MULTI, so revision and rows agree)."""
        with store_errors("load experiments"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._keys.experiments_revision)
                pipe.hgetall(self._keys.experiments)
                revision, rows = await pipe.execute()
        experiments = {}
        for raw in rows.values():
            experiment = experiment_from_json(raw)
            experiments[experiment.id] = experiment
        return int(revision or 0), experiments

    async def revision(self) -> int:
        """See ExperimentStore.revision."""
        with store_errors("read revision"):
            value = await self._redis.get(self._keys.experiments_revision)
        return int(value or 0)

    async def changes(self) -> AsyncIterator[str]:
        """See ExperimentStore.changes; ends (raising) when the connection drops."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            with store_errors("subscribe to experiment changes"):
                await pubsub.subscribe(self._keys.experiment_changes)
                yield SUBSCRIBED
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        yield data.decode()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
