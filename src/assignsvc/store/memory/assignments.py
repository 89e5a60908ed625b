"""Assignment rows in memory: AssignmentStore (claims) and AssignmentRowStore (bulk) over one table.

Laid out as the Redis keys are (store.keys): rows, arm counters, participant strata and
stratum counters per (experiment, storage shard, bucket version), so that a shard read
returns exactly the rows Redis' hash of that shard would. Each call runs without an
await, so on one event loop it is one atomic step, as each Redis script is.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Experiment
from assignsvc.store.claims import ARM_SLOTS, PhaseCounts, counter_field, sum_phase_counts, total_counts
from assignsvc.store.memory.shared import SharedState
from assignsvc.store.protocols import Claim, ClaimKind, ClaimRequest
from assignsvc.store.rows import ShardRows, StratumCounts

# (experiment id, storage shard, bucket version): one Redis hash of each kind.
Slot = tuple[str, int, int]
Row = tuple[int, int]  # (first_seen_ms, arm index)


@dataclass(slots=True)
class AssignmentTables:
    """Every stored row and counter; shared by the claim store and the bulk store."""

    rows: dict[Slot, dict[str, Row]] = field(default_factory=dict)
    arm_counts: dict[Slot, dict[int, int]] = field(default_factory=dict)
    participant_strata: dict[Slot, dict[str, str]] = field(default_factory=dict)
    stratum_counts: dict[Slot, dict[str, int]] = field(default_factory=dict)
    strata: dict[str, dict[str, str]] = field(default_factory=dict)  # experiment id -> id -> key
    token_key: str = ""

    def count(self, slot: Slot, arm: int, by: int = 1) -> None:
        counters = self.arm_counts.setdefault(slot, {})
        counters[arm] = counters.get(arm, 0) + by


class MemoryAssignmentStore:
    """AssignmentStore in memory: the first stored arm wins, blocked versions are checked
    first, counters count what is stored (see RedisAssignmentStore's claim script)."""

    def __init__(self, tables: AssignmentTables, state: SharedState) -> None:
        self._tables = tables
        self._state = state

    async def claim(
        self,
        experiment: Experiment,
        participant_id: str,
        proposed_arm: int | None,
        now_ms: int,
        timeout_s: float | None = None,
    ) -> Claim:
        """See AssignmentStore.claim (never waits, so the timeout never applies)."""
        self._state.check("claim")
        return self._claim(experiment, participant_id, proposed_arm, now_ms)

    def _claim(self, experiment: Experiment, participant_id: str, proposed_arm: int | None, now_ms: int) -> Claim:
        shard = storage_shard(participant_id, experiment.storage_shards)
        rows = self._tables.rows
        for old in reversed(range(experiment.min_bucket_version)):  # newest first
            held = rows.get((experiment.id, shard, old), {}).get(participant_id)
            if held is not None:
                return Claim(ClaimKind.BLOCKED, held[1], held[0], old)
        slot = (experiment.id, shard, experiment.bucket_version)
        current = rows.get(slot, {}).get(participant_id)
        if current is not None:
            return Claim(ClaimKind.EXISTING, current[1], current[0], experiment.bucket_version)
        if proposed_arm is None:
            return Claim(ClaimKind.ABSENT, bucket_version=experiment.bucket_version)
        rows.setdefault(slot, {})[participant_id] = (now_ms, proposed_arm)
        self._tables.count(slot, counter_field(experiment.phase, proposed_arm))
        return Claim(ClaimKind.CREATED, proposed_arm, now_ms, experiment.bucket_version)

    async def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """See AssignmentStore.claim_many: each claim in order."""
        self._state.check("claim batch")
        return [self._claim(*request) for request in requests]

    async def lookup(self, experiment: Experiment, participant_id: str) -> Claim:
        """See AssignmentStore.lookup."""
        self._state.check("lookup")
        shard = storage_shard(participant_id, experiment.storage_shards)
        row = self._tables.rows.get((experiment.id, shard, experiment.bucket_version), {}).get(participant_id)
        if row is None:
            return Claim(ClaimKind.ABSENT, bucket_version=experiment.bucket_version)
        return Claim(ClaimKind.EXISTING, row[1], row[0], experiment.bucket_version)

    async def arm_counts(self, experiment: Experiment, bucket_version: int) -> list[int]:
        """See AssignmentStore.arm_counts."""
        return total_counts(await self.phase_counts(experiment, bucket_version), len(experiment.arms))

    async def phase_counts(self, experiment: Experiment, bucket_version: int) -> PhaseCounts:
        """See AssignmentStore.phase_counts (the counter fields as the claim script writes them)."""
        self._state.check("read arm counts")
        counters = self._tables.arm_counts
        shards = [
            counters.get((experiment.id, shard, bucket_version), {}) for shard in range(experiment.storage_shards)
        ]
        return sum_phase_counts(shards, len(experiment.arms))

    async def has_assignments(self, experiment: Experiment) -> bool:
        """See AssignmentStore.has_assignments (any counter, at any version up to the current)."""
        self._state.check("check for assignments")
        counters = self._tables.arm_counts
        return any(
            counters.get((experiment.id, shard, version))
            for version in range(experiment.bucket_version + 1)
            for shard in range(experiment.storage_shards)
        )


class MemoryAssignmentRows:
    """AssignmentRowStore in memory, over the claim store's tables (see AssignmentRows)."""

    def __init__(self, tables: AssignmentTables, state: SharedState) -> None:
        self._tables = tables
        self._state = state

    async def read_shards(
        self, experiment: Experiment, bucket_version: int, shards: Sequence[int], with_strata: bool
    ) -> list[ShardRows]:
        """See AssignmentRowStore.read_shards: rows as Redis' HGETALL gives them (bytes)."""
        self._state.check("read assignments")
        found = []
        for shard in shards:
            slot = (experiment.id, shard, bucket_version)
            flat: list[bytes] = []
            for participant, (first_seen, arm) in self._tables.rows.get(slot, {}).items():
                flat += [participant.encode(), str(first_seen * ARM_SLOTS + arm).encode()]
            strata = self._tables.participant_strata.get(slot, {}) if with_strata else {}
            found.append(ShardRows(shard, flat, {p.encode(): s.encode() for p, s in strata.items()}))
        return found

    async def stored_rows(
        self, experiment: Experiment, ids_by_shard: Mapping[int, Sequence[str]]
    ) -> dict[str, tuple[int, int]]:
        """See AssignmentRowStore.stored_rows."""
        self._state.check("read assignments")
        found = {}
        for shard, ids in ids_by_shard.items():
            rows = self._tables.rows.get((experiment.id, shard, experiment.bucket_version), {})
            found.update({participant: rows[participant] for participant in ids if participant in rows})
        return found

    async def write_preassigned(
        self, experiment: Experiment, groups: Mapping[int, Mapping[tuple[int, str], Sequence[str]]], now_ms: int
    ) -> dict[str, tuple[int, int]]:
        """See AssignmentRowStore.write_preassigned."""
        self._state.check("store preassigned participants")
        tables, conflicts = self._tables, {}
        for shard, shard_groups in groups.items():
            slot = (experiment.id, shard, experiment.bucket_version)
            rows = tables.rows.setdefault(slot, {})
            for (arm, stratum), participants in shard_groups.items():
                created = 0
                for participant in participants:
                    if participant in rows:
                        conflicts[participant] = rows[participant]
                        continue
                    rows[participant] = (now_ms, arm)
                    if stratum:
                        tables.participant_strata.setdefault(slot, {})[participant] = stratum
                    created += 1
                if created:
                    counted = counter_field(experiment.phase, arm)
                    tables.count(slot, counted, created)
                    counters = tables.stratum_counts.setdefault(slot, {})
                    name = f"{stratum}:{counted}"
                    counters[name] = counters.get(name, 0) + created
            if not rows:
                del tables.rows[slot]
        return conflicts

    async def stratum_counts(self, experiment: Experiment, bucket_version: int) -> dict[str, list[int]]:
        """See AssignmentRowStore.stratum_counts."""
        self._state.check("read stratum counters")
        totals: dict[str, list[int]] = {}
        for shard in range(experiment.storage_shards):
            for name, count in self._tables.stratum_counts.get((experiment.id, shard, bucket_version), {}).items():
                stratum, _, arm = name.rpartition(":")
                counts = totals.setdefault(stratum, [0] * len(experiment.arms))
                index = int(arm) % ARM_SLOTS  # counter_field: every phase counts in the stratum
                if index < len(counts):
                    counts[index] += count
        return totals

    async def strata(self, experiment: Experiment) -> dict[str, str]:
        """See AssignmentRowStore.strata."""
        self._state.check("read strata")
        return dict(self._tables.strata.get(experiment.id, {}))

    async def stratum_totals(self, experiment: Experiment, bucket_version: int) -> list[StratumCounts]:
        """See AssignmentRowStore.stratum_totals."""
        counts = await self.stratum_counts(experiment, bucket_version)
        if not counts:
            return []
        names = await self.strata(experiment)
        totals = [StratumCounts(names.get(sid, "") if sid else "", c) for sid, c in counts.items()]
        return sorted(totals, key=lambda t: t.stratum)

    async def define_strata(self, experiment: Experiment, strata: Mapping[str, str]) -> None:
        """See AssignmentRowStore.define_strata."""
        self._state.check("record strata")
        if strata:
            self._tables.strata.setdefault(experiment.id, {}).update(strata)

    async def export_token_key(self) -> bytes:
        """See AssignmentRowStore.export_token_key."""
        self._state.check("read the export token key")
        if not self._tables.token_key:
            self._tables.token_key = secrets.token_hex(32)
        return self._tables.token_key.encode()
