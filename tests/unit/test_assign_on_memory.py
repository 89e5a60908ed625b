"""Assigner and ExperimentRegistry on the in-memory stores: stickiness, blocked bucket
versions and the Redis failure policy, with no network (the stores' contracts:
tests/store/contracts)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from assignsvc.app.assign import Assigner
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.model import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    RedisFailurePolicy,
)
from assignsvc.errors import NotFoundError, StoreUnavailableError
from assignsvc.store.memory import MemoryStores
from assignsvc.store.protocols import MUST_BE_NEW, ClaimKind

EXPERIMENT = Experiment(
    id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.RUNNING, revision=1
)


class Clock:
    """A clock the test moves."""

    def __init__(self, now_ms: int = 1_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


async def assigner_for(stores: MemoryStores, *experiments: Experiment, clock: Clock | None = None) -> Assigner:
    """An Assigner whose registry loaded `experiments` from the store."""
    for experiment in experiments:
        assert await stores.experiments.write([(experiment, MUST_BE_NEW)]) is None
    registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
    await registry.refresh()
    return Assigner(registry, stores.assignments, clock or Clock())


class TestSticky:
    def test_the_first_arm_is_stored_and_answered_forever(self) -> None:
        async def main() -> None:
            stores, clock = MemoryStores.create(), Clock()
            assigner = await assigner_for(stores, EXPERIMENT, clock=clock)
            first = await assigner.assign("exp", "alice")
            clock.now_ms = 9_000
            again = await assigner.assign("exp", "alice")
            assert first.reason is AssignmentReason.NEW_ASSIGNMENT and first.persisted
            assert again.reason is AssignmentReason.STICKY
            assert (again.arm_index, again.first_seen_ms) == (first.arm_index, 1_000)
            claim = await stores.assignments.lookup(EXPERIMENT, "alice")
            assert (claim.kind, claim.arm_index) == (ClaimKind.EXISTING, first.arm_index)
            got = await assigner.get_assignment("exp", "alice")
            assert got.arm_index == first.arm_index
            with pytest.raises(NotFoundError):
                await assigner.get_assignment("exp", "nobody")

        asyncio.run(main())

    def test_a_stored_arm_wins_over_the_hash(self) -> None:
        """Whatever the hash says now, the stored arm is answered (a reweighting moves nobody)."""

        async def main() -> None:
            hashed = await (await assigner_for(MemoryStores.create(), EXPERIMENT)).assign("exp", "bob")
            other = 1 - hashed.arm_index
            stores = MemoryStores.create()
            assigner = await assigner_for(stores, EXPERIMENT)
            await stores.assignments.claim(EXPERIMENT, "bob", other, 5)
            answer = await assigner.assign("exp", "bob")
            assert (answer.reason, answer.arm_index, answer.first_seen_ms) == (AssignmentReason.STICKY, other, 5)

        asyncio.run(main())

    def test_a_batch_claims_each_participant_once(self) -> None:
        async def main() -> None:
            stores = MemoryStores.create()
            assigner = await assigner_for(stores, EXPERIMENT)
            items = [("exp", f"p{i % 10}", None) for i in range(30)] + [("missing", "p0", None)]
            answers = await assigner.assign_many(items)
            assert isinstance(answers[-1], NotFoundError)
            arms = {
                item[1]: a.arm_index for item, a in zip(items, answers, strict=False) if not isinstance(a, Exception)
            }
            assert sum(await stores.assignments.arm_counts(EXPERIMENT, 0)) == 10 == len(arms)

        asyncio.run(main())


class TestBlockedVersions:
    def test_a_participant_of_a_blocked_version_gets_no_arm(self) -> None:
        async def main() -> None:
            stores = MemoryStores.create()
            await stores.assignments.claim(EXPERIMENT, "carol", 0, 1)  # stored at version 0
            v2 = dataclasses.replace(EXPERIMENT, bucket_version=1, min_bucket_version=1)
            assigner = await assigner_for(stores, v2)
            blocked = await assigner.assign("exp", "carol")
            fresh = await assigner.assign("exp", "dan")
            assert blocked.reason is AssignmentReason.BLOCKED_BY_MIN_BUCKET_VERSION and blocked.arm is None
            assert fresh.reason is AssignmentReason.NEW_ASSIGNMENT and fresh.bucket_version == 1
            assert (await stores.assignments.lookup(v2, "carol")).kind is ClaimKind.ABSENT

        asyncio.run(main())


class TestFailurePolicy:
    @pytest.mark.parametrize("policy", list(RedisFailurePolicy))
    def test_an_unavailable_store_is_answered_by_the_policy(self, policy: RedisFailurePolicy) -> None:
        async def main() -> None:
            experiment = dataclasses.replace(EXPERIMENT, redis_failure_policy=policy)
            hashed = await (await assigner_for(MemoryStores.create(), experiment)).assign("exp", "erin")
            stores = MemoryStores.create()
            assigner = await assigner_for(stores, experiment)
            stores.state.unavailable = True
            if policy is RedisFailurePolicy.FAIL_CLOSED:
                with pytest.raises(StoreUnavailableError, match="fails closed"):
                    await assigner.assign("exp", "erin")
                [refused] = await assigner.assign_many([("exp", "erin", None)])
                assert isinstance(refused, StoreUnavailableError)
            else:
                answer = await assigner.assign("exp", "erin")
                assert answer.reason is AssignmentReason.NEW_ASSIGNMENT and answer.arm_index == hashed.arm_index
                assert not answer.persisted
            stores.state.unavailable = False
            assert (await stores.assignments.lookup(experiment, "erin")).kind is ClaimKind.ABSENT  # nothing written

        asyncio.run(main())

    def test_a_preassigned_experiment_never_fails_open(self) -> None:
        async def main() -> None:
            stores = MemoryStores.create()
            experiment = dataclasses.replace(
                EXPERIMENT, type=ExperimentType.PREASSIGNED, redis_failure_policy=RedisFailurePolicy.FAIL_OPEN
            )
            assigner = await assigner_for(stores, experiment)
            stores.state.unavailable = True
            with pytest.raises(StoreUnavailableError, match="preassigned"):
                await assigner.assign("exp", "frank")

        asyncio.run(main())


class TestRegistryFeed:
    def test_a_write_elsewhere_reaches_the_registry_through_the_change_feed(self) -> None:
        async def main() -> None:
            stores = MemoryStores.create()
            registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
            await registry.start()
            try:
                await stores.experiments.write([(EXPERIMENT, MUST_BE_NEW)])
                for _ in range(100):  # the feed is pushed on this loop: a few turns at most
                    if registry.get("exp") is not None:
                        break
                    await asyncio.sleep(0)
                live = registry.get("exp")
                assert live is not None and live.experiment == EXPERIMENT
            finally:
                await registry.stop()

        asyncio.run(main())
