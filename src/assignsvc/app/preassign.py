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

from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.balance import assign_balanced, counts_to_add, stratum_id, stratum_key, stratum_seed
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Experiment, ExperimentStatus, ExperimentType
from assignsvc.core.validation import experiment_id_violations, participant_id_violations
from assignsvc.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError, NotFoundError
from assignsvc.store.protocols import AssignmentRowStore
from assignsvc.store.rows import StratumCounts

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
# What the store writes: storage shard -> (arm index, stratum id) -> participant ids.
ShardGroups = dict[int, dict[tuple[int, str], list[str]]]


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

    def __init__(self, registry: ExperimentRegistry, rows: AssignmentRowStore, clock: Clock = wall_clock_ms) -> None:
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
        by_stratum = await _collect(batches)
        received = sum(len(participants) for participants in by_stratum.values())
        stored_counts = await self._rows.stratum_counts(experiment, experiment.bucket_version)
        if stored_counts:  # else nothing is stored at this version (Assign never stores rows here)
            by_stratum = await self._not_stored(experiment, by_stratum)
        groups = self._draw(experiment, by_stratum, stored_counts)
        await self._rows.define_strata(experiment, {stratum_id(key): key for key in by_stratum if key})
        conflicts = await self._rows.write_preassigned(experiment, groups, self._clock())
        created = sum(len(participants) for participants in by_stratum.values()) - len(conflicts)
        totals = await self._rows.stratum_totals(experiment, experiment.bucket_version)
        totals = [t for t in totals if t.stratum in by_stratum]
        return PreassignSummary(experiment, received, created, received - created, totals)

    async def _not_stored(self, experiment: Experiment, by_stratum: dict[str, list[str]]) -> dict[str, list[str]]:
        """by_stratum without the participants that already have an arm (they keep it)."""
        ids_by_shard: dict[int, list[str]] = defaultdict(list)
        for participants in by_stratum.values():
            for participant in participants:
                ids_by_shard[storage_shard(participant, experiment.storage_shards)].append(participant)
        stored = await self._rows.stored_rows(experiment, ids_by_shard)
        return {key: [p for p in participants if p not in stored] for key, participants in by_stratum.items()}

    @staticmethod
    def _draw(
        experiment: Experiment, by_stratum: Mapping[str, list[str]], stored_counts: Mapping[str, list[int]]
    ) -> ShardGroups:
        """Every new participant's arm, balanced per stratum given the stored counts,
        grouped as the store writes them: shard -> (arm, stratum id) -> participants."""
        weights = [arm.weight for arm in experiment.arms]
        shards = experiment.storage_shards
        groups: ShardGroups = defaultdict(lambda: defaultdict(list))
        for key, participants in by_stratum.items():
            sid = stratum_id(key) if key else ""
            existing = stored_counts.get(sid, [0] * len(weights))
            add = counts_to_add(weights, existing, len(participants))
            seed = stratum_seed(experiment.seed, experiment.bucket_version, key, existing)
            group_keys = [(arm, sid) for arm in range(len(weights))]
            for participant, arm in assign_balanced(participants, add, seed).items():
                groups[storage_shard(participant, shards)][group_keys[arm]].append(participant)
        return groups


async def _collect(batches: AsyncIterator[Sequence[ParticipantGroup]]) -> dict[str, list[str]]:
    """stratum key -> its distinct participant ids, for the whole upload; InvalidArgumentError listing the
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
            violations += _bad_rows(participants, position, strata_problems, MAX_REPORTED_VIOLATIONS - len(violations))
            setdefault = strata_of.setdefault
            for offset, participant in enumerate(participants):
                if setdefault(participant, key) != key and len(violations) < MAX_REPORTED_VIOLATIONS:
                    violations.append(
                        FieldViolation(
                            f"participants[{position + offset}].strata",
                            f"differ from an earlier row of {participant!r}",
                        )
                    )
            position += len(participants)
        if position > MAX_PARTICIPANTS:
            raise InvalidArgumentError.single("participants", f"at most {MAX_PARTICIPANTS} per upload: split the file")
    if len(strata) > MAX_STRATA + 1:
        violations.append(FieldViolation("participants", f"at most {MAX_STRATA} distinct strata per upload"))
    if position == 0:
        violations.append(FieldViolation("participants", "is empty: send at least one participant"))
    if violations:
        raise InvalidArgumentError(violations[:MAX_REPORTED_VIOLATIONS])
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for participant, key in strata_of.items():
        by_stratum[key].append(participant)
    return by_stratum


def _bad_rows(
    participants: Sequence[str], position: int, strata_problems: list[FieldViolation], room: int
) -> list[FieldViolation]:
    """At most `room` violations of one group's rows (numbered from `position`); each row is
    checked only when the group's strata are bad or some id's length is out of range."""
    if not strata_problems and (
        not participants or (min(map(len, participants)) > 0 and max(map(len, participants)) <= FAST_ID_CHARS)
    ):
        return []
    found: list[FieldViolation] = []
    for offset, participant in enumerate(participants):
        field = f"participants[{position + offset}]"
        problems = participant_id_violations(participant, f"{field}.participant_id")
        problems += [FieldViolation(f"{field}.{v.field}", v.description) for v in strata_problems]
        found += problems[: room - len(found)]
    return found


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
