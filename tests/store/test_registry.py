"""The registry against a real Redis: pushed writes are applied one by one, and a
skipped revision (a lost message) triggers a full reload at once, not at the next poll."""

from __future__ import annotations

import asyncio
import dataclasses

from redis.asyncio import Redis

from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.model import Arm, Experiment
from assignsvc.store import RedisExperimentStore
from assignsvc.store.codec import experiment_to_json
from assignsvc.store.connection import connect
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import MUST_BE_NEW

BASE = Experiment(id="base", name="base", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), revision=1)


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_pushed_writes_and_a_lost_message(redis_url: str) -> None:
    async def scenario() -> None:
        redis = connect(redis_url, timeout_s=2.0)
        assert isinstance(redis, Redis)
        keys = Keyspace()
        store = RedisExperimentStore(redis, keys)
        registry = ExperimentRegistry(store, refresh_interval_s=3600)  # polling cannot help here
        await registry.start()
        try:
            await store.write([(BASE, MUST_BE_NEW)])
            await _until(lambda: registry.get("base") is not None)
            # a write whose message is lost: stored and counted, never published
            silent = dataclasses.replace(BASE, id="silent")
            await redis.hset(keys.experiments, "silent", experiment_to_json(silent))
            await redis.incr(keys.experiments_revision)
            await asyncio.sleep(0.2)
            assert registry.get("silent") is None
            # the next write's notice skips a revision: the registry reloads everything
            await store.write([(dataclasses.replace(BASE, id="next"), MUST_BE_NEW)])
            await _until(lambda: registry.get("next") is not None and registry.get("silent") is not None)
            await store.archive("base", None)
            await _until(lambda: registry.get("base") is None)
        finally:
            await registry.stop()
            await redis.aclose()

    asyncio.run(scenario())


def test_a_store_that_lost_writes_is_the_truth_again(redis_url: str) -> None:
    """A failover to a lagging replica: the revision counter and an experiment go back to an
    older state. Every replica then serves what Redis holds, not the lost version."""

    async def scenario() -> None:
        redis = connect(redis_url, timeout_s=2.0)
        assert isinstance(redis, Redis)
        keys = Keyspace()
        store = RedisExperimentStore(redis, keys)
        registry = ExperimentRegistry(store, refresh_interval_s=3600)
        await registry.start()
        try:
            await store.write([(BASE, MUST_BE_NEW)])
            await _until(lambda: registry.get("base") is not None)
            snapshot_json, snapshot_revision = (
                await redis.hget(keys.experiments, "base"),
                await redis.get(keys.experiments_revision),
            )
            renamed = dataclasses.replace(BASE, name="lost", revision=2)
            await store.write([(renamed, 1)])
            await _until(lambda: registry.get("base").experiment.name == "lost")  # type: ignore[union-attr]
            # the failover: Redis comes back with the snapshot taken before the rename
            assert snapshot_json is not None and snapshot_revision is not None
            await redis.hset(keys.experiments, "base", snapshot_json)
            await redis.set(keys.experiments_revision, snapshot_revision)
            await registry.refresh()
            held = registry.get("base")
            assert held is not None and held.experiment.name == "base" and held.experiment.revision == 1
        finally:
            await registry.stop()
            await redis.aclose()

    asyncio.run(scenario())
