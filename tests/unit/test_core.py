"""Unit tests of the pure core: hashing, ranges, decisions, validation."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assignsvc.core.bucketing import BucketPlan, Outcome, bucket_ranges, choose_arm
from assignsvc.core.hashing import fnv1a32, gb_hash, murmur3_unit, storage_shard
from assignsvc.core.model import Arm, Experiment, ExperimentStatus, HashAlgorithm, Namespace
from assignsvc.core.validation import creation_violations, participant_id_violations

GOLDEN = Path(__file__).parent / "golden" / "murmur3_vectors.json"


def experiment(weights: tuple[float, ...] = (0.5, 0.5), **fields: object) -> Experiment:
    arms = tuple(Arm(f"a{i}", f"a{i}", w) for i, w in enumerate(weights))
    return Experiment(id=str(fields.pop("id", "exp")), name="exp", arms=arms, **fields)  # type: ignore[arg-type]


class TestMurmur3:
    """MURMUR3 is MurmurHash3 x86_32, seed 0, over UTF-8, divided by 2^32."""

    def test_reference_vectors_of_murmurhash3(self) -> None:
        # Published MurmurHash3_x86_32 outputs (seed 0), independent of our code.
        assert murmur3_unit("") == 0.0
        assert murmur3_unit("hello") == 0x248BFA47 / 2**32
        assert murmur3_unit("The quick brown fox jumps over the lazy dog") == 0x2E4FF723 / 2**32

    def test_golden_vectors_never_drift(self) -> None:
        doc = json.loads(GOLDEN.read_text())
        checked = 0
        for block in doc["configs"]:
            c = block["config"]
            ns = Namespace(*c["namespace"]) if c["namespace"] else None
            plan = BucketPlan.compile(
                experiment(tuple(c["weights"]), id=c["seed"], coverage=c["coverage"], namespace=ns)
            )
            for row in block["rows"]:
                pid = row["participant_id"]
                assert murmur3_unit(f"{c['seed']}:{pid}") == float.fromhex(row["point"])
                decision = plan.decide(pid)
                assert (decision.outcome.value, decision.arm_index) == (row["outcome"], row["arm_index"])
                checked += 1
        assert checked == 1000

    @given(st.text(max_size=64))
    def test_unit_interval(self, text: str) -> None:
        assert 0.0 <= murmur3_unit(text) < 1.0

    @given(st.text(max_size=32), st.text(min_size=1, max_size=32))
    def test_compiled_plan_hashes_exactly_like_murmur3_unit(self, seed: str, participant_id: str) -> None:
        plan = BucketPlan.compile(experiment(seed=seed, namespace=Namespace("ns", 0.0, 1.0)))
        assert plan.point(participant_id) == murmur3_unit(f"{seed or 'exp'}:{participant_id}")
        assert plan.namespace_point is not None
        assert plan.namespace_point(participant_id) == murmur3_unit(f"__ns:{participant_id}")


class TestGrowthBookHash:
    """fnv1a32 over UTF-16 code units and GrowthBook's v1/v2 formulas."""

    def test_fnv_reference_values(self) -> None:
        assert fnv1a32("") == 0x811C9DC5
        assert fnv1a32("a") == 0xE40C292C
        assert fnv1a32("foobar") == 0xBF9CF968

    def test_astral_characters_hash_as_surrogate_pairs(self) -> None:
        # U+1F600 is the UTF-16 pair D83D DE00: hashed as two code units.
        h = 0x811C9DC5
        for unit in (0xD83D, 0xDE00):
            h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
        assert fnv1a32("\U0001f600") == h

    def test_versions(self) -> None:
        assert gb_hash("seed", "id", 1) == (fnv1a32("idseed") % 1000) / 1000
        assert gb_hash("seed", "id", 2) == (fnv1a32(str(fnv1a32("seedid"))) % 10000) / 10000
        with pytest.raises(ValueError, match="hash version"):
            gb_hash("s", "v", 3)


class TestRanges:
    """getBucketRanges and chooseVariation, including coverage growth."""

    def test_ranges_scale_from_each_start(self) -> None:
        assert bucket_ranges([0.5, 0.5], 0.5) == ((0.0, 0.25), (0.5, 0.75))

    def test_choose_edges(self) -> None:
        ranges = bucket_ranges([0.5, 0.5], 1.0)
        assert choose_arm(0.0, ranges) == 0
        assert choose_arm(0.5, ranges) == 1
        assert choose_arm(math.nextafter(0.5, 0), ranges) == 0
        assert choose_arm(0.3, bucket_ranges([0.5, 0.5], 0.5)) == -1

    def test_zero_weight_arm_gets_nobody(self) -> None:
        ranges = bucket_ranges([0.0, 1.0], 1.0)
        assert choose_arm(0.0, ranges) == 1

    @given(
        st.lists(st.integers(1, 20), min_size=2, max_size=6),
        st.floats(0.0, 1.0),
        st.floats(0.0, 1.0),
        st.floats(0.0, 1.0, exclude_max=True),
    )
    def test_raising_coverage_keeps_everyone_in_their_arm(
        self, parts: list[int], low: float, high: float, x: float
    ) -> None:
        weights = [p / sum(parts) for p in parts]
        low, high = min(low, high), max(low, high)
        before = choose_arm(x, bucket_ranges(weights, low))
        after = choose_arm(x, bucket_ranges(weights, high))
        assert before in (-1, after)


class TestDecision:
    """BucketPlan.decide: namespace first, then coverage, then the arm."""

    def test_namespace_exclusion_is_reported(self) -> None:
        plan = BucketPlan.compile(experiment(namespace=Namespace("ns", 0.0, 0.5)))
        outcomes = {plan.decide(f"user-{i}").outcome for i in range(200)}
        assert outcomes == {Outcome.IN_ARM, Outcome.EXCLUDED_BY_NAMESPACE}

    def test_disjoint_namespace_ranges_never_share_a_participant(self) -> None:
        left = BucketPlan.compile(experiment(id="l", namespace=Namespace("ns", 0.0, 0.5)))
        right = BucketPlan.compile(experiment(id="r", namespace=Namespace("ns", 0.5, 1.0)))
        for i in range(2000):
            pid = f"user-{i}"
            in_left = left.decide(pid).outcome is Outcome.IN_ARM
            in_right = right.decide(pid).outcome is Outcome.IN_ARM
            assert in_left != in_right

    def test_coverage_zero_excludes_everyone(self) -> None:
        plan = BucketPlan.compile(experiment(coverage=0.0))
        assert {plan.decide(str(i)).outcome for i in range(100)} == {Outcome.EXCLUDED_BY_COVERAGE}

    def test_weights_are_respected(self) -> None:
        plan = BucketPlan.compile(experiment((0.9, 0.1)))
        n = 20000
        share = sum(plan.decide(f"p{i}").arm_index == 0 for i in range(n)) / n
        assert abs(share - 0.9) < 0.01

    def test_seed_defaults_to_id_and_changes_arms(self) -> None:
        a = BucketPlan.compile(experiment(id="x"))
        b = BucketPlan.compile(experiment(id="x", seed="x"))
        c = BucketPlan.compile(experiment(id="x", seed="other"))
        ids = [f"p{i}" for i in range(500)]
        assert [a.decide(p) for p in ids] == [b.decide(p) for p in ids]
        assert [a.decide(p) for p in ids] != [c.decide(p) for p in ids]

    def test_algorithms_differ(self) -> None:
        ids = [f"p{i}" for i in range(500)]
        answers = {
            algo: tuple(BucketPlan.compile(experiment(hash_algorithm=algo)).decide(p).arm_index for p in ids)
            for algo in HashAlgorithm
        }
        assert len(set(answers.values())) == 3


class TestValidation:
    """Every rule reports its field; weights are never equalized silently."""

    def fields(self, exp: Experiment) -> list[str]:
        return [v.field for v in creation_violations(exp, "experiment.")]

    def test_valid(self) -> None:
        assert self.fields(experiment((1 / 3, 1 / 3, 1 / 3))) == []

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"id": ""}, "experiment.id"),
            ({"id": "has space"}, "experiment.id"),
            ({"id": "{tag}"}, "experiment.id"),
            ({"coverage": 1.5}, "experiment.coverage"),
            ({"coverage": float("nan")}, "experiment.coverage"),
            ({"namespace": Namespace("ns", 0.5, 0.5)}, "experiment.namespace.range_end"),
            ({"namespace": Namespace("ns", -0.1, 0.5)}, "experiment.namespace.range_start"),
            ({"namespace": Namespace("", 0.0, 0.5)}, "experiment.namespace.id"),
            ({"min_bucket_version": 2}, "experiment.min_bucket_version"),
            ({"start_time_ms": 10, "end_time_ms": 5}, "experiment.end_time"),
            ({"status": ExperimentStatus.PAUSED}, "experiment.status"),
        ],
    )
    def test_field_rules(self, change: dict[str, object], field: str) -> None:
        assert field in self.fields(dataclasses.replace(experiment(), **change))  # type: ignore[arg-type]

    def test_weights_must_sum_to_one(self) -> None:
        assert self.fields(experiment((0.5, 0.6))) == ["experiment.arms"]
        assert self.fields(experiment((0.5, 0.5 + 2e-6))) == ["experiment.arms"]
        assert self.fields(experiment((0.5, 0.5 + 5e-7))) == []

    def test_negative_weight_and_duplicate_arm(self) -> None:
        exp = Experiment(id="e", name="e", arms=(Arm("a", "a", -0.5), Arm("a", "a", 1.5)))
        assert self.fields(exp) == ["experiment.arms[0].weight", "experiment.arms[1].id"]

    def test_arm_count(self) -> None:
        assert self.fields(experiment((1.0,))) == ["experiment.arms"]

    def test_participant_ids(self) -> None:
        assert participant_id_violations("", "p")[0].description == "is required"
        assert participant_id_violations("x" * 256, "p") == []
        assert participant_id_violations("é" * 129, "p")  # 258 bytes


class TestStorageShard:
    """Shards spread participants evenly and independently of arms."""

    def test_even_spread(self) -> None:
        counts = [0] * 16
        for i in range(16000):
            counts[storage_shard(f"user-{i}", 16)] += 1
        assert min(counts) > 800 and max(counts) < 1200
