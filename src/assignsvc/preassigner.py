"""The Preassign use case: randomize an uploaded list of participants, balanced within
strata, and store the arms with first-seen semantics (an assigned participant keeps
its arm: uploading the same list twice changes nothing).

The whole upload is validated before anything is written, so a bad row means nothing
from that upload is stored. Randomization (core.balance) sees each stratum's stored
counts, so a later upload of new participants keeps the stratum as balanced as
integers allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from assignsvc.assigner import Clock, wall_clock_ms
from assignsvc.core.balance import assign_balanced, counts_to_add, stratum_id, stratum_key, stratum_seed
from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Experiment, ExperimentStatus, ExperimentType
from assignsvc.core.validation import experiment_id_violations, participant_id_violations
from assignsvc.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError, NotFoundError
from assignsvc.registry import ExperimentRegistry
from assignsvc.store.rows import AssignmentRows, PreassignRow, StratumCounts

MAX_PARTICIPANTS = 10_000_000  # per upload: the whole list is held in memory to randomize it
MAX_STRATA_ATTRIBUTES = 8
MAX_STRATUM_NAME_CHARS = 64
MAX_STRATUM_VALUE_CHARS = 256
MAX_STRATA = 10_000  # distinct strata per upload
MAX_REPORTED_VIOLATIONS = 20
# Ids this short are valid without the full check (at most 4 UTF-8 bytes per character,
# so 64 characters stay within core.validation's 256 bytes).
FAST_ID_CHARS = 64

# What a caller sends: strata attributes (may be empty) and the participants in that stratum.
ParticipantGroup = tuple[Mapping[str, str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class PreassignSummary:
    """What an upload did, and every touched stratum's stored counts afterwards."""

    experiment: Experiment
    received: int
    created: int
    already_assigned: int
    strata: list[StratumCounts]


class Preassigner:
    """Balanced, stratified, reproducible randomization of uploaded participants."""

    def __init__(self, registry: ExperimentRegistry, rows: AssignmentRows, clock: Clock = wall_clock_ms) -> None:
        self._registry = registry
        self._rows = rows
        self._clock = clock

    def experiment(self, experiment_id: str) -> Experiment:
        """The experiment to preassign, checked: it exists, is PREASSIGNED and not stopped."""
        violations = experiment_id_violations(experiment_id, "experiment_id")
        if violations:
            raise InvalidArgumentError(violations)
        live = self._registry.get(experiment_id)
        if live is None:
            raise NotFoundError("experiment", experiment_id)
        experiment = live.experiment
        if experiment.type is not ExperimentType.PREASSIGNED:
            raise FailedPreconditionError(
                "NOT_A_PREASSIGNED_EXPERIMENT",
                f"experiment {experiment_id!r} is {experiment.type.value}: only preassigned experiments take "
                "uploaded participants (online ones assign on first Assign)",
            )
        if experiment.status is ExperimentStatus.STOPPED:
            raise FailedPreconditionError(
                "EXPERIMENT_STOPPED", f"experiment {experiment_id!r} is stopped: it takes no new participants"
            )
        return experiment

    async def preassign(
        self, experiment_id: str, batches: AsyncIterator[Sequence[ParticipantGroup]]
    ) -> PreassignSummary:
        """Read the whole upload, validate it, randomize the participants without an arm,
        store them; nothing is written if any row is invalid."""
        experiment = self.experiment(experiment_id)
        strata_of = await _collect(batches)
        shards = experiment.storage_shards
        shard_of = {participant: storage_shard(participant, shards) for participant in strata_of}
        ids_by_shard: dict[int, list[str]] = defaultdict(list)
        for participant, shard in shard_of.items():
            ids_by_shard[shard].append(participant)
        stored_counts = await self._rows.stratum_counts(experiment, experiment.bucket_version)
        # No stratum counter: nothing stored at this version yet (Assign never stores rows
        # of a PREASSIGNED experiment), so no participant can have an arm: skip the lookup.
        stored = await self._rows.stored_rows(experiment, ids_by_shard) if stored_counts else {}
        new_by_stratum: dict[str, list[str]] = defaultdict(list)
        for participant, key in strata_of.items():
            if participant not in stored:
                new_by_stratum[key].append(participant)
        arms = self._draw(experiment, new_by_stratum, stored_counts)
        ids = {key: stratum_id(key) if key else "" for key in new_by_stratum}
        await self._rows.define_strata(experiment, {ids[key]: key for key in new_by_stratum if key})
        rows_by_shard: dict[int, list[PreassignRow]] = defaultdict(list)
        for key, participants in new_by_stratum.items():
            for participant in participants:
                rows_by_shard[shard_of[participant]].append(PreassignRow(participant, arms[participant], ids[key]))
        conflicts = await self._rows.write_preassigned(experiment, rows_by_shard, self._clock())
        created = sum(len(p) for p in new_by_stratum.values()) - len(conflicts)
        touched = set(strata_of.values())
        totals = await self._rows.stratum_totals(experiment, experiment.bucket_version)
        totals = [t for t in totals if t.stratum in touched]
        return PreassignSummary(experiment, len(strata_of), created, len(strata_of) - created, totals)

    @staticmethod
    def _draw(
        experiment: Experiment, new_by_stratum: Mapping[str, list[str]], stored_counts: Mapping[str, list[int]]
    ) -> dict[str, int]:
        """participant -> arm for every new participant, balanced per stratum given the stored counts."""
        weights = [arm.weight for arm in experiment.arms]
        arms: dict[str, int] = {}
        for key, participants in new_by_stratum.items():
            existing = stored_counts.get(stratum_id(key) if key else "", [0] * len(weights))
            add = counts_to_add(weights, existing, len(participants))
            seed = stratum_seed(experiment.seed, experiment.bucket_version, key, existing)
            arms.update(assign_balanced(participants, add, seed))
        return arms


async def _collect(batches: AsyncIterator[Sequence[ParticipantGroup]]) -> dict[str, str]:
    """participant id -> stratum key for the whole upload; InvalidArgumentError listing the
    first bad rows (by position in the upload, from 0). Each distinct stratum is checked
    and keyed once (uploads have millions of rows and a handful of strata)."""
    strata_of: dict[str, str] = {}
    strata: dict[tuple[tuple[str, str], ...], tuple[str, list[FieldViolation]]] = {(): ("", [])}
    violations: list[FieldViolation] = []
    position = 0
    async for batch in batches:
        for attributes, participants in batch:
            items = tuple(sorted(attributes.items()))
            known = strata.get(items)
            if known is None:
                known = strata[items] = (stratum_key(attributes), _strata_violations(attributes, "strata"))
            key, strata_problems = known
            for participant in participants:
                if not 0 < len(participant) <= FAST_ID_CHARS or strata_problems:
                    field = f"participants[{position}]"
                    problems = participant_id_violations(participant, f"{field}.participant_id")
                    problems += [FieldViolation(f"{field}.{v.field}", v.description) for v in strata_problems]
                    violations += problems[: MAX_REPORTED_VIOLATIONS - len(violations)]
                if strata_of.setdefault(participant, key) != key and len(violations) < MAX_REPORTED_VIOLATIONS:
                    violations.append(FieldViolation(
                        f"participants[{position}].strata", f"differ from an earlier row of {participant!r}"))
                position += 1
        if position > MAX_PARTICIPANTS:
            raise InvalidArgumentError.single("participants", f"at most {MAX_PARTICIPANTS} per upload: split the file")
    if len(strata) > MAX_STRATA + 1:
        violations.append(FieldViolation("participants", f"at most {MAX_STRATA} distinct strata per upload"))
    if position == 0:
        violations.append(FieldViolation("participants", "is empty: send at least one participant"))
    if violations:
        raise InvalidArgumentError(violations[:MAX_REPORTED_VIOLATIONS])
    return strata_of


def _strata_violations(attributes: Mapping[str, str], field: str) -> list[FieldViolation]:
    if not attributes:
        return []
    if len(attributes) > MAX_STRATA_ATTRIBUTES:
        return [FieldViolation(field, f"at most {MAX_STRATA_ATTRIBUTES} attributes")]
    for name, value in attributes.items():
        if not 0 < len(name) <= MAX_STRATUM_NAME_CHARS:
            return [FieldViolation(field, f"attribute names must be 1 to {MAX_STRATUM_NAME_CHARS} characters")]
        if len(value) > MAX_STRATUM_VALUE_CHARS:
            return [FieldViolation(f"{field}[{name}]", f"must be at most {MAX_STRATUM_VALUE_CHARS} characters")]
    return []
