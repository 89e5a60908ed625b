"""Redis-backed stores: experiments (shared by replicas) and sticky assignments.

Each store is a small class behind a Protocol (store.protocols) so that the use
cases above never see Redis, and a contract test suite can run against each.
"""

from assignsvc.store.assignments import RedisAssignmentStore
from assignsvc.store.experiments import RedisExperimentStore
from assignsvc.store.protocols import AssignmentStore, Claim, ClaimKind, ExperimentStore

__all__ = [
    "AssignmentStore",
    "Claim",
    "ClaimKind",
    "ExperimentStore",
    "RedisAssignmentStore",
    "RedisExperimentStore",
]
