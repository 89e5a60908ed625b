"""AssignmentStore contract: the first stored arm wins, atomically, and is returned forever;
blocked versions block; counters are exact. Run against every implementation."""

from __future__ import annotations

import asyncio
import dataclasses
import random

from assignsvc.core.model import Arm, Experiment
from assignsvc.store.protocols import Claim, ClaimKind
from tests.store.contracts.harness import Deployment, Stores, run

EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))


def test_first_claim_creates_then_sticks(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> list[Claim]:
        store = stores.assignments
        first = await store.claim(EXPERIMENT, "alice", 1, 1_000)
        second = await store.claim(EXPERIMENT, "alice", 0, 2_000)
        looked = await store.lookup(EXPERIMENT, "alice")
        absent = await store.claim(EXPERIMENT, "bob", None, 3_000)
        return [first, second, looked, absent, await store.lookup(EXPERIMENT, "bob")]

    first, second, looked, absent, bob = run(deployment, scenario)
    assert (first.kind, first.arm_index, first.first_seen_ms) == (ClaimKind.CREATED, 1, 1_000)
    assert (second.kind, second.arm_index, second.first_seen_ms) == (ClaimKind.EXISTING, 1, 1_000)
    assert looked == second
    assert absent.kind is ClaimKind.ABSENT and bob.kind is ClaimKind.ABSENT


def test_concurrent_conflicting_claims_agree(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> tuple[list[Claim], list[int]]:
        store = stores.assignments
        claims = await asyncio.gather(*(store.claim(EXPERIMENT, "carol", i % 2, 10 + i) for i in range(64)))
        return list(claims), await store.arm_counts(EXPERIMENT, 0)

    claims, counts = run(deployment, scenario)
    assert len({c.arm_index for c in claims}) == 1
    assert [c.kind for c in claims].count(ClaimKind.CREATED) == 1
    assert sum(counts) == 1 and counts[claims[0].arm_index] == 1


def test_concurrent_claims_of_many_participants_have_one_winner_each(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> tuple[list[Claim], list[Claim]]:
        store = stores.assignments
        first = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i % 150}", i % 2, 7) for i in range(300)))
        again = await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", None, 8) for i in range(150)))
        return list(first), list(again)

    first, again = run(deployment, scenario)
    created = [c for c in first if c.kind is ClaimKind.CREATED]
    assert len(created) == 150  # exactly one winner per participant
    for i in range(150):  # later claims of the same participant see the winner's arm
        assert again[i].kind is ClaimKind.EXISTING
        assert again[i].arm_index == first[i].arm_index == first[i + 150].arm_index


def test_versions_are_separate_and_min_version_blocks(deployment: Deployment) -> None:
    v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)
    v1_min = dataclasses.replace(EXPERIMENT, bucket_version=2, min_bucket_version=1)

    async def scenario(stores: Stores) -> list[Claim]:
        store = stores.assignments
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

    fresh, blocked, new_user, lookup, both = run(deployment, scenario)
    assert both.kind is ClaimKind.BLOCKED
    assert (fresh.kind, fresh.arm_index, fresh.bucket_version) == (ClaimKind.CREATED, 1, 1)
    assert (blocked.kind, blocked.arm_index, blocked.first_seen_ms) == (ClaimKind.BLOCKED, 0, 1)
    assert blocked.bucket_version == 0  # only v0 is below 1
    assert new_user.kind is ClaimKind.CREATED
    assert lookup.kind is ClaimKind.ABSENT  # nothing was written for the blocked one


def test_the_newest_blocked_version_is_reported(deployment: Deployment) -> None:
    v3_min3 = dataclasses.replace(EXPERIMENT, bucket_version=3, min_bucket_version=3)

    async def scenario(stores: Stores) -> Claim:
        store = stores.assignments
        await store.claim(EXPERIMENT, "gus", 0, 1)
        await store.claim(dataclasses.replace(EXPERIMENT, bucket_version=1), "gus", 1, 2)
        return await store.claim(v3_min3, "gus", 0, 3)

    blocked = run(deployment, scenario)
    assert (blocked.kind, blocked.arm_index, blocked.first_seen_ms, blocked.bucket_version) == (
        ClaimKind.BLOCKED,
        1,
        2,
        1,
    )


def test_counters_are_exact_per_arm_and_version(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> list[object]:
        store = stores.assignments
        before = await store.has_assignments(EXPERIMENT)
        await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", i % 2, 1) for i in range(300)))
        await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", 0, 1) for i in range(300)))  # repeats
        v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)
        other = dataclasses.replace(EXPERIMENT, id="other")
        return [
            before,
            await store.has_assignments(EXPERIMENT),
            await store.has_assignments(v1),
            await store.arm_counts(EXPERIMENT, 0),
            await store.arm_counts(v1, 1),
            await store.has_assignments(other),
        ]

    before, after, later_version, counts, counts_v1, other = run(deployment, scenario)
    assert before is False and after is True and later_version is True
    assert counts == [150, 150] and counts_v1 == [0, 0]
    assert other is False


def test_claim_many_answers_and_stores_as_claims_one_by_one(deployment: Deployment) -> None:
    """The same requests, in one batch and one at a time (on separate experiments), agree
    claim by claim, blocked versions and repeats inside one batch included."""
    rng = random.Random(7)
    versions = [(v, m) for v, m in ((0, 0), (1, 0), (2, 1), (3, 3))]
    requests = [
        (rng.choice(versions), f"p{rng.randrange(40)}", rng.choice([None, 0, 1]), 1_000 + i) for i in range(300)
    ]

    def of(experiment_id: str, version: tuple[int, int]) -> Experiment:
        return dataclasses.replace(
            EXPERIMENT, id=experiment_id, bucket_version=version[0], min_bucket_version=version[1], storage_shards=5
        )

    async def scenario(stores: Stores) -> tuple[list[Claim], list[Claim], list[list[int]]]:
        store = stores.assignments
        singles = [await store.claim(of("one", v), p, arm, now) for v, p, arm, now in requests]
        many = await store.claim_many([(of("many", v), p, arm, now) for v, p, arm, now in requests])
        counts = [await store.arm_counts(of(i, (0, 0)), v) for i in ("one", "many") for v in range(4)]
        return singles, many, counts

    singles, many, counts = run(deployment, scenario)
    assert many == singles
    assert {c.kind for c in singles} == set(ClaimKind)
    assert counts[:4] == counts[4:] and sum(map(sum, counts)) > 0


def test_each_claim_counts_in_its_phase(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> tuple[dict[int, list[int]], list[int], list[Claim]]:
        store = stores.assignments
        later = dataclasses.replace(EXPERIMENT, phase=2, phase_start_ms=50)
        await asyncio.gather(*(store.claim(EXPERIMENT, f"p{i}", i % 2, 10) for i in range(30)))
        again = await asyncio.gather(*(store.claim(later, f"p{i}", 1, 60) for i in range(20, 50)))
        await store.claim_many([(later, f"m{i}", 0, 60) for i in range(5)])
        return await store.phase_counts(later, 0), await store.arm_counts(later, 0), list(again)

    phases, totals, again = run(deployment, scenario)
    assert phases == {0: [15, 15], 2: [5, 20]}  # phase 1 saw no claim; each phase counts its own
    assert totals == [20, 35] == [phases[0][i] + phases[2][i] for i in range(2)]
    assert [c.kind for c in again].count(ClaimKind.CREATED) == 20  # p20..p29 keep their phase 0 rows
