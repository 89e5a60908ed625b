"""From a participant id to an arm: GrowthBook's range algorithm, any hash.

`BucketPlan` is compiled once per experiment version so that the hot path does
one or two hashes and a short scan, with no allocation beyond the hash input.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mmh3 import hash as _mmh3_hash

from assignsvc.core.hashing import gb_hash
from assignsvc.core.model import Experiment, HashAlgorithm

Range = tuple[float, float]
_TWO_POW_32 = 4294967296.0


class Outcome(enum.Enum):
    """What the hash alone says about a participant."""

    IN_ARM = "in_arm"
    EXCLUDED_BY_COVERAGE = "excluded_by_coverage"
    EXCLUDED_BY_NAMESPACE = "excluded_by_namespace"


# What BucketPlan.arm_of answers for a participant in no arm.
EXCLUDED_BY_COVERAGE = -1
EXCLUDED_BY_NAMESPACE = -2
_OUTCOME_OF = {EXCLUDED_BY_COVERAGE: Outcome.EXCLUDED_BY_COVERAGE, EXCLUDED_BY_NAMESPACE: Outcome.EXCLUDED_BY_NAMESPACE}


class Decision(NamedTuple):
    """The hash's verdict: an arm index when outcome is IN_ARM, else -1.

    A NamedTuple, not a frozen dataclass: it is built once per Assign, and a frozen
    dataclass's __init__ costs several times more.
    """

    outcome: Outcome
    arm_index: int


def bucket_ranges(weights: Sequence[float], coverage: float) -> tuple[Range, ...]:
    """GrowthBook's getBucketRanges: [start, start + coverage * w) per arm, float64.

    The arithmetic order is part of the contract (it decides edge cases bit for bit).
    """
    coverage = min(max(coverage, 0.0), 1.0)
    cumulative = 0.0
    ranges = []
    for w in weights:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return tuple(ranges)


def choose_arm(x: float, ranges: Sequence[Range]) -> int:
    """GrowthBook's chooseVariation: the first range holding x, else -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= x < end:
            return i
    return -1


def _murmur_point(seed: str) -> Callable[[str], float]:
    # Inlines core.hashing.murmur3_unit (one call less per hash on the hot path);
    # the golden vectors pin that both give the same bits.
    prefix = seed + ":"
    return lambda participant_id: _mmh3_hash(prefix + participant_id, 0, False) / _TWO_POW_32


def _growthbook_point(seed: str, version: int) -> Callable[[str], float]:
    return lambda participant_id: gb_hash(seed, participant_id, version)


def _murmur_namespace(namespace_id: str) -> Callable[[str], float]:
    prefix = "__" + namespace_id + ":"
    return lambda participant_id: _mmh3_hash(prefix + participant_id, 0, False) / _TWO_POW_32


def _growthbook_namespace(namespace_id: str) -> Callable[[str], float]:
    seed = "__" + namespace_id
    return lambda participant_id: gb_hash(seed, participant_id, 1)


@dataclass(frozen=True, slots=True)
class BucketPlan:
    """An experiment compiled for bucketing: hash functions bound, ranges computed."""

    point: Callable[[str], float]
    ranges: tuple[Range, ...]
    namespace_point: Callable[[str], float] | None
    namespace_range: Range

    @classmethod
    def compile(cls, experiment: Experiment) -> BucketPlan:
        """Bind the experiment's seed, algorithm, weights, coverage and namespace."""
        seed = experiment.effective_seed
        algorithm = experiment.hash_algorithm
        if algorithm is HashAlgorithm.MURMUR3:
            point = _murmur_point(seed)
            namespace_factory = _murmur_namespace
        elif algorithm is HashAlgorithm.GROWTHBOOK_V1:
            point = _growthbook_point(seed, 1)
            namespace_factory = _growthbook_namespace
        elif algorithm is HashAlgorithm.GROWTHBOOK_V2:
            point = _growthbook_point(seed, 2)
            namespace_factory = _growthbook_namespace
        else:  # pragma: no cover - exhaustive over the enum
            raise ValueError(f"unsupported hash algorithm {algorithm}")
        ns = experiment.namespace
        return cls(
            point=point,
            ranges=bucket_ranges([arm.weight for arm in experiment.arms], experiment.coverage),
            namespace_point=namespace_factory(ns.id) if ns is not None else None,
            namespace_range=(ns.start, ns.end) if ns is not None else (0.0, 1.0),
        )

    def arm_of(self, participant_id: str) -> int:
        """The arm index, or EXCLUDED_BY_NAMESPACE / EXCLUDED_BY_COVERAGE (negative): decide()
        with no object built, for the hot path. Namespace first, then the arm ranges,
        exactly in GrowthBook's order."""
        if self.namespace_point is not None:
            start, end = self.namespace_range
            if not start <= self.namespace_point(participant_id) < end:
                return EXCLUDED_BY_NAMESPACE
        x = self.point(participant_id)
        for index, (start, end) in enumerate(self.ranges):  # choose_arm, inlined
            if start <= x < end:
                return index
        return EXCLUDED_BY_COVERAGE

    def decide(self, participant_id: str) -> Decision:
        """arm_of as a Decision."""
        index = self.arm_of(participant_id)
        if index >= 0:
            return Decision(Outcome.IN_ARM, index)
        return Decision(_OUTCOME_OF[index], -1)
