"""Contract tests of the Redis stores against a real Redis-protocol server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Arm, Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.store import ClaimKind, RedisAssignmentStore, RedisExperimentStore
from assignsvc.store.connection import connect
from assignsvc.store.keys import Keyspace

T = TypeVar("T")
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))


def run(factory: Callable[[Redis], Awaitable[T]], url: str) -> T:
    async def main() -> T:
        redis = connect(url, timeout_s=2.0)
        try:
            return await factory(redis)
        finally:
            await redis.aclose()
    return asyncio.run(main())


class TestAssignmentStore:
    """claim(): the first stored arm wins, atomically, and is returned forever."""

    def test_first_claim_creates_then_sticks(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> list[object]:
            store = RedisAssignmentStore(redis, Keyspace())
            first = await store.claim(EXPERIMENT, "alice", 1, 1_000)
            second = await store.claim(EXPERIMENT, "alice", 0, 2_000)
            looked = await store.lookup(EXPERIMENT, "alice")
            absent = await store.claim(EXPERIMENT, "bob", None, 3_000)
            return [first, second, looked, absent, await store.lookup(EXPERIMENT, "bob")]

        first, second, looked, absent, bob = run(scenario, redis_url)
        assert (first.kind, first.arm_index, first.first_seen_ms) == (ClaimKind.CREATED, 1, 1_000)
        assert (second.kind, second.arm_index, second.first_seen_ms) == (ClaimKind.EXISTING, 1, 1_000)
        assert looked == second
        assert absent.kind is ClaimKind.ABSENT and bob.kind is ClaimKind.ABSENT

    def test_concurrent_conflicting_claims_agree(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> tuple[list[object], dict[bytes, bytes]]:
            store = RedisAssignmentStore(redis, Keyspace())
            claims = await asyncio.gather(
                *(store.claim(EXPERIMENT, "carol", i % 2, 10 + i) for i in range(64))
            )
            shard = storage_shard("carol", EXPERIMENT.storage_shards)
            counts = await redis.hgetall(Keyspace().arm_counts("exp", shard, 0))
            return list(claims), counts

        claims, counts = run(scenario, redis_url)
        assert len({c.arm_index for c in claims}) == 1  # type: ignore[attr-defined]
        assert [c.kind for c in claims].count(ClaimKind.CREATED) == 1  # type: ignore[attr-defined]
        assert sum(int(v) for v in counts.values()) == 1

    def test_versions_are_separate_and_min_version_blocks(self, redis_url: str) -> None:
        v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)
        v1_min = dataclasses.replace(EXPERIMENT, bucket_version=2, min_bucket_version=1)

        async def scenario(redis: Redis) -> list[object]:
            store = RedisAssignmentStore(redis, Keyspace())
            await store.claim(EXPERIMENT, "dave", 0, 1)
            fresh = await store.claim(v1, "dave", 1, 2)  # a new version re-buckets
            blocked = await store.claim(v1_min, "dave", 1, 3)
            new_user = await store.claim(v1_min, "erin", 1, 4)
            lookup = await store.lookup(v1_min, "dave")
            # holding a current-version arm does not lift the block (GrowthBook's rule)
            await store.claim(dataclasses.replace(EXPERIMENT, bucket_version=2), "frank", 0, 5)
            await store.claim(EXPERIMENT, "frank", 0, 5)
            both = await store.claim(v1_min, "frank", 0, 6)
            return [fresh, blocked, new_user, lookup, both]

        fresh, blocked, new_user, lookup, both = run(scenario, redis_url)
        assert both.kind is ClaimKind.BLOCKED
        assert (fresh.kind, fresh.arm_index, fresh.bucket_version) == (ClaimKind.CREATED, 1, 1)
        assert (blocked.kind, blocked.bucket_version) == (ClaimKind.BLOCKED, 0)  # only v0 is below 1
        assert new_user.kind is ClaimKind.CREATED
        assert lookup.kind is ClaimKind.ABSENT  # nothing was written for the blocked one

    def test_rows_are_compact_listpacks(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> set[bytes]:
            store = RedisAssignmentStore(redis, Keyspace())
            now_ms = 1_700_000_000_000
            await asyncio.gather(*(store.claim(EXPERIMENT, f"user-{i:015d}", i % 2, now_ms) for i in range(2000)))
            keys = [k async for k in redis.scan_iter("as:a:*")]
            return {await redis.object("encoding", k) for k in keys}

        assert run(scenario, redis_url) == {b"listpack"}

    def test_unreachable_redis_is_store_unavailable(self) -> None:
        async def scenario(redis: Redis) -> None:
            await RedisAssignmentStore(redis, Keyspace()).claim(EXPERIMENT, "x", 0, 1)

        with pytest.raises(StoreUnavailableError, match="claim"):
            run(scenario, "redis://127.0.0.1:1")


class TestExperimentStore:
    """create() is insert-only; load_all() and changes() see every write."""

    def test_create_get_put_load(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> list[object]:
            store = RedisExperimentStore(redis, Keyspace())
            created = await store.create(EXPERIMENT)
            again = await store.create(dataclasses.replace(EXPERIMENT, name="other"))
            rev1 = await store.revision()
            await store.put(dataclasses.replace(EXPERIMENT, coverage=0.5))
            revision, everything = await store.load_all()
            return [created, again, rev1, revision, everything, await store.get("missing")]

        created, again, rev1, revision, everything, missing = run(scenario, redis_url)
        assert created is True and again is False
        assert revision == rev1 + 1  # type: ignore[operator]
        assert everything == {"exp": dataclasses.replace(EXPERIMENT, coverage=0.5)}
        assert missing is None

    def test_changes_are_pushed(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> str:
            store = RedisExperimentStore(redis, Keyspace())
            feed: AsyncIterator[str] = store.changes()
            assert await asyncio.wait_for(feed.__anext__(), 5) == ""  # subscribed
            await store.create(EXPERIMENT)
            changed = await asyncio.wait_for(feed.__anext__(), 5)
            await feed.aclose()  # type: ignore[attr-defined]
            return changed

        assert run(scenario, redis_url) == "exp"
