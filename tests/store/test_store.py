"""Contract tests of the Redis stores against a real Redis-protocol server."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Arm, Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.store import ClaimKind, RedisAssignmentStore, RedisExperimentStore
from assignsvc.store.assignments import CLAIM_BATCH_SCRIPT
from assignsvc.store.connection import connect
from assignsvc.store.experiments import SUBSCRIBED
from assignsvc.store.fastpipe import FastScriptPipe
from assignsvc.store.keys import Keyspace
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.protocols import ARCHIVED, MISSING, MUST_BE_NEW, ChangeNotice, Claim, WriteConflict

T = TypeVar("T")
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))


def run(factory: Callable[[Redis], Awaitable[T]], url: str) -> T:
    async def main() -> T:
        redis = connect(url, timeout_s=2.0)
        assert isinstance(redis, Redis)
        try:
            return await factory(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


class TestClaimKeys:
    """The claim script's KEYS, from the per-version templates, are Keyspace's names exactly."""

    @pytest.mark.parametrize("min_bucket_version", [0, 1, 3])
    def test_same_names_as_keyspace(self, min_bucket_version: int) -> None:
        keys = Keyspace("pfx:{x}")
        experiment = dataclasses.replace(
            EXPERIMENT, id="team-a/checkout", bucket_version=3, min_bucket_version=min_bucket_version, storage_shards=97
        )
        store = RedisAssignmentStore(Redis(), keys)
        for participant in ["alice", "b\u00f6b", "7", "x" * 256, "\U0001f600"]:
            shard = storage_shard(participant, 97)
            want = [keys.assignments("team-a/checkout", shard, 3), keys.arm_counts("team-a/checkout", shard, 3)]
            want += [keys.assignments("team-a/checkout", shard, v) for v in reversed(range(min_bucket_version))]
            assert store.claim_keys(experiment).of(participant) == want
        assert store.claim_keys(experiment) is store.claim_keys(experiment)  # built once per version


class TestAssignmentStore:
    """claim(): the first stored arm wins, atomically, and is returned forever."""

    def test_first_claim_creates_then_sticks(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> list[Claim]:
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
        async def scenario(redis: Redis) -> tuple[list[Claim], dict[bytes | str, bytes | str]]:
            store = RedisAssignmentStore(redis, Keyspace())
            claims = await asyncio.gather(*(store.claim(EXPERIMENT, "carol", i % 2, 10 + i) for i in range(64)))
            shard = storage_shard("carol", EXPERIMENT.storage_shards)
            counts = await redis.hgetall(Keyspace().arm_counts("exp", shard, 0))
            return list(claims), counts

        claims, counts = run(scenario, redis_url)
        assert len({c.arm_index for c in claims}) == 1
        assert [c.kind for c in claims].count(ClaimKind.CREATED) == 1
        assert sum(int(v) for v in counts.values()) == 1

    def test_versions_are_separate_and_min_version_blocks(self, redis_url: str) -> None:
        v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)
        v1_min = dataclasses.replace(EXPERIMENT, bucket_version=2, min_bucket_version=1)

        async def scenario(redis: Redis) -> list[Claim]:
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

    def test_counters_are_exact_per_arm_and_version(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> list[object]:
            store = RedisAssignmentStore(redis, Keyspace())
            before = await store.has_assignments(EXPERIMENT)
            await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", i % 2, 1) for i in range(300)))
            await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", 0, 1) for i in range(300)))  # repeats
            v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)
            return [
                before,
                await store.has_assignments(EXPERIMENT),
                await store.has_assignments(v1),
                await store.arm_counts(EXPERIMENT, 0),
                await store.arm_counts(v1, 1),
            ]

        before, after, later_version, counts, counts_v1 = run(scenario, redis_url)
        assert before is False and after is True and later_version is True
        assert counts == [150, 150] and counts_v1 == [0, 0]

    def test_unreachable_redis_is_store_unavailable(self) -> None:
        async def scenario(redis: Redis) -> None:
            await RedisAssignmentStore(redis, Keyspace()).claim(EXPERIMENT, "x", 0, 1)

        with pytest.raises(StoreUnavailableError, match="claim"):
            run(scenario, "redis://127.0.0.1:1")

    def test_a_silent_redis_is_given_up_after_the_timeout(self) -> None:
        """claim(timeout_s=...) ends on time though Redis never answers (the store's own timeout is 2 s).
        PipelinedAssignmentStore's own timer: tests/test_failure_policy.py."""

        async def main() -> float:
            async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    while await reader.read(65536):
                        pass
                finally:  # also when cancelled as the test's loop closes
                    writer.close()

            server = await asyncio.start_server(silent, "127.0.0.1", 0)
            redis = connect(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout_s=2.0)
            assert isinstance(redis, Redis)
            store = RedisAssignmentStore(redis, Keyspace())
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(StoreUnavailableError, match=r"within 0\.200s"):
                    await store.claim(EXPERIMENT, "x", 0, 1, timeout_s=0.2)
                return asyncio.get_running_loop().time() - started
            finally:
                await redis.aclose()
                server.close()
                await server.wait_closed()

        assert asyncio.run(main()) < 0.5


class TestExperimentStore:
    """write() is a compare-and-set; load_all() and changes() see every write."""

    def test_write_is_a_compare_and_set_on_the_revision(self, redis_url: str) -> None:
        v1 = dataclasses.replace(EXPERIMENT, revision=1)
        v2 = dataclasses.replace(EXPERIMENT, coverage=0.5, revision=2)

        async def scenario(redis: Redis) -> list[object]:
            store = RedisExperimentStore(redis, Keyspace())
            created = await store.write([(v1, MUST_BE_NEW)])
            again = await store.write([(dataclasses.replace(v1, name="other"), MUST_BE_NEW)])
            rev1 = await store.revision()
            stale = await store.write([(v2, 0)])
            updated = await store.write([(v2, 1)])
            revision, everything = await store.load_all()
            return [created, again, rev1, stale, updated, revision, everything, await store.get("missing")]

        created, again, rev1, stale, updated, revision, everything, missing = run(scenario, redis_url)
        assert created is None and updated is None
        assert again == WriteConflict("exp", 1) and stale == WriteConflict("exp", 1)
        assert revision == rev1 + 1  # type: ignore[operator]
        assert everything == {"exp": v2}
        assert missing is None

    def test_a_write_of_many_is_all_or_nothing(self, redis_url: str) -> None:
        one = dataclasses.replace(EXPERIMENT, id="one", revision=1)
        two = dataclasses.replace(EXPERIMENT, id="two", revision=1)

        async def scenario(redis: Redis) -> list[object]:
            store = RedisExperimentStore(redis, Keyspace())
            await store.write([(two, MUST_BE_NEW)])
            refused = await store.write([(one, MUST_BE_NEW), (dataclasses.replace(two, revision=2), 5)])
            return [refused, await store.get("one"), await store.get("two")]

        refused, one_after, two_after = run(scenario, redis_url)
        assert refused == WriteConflict("two", 1)
        assert one_after is None and two_after == two

    def test_archive_keeps_the_definition_and_the_id(self, redis_url: str) -> None:
        v1 = dataclasses.replace(EXPERIMENT, revision=1)

        async def scenario(redis: Redis) -> list[object]:
            store = RedisExperimentStore(redis, Keyspace())
            await store.write([(v1, MUST_BE_NEW)])
            stale = await store.archive("exp", 7)
            archived = await store.archive("exp", 1)
            missing = await store.archive("exp", None)
            reuse = await store.write([(v1, MUST_BE_NEW)])
            return [stale, archived, missing, reuse, await store.get("exp"), await store.get_archived("exp")]

        stale, archived, missing, reuse, live, kept = run(scenario, redis_url)
        assert stale == WriteConflict("exp", 1) and archived is None
        assert missing == WriteConflict("exp", MISSING) and reuse == WriteConflict("exp", ARCHIVED)
        assert live is None and kept == v1

    def test_changes_are_pushed_with_their_revision(self, redis_url: str) -> None:
        one = dataclasses.replace(EXPERIMENT, id="one", revision=1)
        two = dataclasses.replace(EXPERIMENT, id="two", revision=1)

        async def scenario(redis: Redis) -> list[ChangeNotice]:
            store = RedisExperimentStore(redis, Keyspace())
            feed: AsyncIterator[ChangeNotice] = store.changes()
            notices = [await asyncio.wait_for(feed.__anext__(), 5)]  # subscribed
            await store.write([(one, MUST_BE_NEW), (two, MUST_BE_NEW)])
            notices.append(await asyncio.wait_for(feed.__anext__(), 5))
            await store.archive("one", None)
            notices.append(await asyncio.wait_for(feed.__anext__(), 5))
            await feed.aclose()  # type: ignore[attr-defined]
            return notices

        subscribed, written, archived = run(scenario, redis_url)
        assert subscribed == SUBSCRIBED
        assert written == ChangeNotice(1, ("one", "two"))  # one write, one notice, one revision
        assert archived == ChangeNotice(2, ("one",))


class TestPipelinedClaims:
    """Concurrent claims share round trips and keep claim()'s semantics exactly."""

    def test_concurrent_claims_ride_few_pipelines(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> tuple[list[Claim], list[Claim], int]:
            store = PipelinedAssignmentStore(RedisAssignmentStore(redis, Keyspace()), max_in_flight=4)
            first = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i % 150}", i % 2, 7) for i in range(300)))
            again = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", None, 8) for i in range(150)))
            return list(first), list(again), store.pipelines_sent

        first, again, pipelines = run(scenario, redis_url)
        assert pipelines <= 8  # 450 claims, two gathers: a handful of round trips, not 450
        created = [c for c in first if c.kind is ClaimKind.CREATED]
        assert len(created) == 150  # exactly one winner per participant
        winners = {c.arm_index for c in created}
        assert winners <= {0, 1}
        for i in range(150):  # later claims of the same participant see the winner's arm
            assert again[i].kind is ClaimKind.EXISTING
            assert again[i].arm_index == first[i].arm_index == first[i + 150].arm_index

    def test_a_failure_reaches_every_waiter(self) -> None:
        async def scenario(redis: Redis) -> list[BaseException | Claim]:
            store = PipelinedAssignmentStore(RedisAssignmentStore(redis, Keyspace()))
            calls = (store.claim(EXPERIMENT, f"p{i}", 0, 1) for i in range(20))
            return list(await asyncio.gather(*calls, return_exceptions=True))

        outcomes = run(scenario, "redis://127.0.0.1:1")
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes)

    def test_batch_script_claims_as_the_one_claim_script(self, redis_url: str) -> None:
        """The fast pipe's CLAIM_BATCH_SCRIPT (100 claims a call) answers and stores each claim as
        CLAIM_SCRIPT does one at a time, and as the claim script did before claims were batched:
        same replies, same rows and counters, blocked versions included, claims of one
        participant in order inside one call."""
        rng = random.Random(7)
        versions = [
            dataclasses.replace(EXPERIMENT, bucket_version=v, min_bucket_version=m, storage_shards=5)
            for v, m in ((0, 0), (1, 0), (2, 1), (3, 3))
        ]
        requests = [
            (rng.choice(versions), f"p{rng.randrange(60)}", rng.choice([None, 0, 1]), 1_000 + i) for i in range(700)
        ]

        async def scenario(redis: Redis) -> tuple[list[list[Claim]], list[dict[object, object]]]:
            one_by_one = RedisAssignmentStore(redis, Keyspace("one"))
            pipe = FastScriptPipe(redis_url, CLAIM_BATCH_SCRIPT, 2.0)
            try:
                singles = [await one_by_one.claim(*request) for request in requests]
                many = await PipelinedAssignmentStore(RedisAssignmentStore(redis, Keyspace("many")), pipe).claim_many(
                    requests
                )
            finally:
                await pipe.close()
            before = RedisAssignmentStore(redis, Keyspace("before"))
            script = redis.register_script(SCRIPT_BEFORE_BATCHES)
            earlier = []
            for request in requests:
                keys, args = before.claim_call(request)
                earlier += before.claims_from_replies([request], [[await script(keys=keys, args=args)]])
            tables: list[dict[object, object]] = []
            for prefix in ("one", "many", "before"):
                names: list[bytes] = sorted(await redis.keys(f"{prefix}:*"))  # type: ignore[arg-type]  # bytes: no decoding
                tables.append({k.split(b":", 1)[1]: await redis.hgetall(k) for k in names})
            return [singles, many, earlier], tables

        (singles, many, earlier), (one_rows, many_rows, earlier_rows) = run(scenario, redis_url)
        assert many == singles == earlier
        assert {c.kind for c in singles} == set(ClaimKind)
        assert one_rows == many_rows == earlier_rows and one_rows


# The claim script as it was before claims were batched (HGET then HSET): the reference.
SCRIPT_BEFORE_BATCHES = """
for i = 3, #KEYS do
  local old = redis.call('HGET', KEYS[i], ARGV[1])
  if old then return {2, old, i} end
end
local row = redis.call('HGET', KEYS[1], ARGV[1])
if row then return {1, row} end
if ARGV[2] == '' then return {0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return {3}
"""
