"""GROWTHBOOK_V1/V2 agree with the growthbook package (the oracle) bit for bit.

100k random ids (ASCII, BMP and astral-plane characters) x 20 random configs against
the SDK's own gbhash/getBucketRanges/chooseVariation/inNamespace, and a slice of
each through the SDK's full GrowthBook.run(), so migrating users keep their arms.
"""

from __future__ import annotations

import random
from typing import Any

import growthbook.core as gbcore
import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from assignsvc.core.bucketing import BucketPlan, Outcome
from assignsvc.core.model import Arm, Experiment, HashAlgorithm, Namespace

IDS_PER_CONFIG = 100_000
RUN_IDS_PER_CONFIG = 3_000
CONFIGS = 20


def random_id(rng: random.Random) -> str:
    kind = rng.random()
    length = rng.randint(1, 20)
    if kind < 0.5:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(length))
    if kind < 0.75:
        return "".join(chr(rng.randint(0x80, 0xD7FF)) for _ in range(length))
    if kind < 0.9:
        return "".join(chr(rng.randint(0x10000, 0x10FFFF)) for _ in range(length))
    mixed = (chr(rng.choice([rng.randint(0x41, 0x7A), rng.randint(0x1F300, 0x1FAFF)])) for _ in range(length))
    return "user-" + "".join(mixed)


def random_config(rng: random.Random, index: int) -> tuple[Experiment, GBExperiment[Any]]:
    n = rng.randint(2, 5)
    raw = [rng.random() + 0.01 for _ in range(n)]
    weights = [w / sum(raw) for w in raw]
    coverage = rng.choice([1.0, rng.random(), round(rng.random(), 2)])
    namespace = None
    if rng.random() < 0.5:
        start = round(rng.uniform(0, 0.7), 3)
        namespace = Namespace(f"ns{rng.randint(0, 3)}", start, round(rng.uniform(start + 0.05, 1.0), 3))
    version = 1 if index % 2 == 0 else 2
    seed = rng.choice(["", f"seed-{index}", "ünïcödé-\U0001f600"])
    ours = Experiment(
        id=f"exp-{index}",
        name="x",
        arms=tuple(Arm(f"a{i}", f"a{i}", w) for i, w in enumerate(weights)),
        coverage=coverage,
        namespace=namespace,
        seed=seed,
        hash_algorithm=HashAlgorithm.GROWTHBOOK_V1 if version == 1 else HashAlgorithm.GROWTHBOOK_V2,
    )
    theirs = GBExperiment(
        key=ours.id,
        variations=list(range(n)),
        weights=weights,
        coverage=coverage,
        namespace=(namespace.id, namespace.start, namespace.end) if namespace else None,
        hashVersion=version,
        seed=seed or None,
    )
    return ours, theirs


def oracle(exp: GBExperiment[Any], participant_id: str) -> int:
    """The SDK's bucketing functions composed exactly as its run() composes them."""
    if exp.namespace and not gbcore.inNamespace(participant_id, exp.namespace):
        return -1
    n = gbcore.gbhash(exp.seed or exp.key, participant_id, exp.hashVersion)
    assert n is not None and exp.coverage is not None
    ranges = gbcore.getBucketRanges(len(exp.variations), exp.coverage, exp.weights)
    return gbcore.chooseVariation(n, ranges)


class TestGrowthBookParity:
    """Our GROWTHBOOK_V1/V2 decision equals the SDK's for every id and config."""

    @pytest.mark.slow
    @pytest.mark.parametrize("index", range(CONFIGS))
    def test_bucketing_functions_agree(self, index: int) -> None:
        rng = random.Random(1000 + index)
        ours, theirs = random_config(rng, index)
        plan = BucketPlan.compile(ours)
        mismatches = []
        included = 0
        for _ in range(IDS_PER_CONFIG):
            pid = random_id(rng)
            expected = oracle(theirs, pid)
            got = plan.decide(pid).arm_index
            included += got >= 0
            if got != expected:
                mismatches.append((pid, expected, got))
        assert mismatches == []
        assert included > 0 or ours.coverage < 0.05 or ours.namespace is not None

    @pytest.mark.parametrize("index", range(CONFIGS))
    def test_full_sdk_run_agrees(self, index: int) -> None:
        rng = random.Random(5000 + index)
        ours, theirs = random_config(rng, index)
        plan = BucketPlan.compile(ours)
        gb = GrowthBook(attributes={})
        for _ in range(RUN_IDS_PER_CONFIG):
            pid = random_id(rng)
            gb.set_attributes({"id": pid})
            result = gb.run(theirs)
            decision = plan.decide(pid)
            expected = result.variationId if result.inExperiment else -1
            assert decision.arm_index == expected, pid
            if decision.outcome is Outcome.EXCLUDED_BY_NAMESPACE:
                assert theirs.namespace is not None
                assert not gbcore.inNamespace(pid, theirs.namespace)
        gb.destroy()
