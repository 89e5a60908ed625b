"""In-memory stores: one implementation of every store Protocol, for use-case tests.

They keep the Redis stores' semantics wherever a use case depends on them (write-once
claims, blocked bucket versions, exact counters, compare-and-set writes, the change
feed and its revisions, the outbox's due times and leases), and the contract suites
in tests/store/contracts hold them to it beside the Redis implementations. As the
Redis stores of one deployment share one Redis, `MemoryStores` builds every store over
one shared state: an experiment write's events reach the outbox, a claim's row is
what an export reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.store import protocols
from assignsvc.store.memory.access import MemoryAccessStore
from assignsvc.store.memory.assignments import AssignmentTables, MemoryAssignmentRows, MemoryAssignmentStore
from assignsvc.store.memory.experiments import MemoryExperimentStore, MemorySavedGroupStore
from assignsvc.store.memory.shared import SharedState
from assignsvc.store.memory.webhooks import MemoryOutbox, MemoryWebhookStore, WebhookTables

__all__ = [
    "MemoryAccessStore",
    "MemoryAssignmentRows",
    "MemoryAssignmentStore",
    "MemoryExperimentStore",
    "MemoryOutbox",
    "MemorySavedGroupStore",
    "MemoryStores",
    "MemoryWebhookStore",
    "SharedState",
]


@dataclass(frozen=True, slots=True)
class MemoryStores:
    """Every in-memory store of one deployment, over one shared state (set
    `state.unavailable` to make every call fail as against an unreachable Redis)."""

    state: SharedState
    assignments: MemoryAssignmentStore
    rows: MemoryAssignmentRows
    experiments: MemoryExperimentStore
    groups: MemorySavedGroupStore
    webhooks: MemoryWebhookStore
    outbox: MemoryOutbox
    access: MemoryAccessStore

    @classmethod
    def create(cls, clock: Clock = wall_clock_ms) -> MemoryStores:
        """Fresh, empty stores; `clock` stands in for Redis' time (event ids, leases' idle times, turns)."""
        state = SharedState(clock)
        tables, hooks = AssignmentTables(), WebhookTables()
        return cls(
            state=state,
            assignments=MemoryAssignmentStore(tables, state),
            rows=MemoryAssignmentRows(tables, state),
            experiments=MemoryExperimentStore(state),
            groups=MemorySavedGroupStore(state),
            webhooks=MemoryWebhookStore(hooks, state),
            outbox=MemoryOutbox(hooks, state),
            access=MemoryAccessStore(state),
        )


def _conforms(stores: MemoryStores) -> None:
    """Never called: mypy checks here that each in-memory store is its Protocol."""
    checks: tuple[
        protocols.AssignmentStore,
        protocols.AssignmentRowStore,
        protocols.ExperimentStore,
        protocols.SavedGroupStore,
        protocols.WebhookStore,
        protocols.Outbox,
        protocols.AccessStore,
    ] = (
        stores.assignments,
        stores.rows,
        stores.experiments,
        stores.groups,
        stores.webhooks,
        stores.outbox,
        stores.access,
    )
    del checks
