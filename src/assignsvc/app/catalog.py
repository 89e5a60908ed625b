"""The experiment admin use cases: create, read, update, delete, status changes,
re-randomization and stats. Every write is a compare-and-set on the experiment's
revision (its etag), so two admins never silently overwrite each other."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Sequence

from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.shared import check_id, page_of, read_change_write
from assignsvc.core import lifecycle
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.conditions import referenced_groups
from assignsvc.core.events import EXPERIMENT_CREATED, canonical_json, change_events
from assignsvc.core.lifecycle import Action
from assignsvc.core.model import Experiment, ExperimentStatus, ExperimentType, Phase
from assignsvc.core.scoping import datasource_of, qualify
from assignsvc.core.stats import SRM_WARNING_P, srm_p_value
from assignsvc.core.validation import creation_violations, experiment_id_violations, experiment_violations
from assignsvc.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from assignsvc.store.claims import total_counts
from assignsvc.store.protocols import (
    ARCHIVED,
    MUST_BE_NEW,
    AssignmentRowStore,
    AssignmentStore,
    ChangeEvent,
    ExperimentStore,
    WriteConflict,
)
from assignsvc.store.rows import StratumCounts


def format_etag(experiment: Experiment) -> str:
    """The etag of a stored experiment: its revision, opaque to clients."""
    return str(experiment.revision)


def parse_etag(etag: str, field: str = "etag") -> int | None:
    """The revision an etag names; None for the empty (unconditional) etag."""
    if not etag:
        return None
    if not etag.isdigit():
        raise InvalidArgumentError.single(field, "is not an etag this API issued")
    return int(etag)


def new_seed() -> str:
    """A fresh random seed for a re-randomization."""
    return secrets.token_hex(8)


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseStats:
    """Stored assignments per arm made in one phase, and the SRM test against its weights."""

    phase: Phase
    counts: list[int]

    @property
    def total(self) -> int:
        """All assignments stored in this phase."""
        return sum(self.counts)

    @property
    def srm_p_value(self) -> float | None:
        """The SRM p-value of this phase's counts against this phase's weights."""
        return srm_p_value(self.counts, self.phase.weights)

    @property
    def srm_warning(self) -> bool:
        """True when the split is very unlikely under the phase's weights."""
        p = self.srm_p_value
        return p is not None and p < SRM_WARNING_P


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentStats:
    """Stored assignments per arm at one bucket version, per phase, and the SRM test of
    the current phase (a split change starts a phase: older counts ran another split)."""

    experiment: Experiment
    bucket_version: int
    counts: list[int]  # every phase
    phases: list[PhaseStats]  # every phase of the experiment, oldest first; the last is the current one
    strata: list[StratumCounts] = dataclasses.field(default_factory=list)  # PREASSIGNED only

    @property
    def current(self) -> PhaseStats:
        """The current phase's counts."""
        return self.phases[-1]

    @property
    def total(self) -> int:
        """All stored assignments at this bucket version, in every phase."""
        return sum(self.counts)

    @property
    def srm_p_value(self) -> float | None:
        """The current phase's SRM p-value."""
        return self.current.srm_p_value

    @property
    def srm_warning(self) -> bool:
        """The current phase's SRM verdict."""
        return self.current.srm_warning


# A change computed from the current stored experiment (may read the store).
Change = Callable[[Experiment], Awaitable[Experiment]]


class ExperimentCatalog:
    """Experiment definitions: writes go to the shared store, reads come from memory."""

    def __init__(
        self,
        registry: ExperimentRegistry,
        store: ExperimentStore,
        assignments: AssignmentStore,
        clock: Clock = wall_clock_ms,
        seeds: Callable[[], str] = new_seed,
        *,
        rows: AssignmentRowStore | None = None,
    ) -> None:
        self._registry = registry
        self._rows = rows
        self._store = store
        self._assignments = assignments
        self._clock = clock
        self._seeds = seeds

    async def create(self, experiment: Experiment) -> Experiment:
        """Validate, stamp, store if the id was never used, and publish to every replica."""
        violations = creation_violations(experiment, "experiment.")
        if violations:
            raise InvalidArgumentError(violations)
        self.check_groups(experiment, "experiment.condition")
        stored = self.stamp_new(experiment)
        conflict = await self._store.write([(stored, MUST_BE_NEW)], [ChangeEvent(EXPERIMENT_CREATED)])
        if conflict is not None:
            archived = "deleted; ids are never reused" if conflict.found == ARCHIVED else ""
            raise AlreadyExistsError("experiment", experiment.id, archived)
        self._registry.put(stored)
        return stored

    def stamp_new(self, experiment: Experiment) -> Experiment:
        """A new experiment as stored: defaults made explicit, times set, revision 1."""
        now_ms = self._clock()
        return dataclasses.replace(
            lifecycle.with_default_names(experiment),
            seed=experiment.effective_seed,
            create_time_ms=now_ms,
            update_time_ms=now_ms,
            revision=1,
        )

    def check_groups(self, experiment: Experiment, field: str) -> None:
        """A (valid) condition may name only saved groups that exist (this replica's view)."""
        datasource = datasource_of(experiment.id)
        missing = sorted(
            name
            for name in referenced_groups(experiment.condition)
            if qualify(datasource, name) not in self._registry.group_info
        )
        if missing:
            raise InvalidArgumentError.single(
                field, f"names saved groups that do not exist: {', '.join(map(repr, missing))} (create them first)"
            )

    def now_ms(self) -> int:
        """The catalog's clock (update times)."""
        return self._clock()

    def new_seed(self) -> str:
        """A seed for a re-randomization."""
        return self._seeds()

    def get(self, experiment_id: str) -> Experiment:
        """One experiment from memory; NotFoundError if unknown."""
        check_id(experiment_id_violations, experiment_id, "experiment_id")
        live = self._registry.get(experiment_id)
        if live is None:
            raise NotFoundError("experiment", experiment_id)
        return live.experiment

    def list(self, page_size: int, page_token: str, datasource: str) -> tuple[list[Experiment], str]:
        """A page of the datasource's experiments ordered by id, and the token for the next
        ('' at the end)."""
        return page_of(self._registry.all(), page_size, page_token, datasource)

    async def update(self, patch: Experiment, paths: Sequence[str], etag: str) -> Experiment:
        """Change the masked fields (see core.lifecycle for what may change)."""

        async def change(current: Experiment) -> Experiment:
            updated = lifecycle.apply_mask(current, patch, paths)
            locked = lifecycle.arms_reshaped(current, updated) or lifecycle.identity_changed(current, updated)
            has_rows = locked and await self._assignments.has_assignments(current)
            lifecycle.check_update(current, updated, has_assignments=has_rows, prefix="experiment.")
            self.check_groups(updated, "experiment.condition")
            return await self.phased(current, updated)

        return await self._modify(patch.id, etag, change, id_field="experiment.id")

    async def phased(self, current: Experiment, updated: Experiment) -> Experiment:
        """`updated` in a new phase if it changes the split of an experiment with assignments
        (core.lifecycle.next_phase); as it is otherwise. A PREASSIGNED experiment keeps one
        phase: each upload balances the counts of every phase so far toward the current
        weights, so a phase's own counts would be skewed on purpose."""
        if updated.type is ExperimentType.PREASSIGNED:
            return updated
        if lifecycle.split_changed(current, updated) and await self._assignments.has_assignments(current):
            return lifecycle.next_phase(current, updated, self._clock())
        return updated

    async def change_status(self, experiment_id: str, action: Action, etag: str) -> Experiment:
        """Start, pause, resume or stop (core.lifecycle.TRANSITIONS)."""

        async def change(current: Experiment) -> Experiment:
            return dataclasses.replace(current, status=lifecycle.next_status(current, action))

        return await self._modify(experiment_id, etag, change)

    async def stop(self, experiment_id: str, etag: str, released_arm_id: str = "") -> Experiment:
        """Stop, releasing an arm to everyone if one is named; on a stopped experiment,
        change the released arm (stopping again with none named is refused, as before)."""

        async def change(current: Experiment) -> Experiment:
            status = current.status
            if not (released_arm_id and status is ExperimentStatus.STOPPED):
                status = lifecycle.next_status(current, Action.STOP)
            updated = dataclasses.replace(current, status=status, released_arm_id=released_arm_id)
            violations = experiment_violations(updated)
            if violations:
                raise InvalidArgumentError(violations)
            return updated

        return await self._modify(experiment_id, etag, change)

    async def rerandomize(self, experiment_id: str, etag: str, seed: str, *, block_previous: bool) -> Experiment:
        """Next bucket version with a new seed (random unless given)."""

        async def change(current: Experiment) -> Experiment:
            new_seed = seed or self._seeds()
            if new_seed == current.effective_seed:
                raise InvalidArgumentError.single("seed", "must differ from the current seed")
            updated = lifecycle.rerandomized(current, new_seed, block_previous=block_previous)
            violations = experiment_violations(updated)
            if violations:
                raise InvalidArgumentError(violations)
            return updated

        return await self._modify(experiment_id, etag, change)

    async def delete(self, experiment_id: str, etag: str) -> None:
        """Archive: Assign answers NOT_FOUND, rows stay stored, the id is never reused."""
        check_id(experiment_id_violations, experiment_id, "experiment_id")
        expected = parse_etag(etag)
        conflict = await self._store.archive(experiment_id, expected)
        if conflict is not None:
            self._raise_for(conflict, expected)
        self._registry.remove(experiment_id)

    async def stats(
        self, experiment_id: str, bucket_version: int | None, *, with_strata: bool = True
    ) -> ExperimentStats:
        """Per-arm counters summed over the shards, per phase with each phase's SRM p-value
        against its weights (and, for preassigned experiments unless with_strata is False,
        the per-stratum counts)."""
        experiment = self.get(experiment_id)
        version = experiment.bucket_version if bucket_version is None else bucket_version
        if version > experiment.bucket_version:
            raise InvalidArgumentError.single(
                "bucket_version", f"must be at most the current bucket version {experiment.bucket_version}"
            )
        by_phase = await self._assignments.phase_counts(experiment, version)
        empty = [0] * len(experiment.arms)
        phases = [PhaseStats(phase, by_phase.get(phase.number, empty)) for phase in experiment.phases]
        strata = []
        if with_strata and experiment.type is ExperimentType.PREASSIGNED and self._rows is not None:
            strata = await self._rows.stratum_totals(experiment, version)
        return ExperimentStats(experiment, version, total_counts(by_phase, len(experiment.arms)), phases, strata)

    async def _modify(
        self, experiment_id: str, etag: str, change: Change, id_field: str = "experiment_id"
    ) -> Experiment:
        """Read-change-write with compare-and-set; retried only when the caller gave no etag."""
        check_id(experiment_id_violations, experiment_id, id_field)
        expected = parse_etag(etag, "experiment.etag" if id_field.startswith("experiment.") else "etag")

        async def attempt() -> Experiment | None:
            current = await self._store.get(experiment_id)
            if current is None:
                raise NotFoundError("experiment", experiment_id)
            if expected is not None and current.revision != expected:
                raise self._stale(experiment_id, expected, current.revision)
            updated = await change(current)
            stored = dataclasses.replace(updated, revision=current.revision + 1, update_time_ms=self._clock())
            events = [ChangeEvent(kind, 0, canonical_json(detail)) for kind, detail in change_events(current, stored)]
            conflict = await self._store.write([(stored, current.revision)], events)
            if conflict is None:
                self._registry.put(stored)
                return stored
            self._raise_for(conflict, expected)
            return None

        return await read_change_write(attempt, f"experiment {experiment_id!r} kept changing under this write; retry")

    def _raise_for(self, conflict: WriteConflict, expected: int | None) -> None:
        if conflict.found < 0:
            raise NotFoundError("experiment", conflict.experiment_id)
        if expected is not None:
            raise self._stale(conflict.experiment_id, expected, conflict.found)

    @staticmethod
    def _stale(experiment_id: str, expected: int, found: int) -> ConflictError:
        return ConflictError(
            f"experiment {experiment_id!r} changed since it was read (etag {expected}, now {found}):"
            " read it again and retry"
        )
