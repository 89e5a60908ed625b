"""What only the Redis assignment stores promise, against a real Redis-protocol server: key
names, compact rows, failures, pipelining. What every store promises: tests/store/contracts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from assignsvc.core.events import Webhook
from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Arm, Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.store import ClaimKind, RedisAssignmentStore
from assignsvc.store.claims import ClaimCodec, to_claim, to_claims
from assignsvc.store.connection import connect
from assignsvc.store.keys import Keyspace
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.protocols import Claim
from assignsvc.store.transports import FastPipeTransport
from assignsvc.store.webhooks import RedisWebhookStore

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
        codec = ClaimCodec(keys)
        for participant in ["alice", "b\u00f6b", "7", "x" * 256, "\U0001f600"]:
            shard = storage_shard(participant, 97)
            want = [keys.assignments("team-a/checkout", shard, 3), keys.arm_counts("team-a/checkout", shard, 3)]
            want += [keys.assignments("team-a/checkout", shard, v) for v in reversed(range(min_bucket_version))]
            assert codec.claim_keys(experiment).of(participant) == want
        assert codec.claim_keys(experiment) is codec.claim_keys(experiment)  # built once per version


class TestAssignmentStore:
    """Redis' own side of claims: rows stay listpacks, failures are StoreUnavailableError."""

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

    def test_a_silent_redis_is_given_up_after_the_timeout(self) -> None:
        """claim(timeout_s=...) ends on time though Redis never answers (the store's own timeout is 2 s).
        PipelinedAssignmentStore's own timer: tests/unit/test_failure_policy.py."""

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


class TestPipelinedClaims:
    """Concurrent claims share round trips and keep claim()'s semantics exactly."""

    def test_concurrent_claims_ride_few_pipelines(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> tuple[list[Claim], list[Claim], int]:
            inner = RedisAssignmentStore(redis, Keyspace())
            store = PipelinedAssignmentStore(inner, inner.transport, max_in_flight=4)
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

    def test_claims_written_at_once_on_the_fast_pipe_survive_a_script_flush(self, redis_url: str) -> None:
        """Once the fast pipe is connected, batches are written from the flush itself; a batch
        answered NOSCRIPT (Redis lost its scripts) is sent again after loading the script."""

        async def scenario(redis: Redis) -> tuple[list[Claim], list[Claim], int]:
            fast = FastPipeTransport(redis_url, 2.0, ClaimCodec(Keyspace("sub")))
            store = PipelinedAssignmentStore(RedisAssignmentStore(redis, Keyspace("sub"), fast), fast)
            try:
                await store.claim(EXPERIMENT, "warm", 0, 1)  # connects
                first = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", i % 2, 2) for i in range(50)))
                await redis.script_flush()
                again = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", None, 3) for i in range(50)))
                return list(first), list(again), store.pipelines_sent
            finally:
                await fast.pipe.close()

        first, again, pipelines = run(scenario, redis_url)
        assert [c.kind for c in first] == [ClaimKind.CREATED] * 50
        assert [(c.kind, c.arm_index) for c in again] == [(ClaimKind.EXISTING, i % 2) for i in range(50)]
        assert pipelines <= 4  # one round trip per gather, give or take a split

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
            fast = FastPipeTransport(redis_url, 2.0, ClaimCodec(Keyspace("many")))
            try:
                singles = [await one_by_one.claim(*request) for request in requests]
                many = await PipelinedAssignmentStore(
                    RedisAssignmentStore(redis, Keyspace("many"), fast), fast
                ).claim_many(requests)
            finally:
                await fast.pipe.close()
            before = ClaimCodec(Keyspace("before"))
            script = redis.register_script(SCRIPT_BEFORE_BATCHES)
            earlier = []
            for experiment, participant, proposed, now_ms in requests:
                keys, args = before.call((experiment, participant, proposed, now_ms))
                earlier.append(to_claim(experiment, await script(keys=keys, args=args), now_ms, proposed))
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


FLAT_REQUESTS = [(EXPERIMENT, "p1", 0, 5), (EXPERIMENT, "p2", None, 5), (EXPERIMENT, "p3", 1, 5)]


class TestFlatClaimReplies:
    """The batch script answers every claim of a call in one flat array, decoded by walking it."""

    def test_each_claim_reply_is_read_in_order(self) -> None:
        blocked = dataclasses.replace(EXPERIMENT, bucket_version=3, min_bucket_version=2)
        requests = [*FLAT_REQUESTS, (blocked, "p4", 0, 5)]
        replies = [3, 0, 1, b"2049", 2, b"1025", 4]
        assert to_claims(requests, replies) == [
            Claim(ClaimKind.CREATED, 0, 5, 0),
            Claim(ClaimKind.ABSENT, bucket_version=0),
            Claim(ClaimKind.EXISTING, 1, 2, 0),
            Claim(ClaimKind.BLOCKED, 1, 1, 0),
        ]

    @pytest.mark.parametrize("replies", [[3, 0], [3, 0, 3, 3], [3, 0, 1]])
    def test_too_few_or_too_many_replies_are_store_unavailable(self, replies: list[object]) -> None:
        with pytest.raises(StoreUnavailableError, match="answered"):
            to_claims(FLAT_REQUESTS, replies)


class TestWebhooksStoredBeforeFormats:
    """A webhook stored before formats existed reads as the assignsvc format and saves again."""

    def test_old_config_reads_and_updates(self, redis_url: str) -> None:
        async def body(redis: Redis) -> tuple[Webhook | None, bool | None, Webhook | None]:
            keys = Keyspace("old-wh")
            store = RedisWebhookStore(redis, keys)
            old: dict[str, object] = {"id": "wh_00000000000000aa", "url": "https://93.184.216.34/h", "events": []}
            old.update(description="", secrets=[], token="", sign_body=False, create_time_ms=1, update_time_ms=1)
            hook_id = str(old["id"])
            await redis.hset(keys.webhook(hook_id), mapping={"config": json.dumps(old, sort_keys=True), "enabled": 1})
            await redis.zadd(keys.webhook_index, {hook_id: 0})
            read = await store.get(hook_id)
            assert read is not None
            saved = await store.save(dataclasses.replace(read, description="d"), set_enabled=False, read=read)
            return read, saved, await store.get(hook_id)

        read, saved, after = run(body, redis_url)
        assert read is not None and read.format == "assignsvc"
        assert saved is True and after is not None and after.description == "d"


class TestPhaseCounters:
    """Counters written before phases (field = arm index) are phase 0's; later phases add fields."""

    def test_plain_arm_fields_read_as_phase_zero(self, redis_url: str) -> None:
        async def scenario(redis: Redis) -> tuple[set[bytes | str], set[bytes | str], dict[int, list[int]]]:
            keys = Keyspace()
            store = RedisAssignmentStore(redis, keys)
            small = dataclasses.replace(EXPERIMENT, storage_shards=1)
            counters = keys.arm_counts(small.id, 0, 0)
            await redis.hset(counters, mapping={"0": 7, "1": 4})  # as every earlier version wrote them
            await store.claim(small, "now-0", 1, 5)
            before = set(await redis.hkeys(counters))
            await store.claim(dataclasses.replace(small, phase=1, phase_start_ms=9), "now-1", 0, 10)
            after = set(await redis.hkeys(counters))
            return before, after, await store.phase_counts(small, 0)

        before, after, phases = run(scenario, redis_url)
        assert before == {b"0", b"1"}  # phase 0 writes the fields it always wrote
        assert after == {b"0", b"1", b"1024"}
        assert phases == {0: [7, 5], 1: [1, 0]}
