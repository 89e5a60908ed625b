"""Apply full experiment definitions (GitOps): create or update many, all or nothing.

Each definition is compared with what is stored; the rules are the same as for the
single-experiment RPCs (core.lifecycle). Everything is checked before anything is
written, and the writes go in one atomic compare-and-set, so a file with one bad
experiment changes nothing, and a concurrent edit makes the whole apply fail cleanly.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core import lifecycle
from assignsvc.core.events import EXPERIMENT_CREATED, canonical_json, change_events
from assignsvc.core.model import Experiment, ExperimentStatus
from assignsvc.core.validation import creation_violations
from assignsvc.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
)
from assignsvc.store.protocols import MUST_BE_NEW, AssignmentStore, ChangeEvent, Expected, ExperimentStore

MAX_EXPERIMENTS_PER_APPLY = 500


class ApplyAction(enum.Enum):
    """What applying one definition does."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclasses.dataclass(frozen=True, slots=True)
class Desired:
    """One definition to apply; status None keeps the stored status (DRAFT when new)."""

    experiment: Experiment
    status: ExperimentStatus | None


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """The result for one definition: action, changed fields, experiment as stored."""

    action: ApplyAction
    changes: list[tuple[str, str, str]]
    experiment: Experiment
    previous: Experiment | None = None  # what was stored before (UPDATED only), for its events


class ExperimentApplier:
    """Plans and applies many definitions at once."""

    def __init__(
        self,
        catalog: ExperimentCatalog,
        registry: ExperimentRegistry,
        store: ExperimentStore,
        assignments: AssignmentStore,
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self._store = store
        self._assignments = assignments

    async def apply(self, desired: Sequence[Desired], *, dry_run: bool) -> list[ApplyOutcome]:
        """Validate every definition, then write every change at once (unless dry_run)."""
        if len(desired) > MAX_EXPERIMENTS_PER_APPLY:
            raise InvalidArgumentError.single(
                "experiments", f"must hold at most {MAX_EXPERIMENTS_PER_APPLY} experiments per apply"
            )
        violations = _duplicate_id_violations(desired)
        planned: list[tuple[ApplyOutcome, Expected]] = []
        for i, item in enumerate(desired):
            prefix = f"experiments[{i}]."
            try:
                planned.append(await self._plan(item, prefix))
            except InvalidArgumentError as exc:
                violations += exc.violations
        if violations:
            raise InvalidArgumentError(violations)
        changed = [(o, expected) for o, expected in planned if o.action is not ApplyAction.UNCHANGED]
        writes = [(o.experiment, expected) for o, expected in changed]
        if writes and not dry_run:
            conflict = await self._store.write(writes, self._events(changed))
            if conflict is not None:
                raise ConflictError(
                    f"experiment {conflict.experiment_id!r} changed while applying; nothing was written: retry"
                )
            for experiment, _ in writes:
                self._registry.put(experiment)
        return [o for o, _ in planned]

    @staticmethod
    def _events(changed: Sequence[tuple[ApplyOutcome, Expected]]) -> list[ChangeEvent]:
        """The webhook events of each write (created, or what changed against the stored one)."""
        events = []
        for i, (outcome, _) in enumerate(changed):
            if outcome.action is ApplyAction.CREATED:
                events.append(ChangeEvent(EXPERIMENT_CREATED, i))
                continue
            if outcome.previous is not None:
                pairs = change_events(outcome.previous, outcome.experiment)
                events += [ChangeEvent(t, i, canonical_json(d)) for t, d in pairs]
        return events

    async def _plan(self, item: Desired, prefix: str) -> tuple[ApplyOutcome, Expected]:
        desired = item.experiment
        current = await self._store.get(desired.id)
        if current is None:
            if await self._store.get_archived(desired.id) is not None:
                raise AlreadyExistsError("experiment", desired.id, "deleted; ids are never reused")
            new = dataclasses.replace(desired, status=item.status or ExperimentStatus.DRAFT)
            violations = creation_violations(new, prefix)
            if violations:
                raise InvalidArgumentError(violations)
            self._catalog.check_groups(new, f"{prefix}condition")
            stored = self._catalog.stamp_new(new)
            return ApplyOutcome(ApplyAction.CREATED, lifecycle.diff(None, stored), stored), MUST_BE_NEW
        updated = await self._successor(current, item, prefix)
        changes = lifecycle.diff(current, updated)
        if not changes:
            return ApplyOutcome(ApplyAction.UNCHANGED, [], current), current.revision
        stored = dataclasses.replace(updated, revision=current.revision + 1, update_time_ms=self._catalog.now_ms())
        return ApplyOutcome(ApplyAction.UPDATED, changes, stored, current), current.revision

    async def _successor(self, current: Experiment, item: Desired, prefix: str) -> Experiment:
        """What `current` becomes under the definition, checked by the lifecycle rules."""
        desired = item.experiment
        base = current
        if desired.bucket_version < current.bucket_version:
            raise InvalidArgumentError.single(
                f"{prefix}bucket_version", f"cannot go back from {current.bucket_version}"
            )
        if desired.bucket_version > current.bucket_version:  # re-randomize by apply
            seed = desired.seed or self._catalog.new_seed()
            base = lifecycle.rerandomized(current, seed, block_previous=False)
            base = dataclasses.replace(base, bucket_version=desired.bucket_version)
        status = base.status
        if item.status is not None and item.status is not current.status:
            try:
                lifecycle.action_between(current.status, item.status)
            except FailedPreconditionError as exc:
                raise FailedPreconditionError(exc.reason, f"experiment {current.id!r}: {exc.message}") from None
            status = item.status
        updated = dataclasses.replace(
            base,
            name=desired.name,
            arms=desired.arms,
            coverage=desired.coverage,
            namespace=desired.namespace,
            min_bucket_version=desired.min_bucket_version,
            start_time_ms=desired.start_time_ms,
            end_time_ms=desired.end_time_ms,
            forced_arms=desired.forced_arms,
            status=status,
            hash_algorithm=desired.hash_algorithm,
            type=desired.type,
            seed=desired.seed or base.effective_seed,  # empty seed: keep the stored one
            condition=desired.condition,
            hash_attribute=desired.hash_attribute,
            fallback_attribute=desired.fallback_attribute,
            redis_failure_policy=desired.redis_failure_policy,
            released_arm_id=desired.released_arm_id,
        )
        updated = lifecycle.with_default_names(updated, current)
        locked = lifecycle.arms_reshaped(current, updated) or lifecycle.identity_changed(current, updated)
        has_rows = locked and await self._assignments.has_assignments(current)
        lifecycle.check_update(base, updated, has_assignments=has_rows, prefix=prefix)
        self._catalog.check_groups(updated, f"{prefix}condition")
        return await self._catalog.phased(current, updated)


def _duplicate_id_violations(desired: Sequence[Desired]) -> list[FieldViolation]:
    seen: dict[str, int] = {}
    out = []
    for i, item in enumerate(desired):
        first = seen.setdefault(item.experiment.id, i)
        if first != i:
            out.append(FieldViolation(f"experiments[{i}].id", f"duplicates experiments[{first}].id"))
    return out
