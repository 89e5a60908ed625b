"""AssignmentRowStore contract: bulk reads see exactly the rows claims stored, shard by
shard; preassigned writes are write-once beside claims and counted per arm and stratum."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Arm, Experiment
from assignsvc.store.claims import ARM_SLOTS
from assignsvc.store.protocols import ClaimKind
from tests.store.contracts.harness import DEPLOYMENTS, Deployment, Stores, run

KINDS = DEPLOYMENTS
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), storage_shards=4)


def by_shard(ids: list[str]) -> dict[int, list[str]]:
    shards: dict[int, list[str]] = defaultdict(list)
    for participant in ids:
        shards[storage_shard(participant, EXPERIMENT.storage_shards)].append(participant)
    return dict(shards)


def test_shard_reads_return_every_claimed_row(deployment: Deployment) -> None:
    v1 = dataclasses.replace(EXPERIMENT, bucket_version=1)

    async def body(stores: Stores) -> list[Any]:
        for i in range(40):
            await stores.assignments.claim(EXPERIMENT, f"p{i}", i % 2, 1_000 + i)
        await stores.assignments.claim(v1, "later", 1, 5)
        shards = await stores.rows.read_shards(EXPERIMENT, 0, range(4), False)
        other = await stores.rows.read_shards(EXPERIMENT, 1, [0, 1, 2, 3], True)
        stored = await stores.rows.stored_rows(EXPERIMENT, by_shard(["p3", "p4", "nobody"]))
        return [shards, other, stored]

    shards, other, stored = run(deployment, body)
    assert [s.shard for s in shards] == [0, 1, 2, 3]
    rows = {}
    for s in shards:
        pairs = dict(zip(s.rows[::2], s.rows[1::2], strict=True))
        assert all(storage_shard(p.decode(), 4) == s.shard for p in pairs) and s.strata == {}
        rows.update(pairs)
    assert rows == {f"p{i}".encode(): str((1_000 + i) * ARM_SLOTS + i % 2).encode() for i in range(40)}
    assert [r for s in other for r in s.rows] == [b"later", str(5 * ARM_SLOTS + 1).encode()]
    assert stored == {"p3": (1_003, 1), "p4": (1_004, 0)}


def test_preassigned_rows_are_written_once_and_counted(deployment: Deployment) -> None:
    async def body(stores: Stores) -> list[Any]:
        rows = stores.rows
        await stores.assignments.claim(EXPERIMENT, "claimed", 1, 1)
        await rows.define_strata(EXPERIMENT, {"s1": '{"country":"DE"}', "s2": '{"country":"FR"}'})
        groups: dict[int, dict[tuple[int, str], list[str]]] = defaultdict(dict)
        for (arm, stratum), ids in {
            (0, "s1"): ["u1", "u2", "u3"],
            (1, "s1"): ["u4"],
            (0, "s2"): ["u5", "claimed"],
            (1, ""): ["u6"],
        }.items():
            for shard, part in by_shard(ids).items():
                groups[shard][(arm, stratum)] = part
        first = await rows.write_preassigned(EXPERIMENT, groups, 500)
        again = await rows.write_preassigned(EXPERIMENT, {storage_shard("u1", 4): {(1, "s2"): ["u1"]}}, 600)
        claim = await stores.assignments.claim(EXPERIMENT, "u4", 0, 700)
        shards = await rows.read_shards(EXPERIMENT, 0, range(4), True)
        return [
            first,
            again,
            claim,
            await rows.stratum_counts(EXPERIMENT, 0),
            await rows.stratum_totals(EXPERIMENT, 0),
            await rows.strata(EXPERIMENT),
            await stores.assignments.arm_counts(EXPERIMENT, 0),
            {p: s for shard in shards for p, s in shard.strata.items()},
            await rows.stratum_totals(EXPERIMENT, 1),
        ]

    first, again, claim, counts, totals, strata, arm_counts, of, none = run(deployment, body)
    assert first == {"claimed": (1, 1)} and again == {"u1": (500, 0)}
    assert (claim.kind, claim.arm_index, claim.first_seen_ms) == (ClaimKind.EXISTING, 1, 500)
    assert counts == {"s1": [3, 1], "s2": [1, 0], "": [0, 1]}
    assert [(t.stratum, t.counts) for t in totals] == [
        ("", [0, 1]),
        ('{"country":"DE"}', [3, 1]),
        ('{"country":"FR"}', [1, 0]),
    ]
    assert strata == {"s1": '{"country":"DE"}', "s2": '{"country":"FR"}'}
    assert arm_counts == [4, 3]  # the claim and six preassigned rows
    assert of == {b"u1": b"s1", b"u2": b"s1", b"u3": b"s1", b"u4": b"s1", b"u5": b"s2"}
    assert none == []


def test_the_export_token_key_is_made_once(deployment: Deployment) -> None:
    async def body(stores: Stores) -> list[bytes]:
        return [await stores.rows.export_token_key(), await stores.rows.export_token_key()]

    first, second = run(deployment, body)
    assert first == second and len(first) == 64


def test_preassigned_rows_count_in_the_current_phase(deployment: Deployment) -> None:
    later = dataclasses.replace(EXPERIMENT, phase=1, phase_start_ms=5)

    async def body(stores: Stores) -> list[Any]:
        rows = stores.rows
        await rows.define_strata(EXPERIMENT, {"s1": '{"country":"DE"}'})
        await rows.write_preassigned(EXPERIMENT, {storage_shard("u1", 4): {(0, "s1"): ["u1"]}}, 1)
        groups: dict[int, dict[tuple[int, str], list[str]]] = defaultdict(dict)
        for shard, part in by_shard(["u2", "u3"]).items():
            groups[shard][(1, "s1")] = part
        await rows.write_preassigned(later, groups, 9)
        shards = await rows.read_shards(later, 0, range(4), False)
        return [
            await stores.assignments.phase_counts(later, 0),
            await rows.stratum_counts(later, 0),
            sorted(int(r) % ARM_SLOTS for s in shards for r in s.rows[1::2]),
        ]

    phases, strata, arms = run(deployment, body)
    assert phases == {0: [1, 0], 1: [0, 2]}
    assert strata == {"s1": [1, 2]}  # a stratum's counts span every phase
    assert arms == [0, 1, 1]  # the rows hold arm indexes, whatever the phase
