"""Sticky assignments in Redis: claims over any ClaimTransport, reads over redis-py.

Each Assign is one claim script call (store.claims), sent by a transport: redis-py,
the fast pipe (store.transports) or a Redis Cluster (store.cluster). ClaimingStore
owns what every transport shares: decoding the replies and the claim's deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Experiment
from assignsvc.store.claims import (
    ClaimCodec,
    ClaimTransport,
    PhaseCounts,
    lookup_claim,
    sum_phase_counts,
    to_claim,
    to_claims,
    total_counts,
)
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import Claim, ClaimRequest
from assignsvc.store.redis_errors import bounded, store_errors
from assignsvc.store.transports import RedisPyTransport


class ClaimingStore:
    """claim() and claim_many() of an AssignmentStore, over one ClaimTransport."""

    def __init__(self, transport: ClaimTransport) -> None:
        self.transport = transport
        self._keys = transport.codec.keys

    async def claim(
        self,
        experiment: Experiment,
        participant_id: str,
        proposed_arm: int | None,
        now_ms: int,
        timeout_s: float | None = None,
    ) -> Claim:
        """See AssignmentStore.claim: the one place a lone claim's deadline is kept
        (PipelinedAssignmentStore keeps its waiters' own, with a timer)."""
        sent = self.transport.run([(experiment, participant_id, proposed_arm, now_ms)])
        reply = await (sent if timeout_s is None else bounded(sent, timeout_s, "claim"))
        return to_claim(experiment, reply, now_ms, proposed_arm)

    async def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """See AssignmentStore.claim_many: one round trip of the transport."""
        return to_claims(requests, await self.transport.run(requests))

    def _counter_keys(self, experiment: Experiment, bucket_version: int) -> list[str]:
        return [
            self._keys.arm_counts(experiment.id, shard, bucket_version) for shard in range(experiment.storage_shards)
        ]


class RedisAssignmentStore(ClaimingStore):
    """AssignmentStore on a standalone Redis (cluster-ready key layout): claims on
    `transport` (redis-py unless given), reads on redis-py."""

    def __init__(self, redis: Redis, keys: Keyspace, transport: ClaimTransport | None = None) -> None:
        super().__init__(transport if transport is not None else RedisPyTransport(redis, ClaimCodec(keys)))
        self._redis = redis

    async def lookup(self, experiment: Experiment, participant_id: str) -> Claim:
        """See AssignmentStore.lookup."""
        shard = storage_shard(participant_id, experiment.storage_shards)
        key = self._keys.assignments(experiment.id, shard, experiment.bucket_version)
        with store_errors("lookup"):
            row = await self._redis.hget(key, participant_id)
        return lookup_claim(experiment, row)  # type: ignore[arg-type]  # bytes: decode_responses is off

    async def arm_counts(self, experiment: Experiment, bucket_version: int) -> list[int]:
        """See AssignmentStore.arm_counts: phase_counts summed over the phases."""
        return total_counts(await self.phase_counts(experiment, bucket_version), len(experiment.arms))

    async def phase_counts(self, experiment: Experiment, bucket_version: int) -> PhaseCounts:
        """See AssignmentStore.phase_counts: one pipelined HGETALL per shard, no row scan."""
        with store_errors("read arm counts"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in self._counter_keys(experiment, bucket_version):
                    pipe.hgetall(key)
                shards = await pipe.execute()
        return sum_phase_counts(shards, len(experiment.arms))

    async def has_assignments(self, experiment: Experiment) -> bool:
        """See AssignmentStore.has_assignments: EXISTS over every counter key, per version."""
        with store_errors("check for assignments"):
            for version in range(experiment.bucket_version + 1):
                if await self._redis.exists(*self._counter_keys(experiment, version)):
                    return True
        return False
