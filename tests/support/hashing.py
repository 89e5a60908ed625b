"""Participant ids chosen by the service's own hash, for samples a test needs skewed."""

from __future__ import annotations

import itertools

from assignsvc.core.bucketing import BucketPlan
from assignsvc.core.model import Arm, Experiment


def hashed_to(experiment_id: str, weights: tuple[float, ...], arm_index: int, count: int, prefix: str) -> list[str]:
    """`count` ids (`prefix` + a number) that an experiment with this id, these weights and
    the default seed and hash puts in one arm: a skewed sample, as a logging pipeline that
    drops the other arms' participants would report."""
    arms = tuple(Arm(f"a{i}", "", w) for i, w in enumerate(weights))
    plan = BucketPlan.compile(Experiment(id=experiment_id, name="", arms=arms))
    ids = (f"{prefix}{i}" for i in itertools.count())
    return list(itertools.islice((p for p in ids if plan.decide(p).arm_index == arm_index), count))
