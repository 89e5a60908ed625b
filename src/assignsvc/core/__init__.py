"""The pure core: experiment model, hashing and bucketing.

Nothing here does I/O or reads a clock, randomness or the environment: every input
is an argument, so a decision is a function of (experiment, participant) alone.
"""

from assignsvc.core.bucketing import BucketPlan, Decision, Outcome, bucket_ranges, choose_arm
from assignsvc.core.hashing import fnv1a32, gb_hash, murmur3_unit
from assignsvc.core.model import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    HashAlgorithm,
    Namespace,
)

__all__ = [
    "Arm",
    "AssignmentReason",
    "BucketPlan",
    "Decision",
    "Experiment",
    "ExperimentStatus",
    "ExperimentType",
    "HashAlgorithm",
    "Namespace",
    "Outcome",
    "bucket_ranges",
    "choose_arm",
    "fnv1a32",
    "gb_hash",
    "murmur3_unit",
]
