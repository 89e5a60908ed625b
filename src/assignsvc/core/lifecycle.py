"""The experiment lifecycle: status transitions, what an update may change, re-randomization.

Pure rules, so that the RPCs, `assignsvc apply` and the tests all use the same ones.
The invariant they protect: a stored (experiment, bucket version, participant) -> arm
index row keeps meaning the same arm. Hence arms cannot be added, removed or
renumbered once assignments exist, and the hashing inputs (seed, algorithm, bucket
version) change only through Rerandomize, which starts a fresh bucket version.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable, Iterable

from assignsvc.core.conditions import canonical_text
from assignsvc.core.model import Experiment, ExperimentStatus
from assignsvc.core.scoping import local_part
from assignsvc.core.validation import experiment_violations
from assignsvc.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError


class Action(enum.Enum):
    """A status change requested through its own RPC."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


_S = ExperimentStatus
TRANSITIONS: dict[tuple[ExperimentStatus, Action], ExperimentStatus] = {
    (_S.DRAFT, Action.START): _S.RUNNING,
    (_S.RUNNING, Action.PAUSE): _S.PAUSED,
    (_S.PAUSED, Action.RESUME): _S.RUNNING,
    (_S.RUNNING, Action.STOP): _S.STOPPED,
    (_S.PAUSED, Action.STOP): _S.STOPPED,
}

# Fields an UpdateExperiment field mask may name (the API's names).
UPDATABLE_FIELDS = (
    "name",
    "arms",
    "coverage",
    "namespace",
    "min_bucket_version",
    "start_time",
    "end_time",
    "forced_arms",
    "condition",
    "hash_attribute",
    "fallback_attribute",
    "redis_failure_policy",
    "released_arm_id",
)
# Fields that decide who a participant is: locked like the arms (see check_update).
IDENTITY_FIELDS = ("hash_attribute", "fallback_attribute")
_MODEL_FIELD = {"start_time": "start_time_ms", "end_time": "end_time_ms"}
_HOW_TO_CHANGE = {
    "status": "use Start/Pause/Resume/StopExperiment",
    "seed": "use RerandomizeExperiment",
    "bucket_version": "use RerandomizeExperiment",
    "hash_algorithm": "it decides every participant's arm; create a new experiment",
    "type": "create a new experiment",
    "id": "ids are permanent",
}


# Fields no update may change (Rerandomize changes seed and bucket_version itself).
_PERMANENT_FIELDS = ("id", "hash_algorithm", "type", "seed", "bucket_version")


def next_status(experiment: Experiment, action: Action) -> ExperimentStatus:
    """The status after `action`, or FailedPreconditionError naming the current status."""
    target = TRANSITIONS.get((experiment.status, action))
    if target is None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is experiment.status) or ["none"]
        raise FailedPreconditionError(
            "INVALID_STATUS_TRANSITION",
            f"cannot {action.value} experiment {local_part(experiment.id)!r}: it is {experiment.status.name}"
            f" (allowed from {experiment.status.name}: {', '.join(allowed)})",
        )
    return target


def action_between(current: ExperimentStatus, desired: ExperimentStatus) -> Action | None:
    """The one action that moves `current` to `desired` (None if they are equal)."""
    if current is desired:
        return None
    for (source, action), target in TRANSITIONS.items():
        if source is current and target is desired:
            return action
    raise FailedPreconditionError(
        "INVALID_STATUS_TRANSITION", f"cannot go from {current.name} to {desired.name} in one step"
    )


def apply_mask(current: Experiment, patch: Experiment, paths: Iterable[str], prefix: str = "") -> Experiment:
    """`current` with the masked fields taken from `patch`; '*' means every updatable field."""
    paths = list(paths)
    if not paths:
        raise InvalidArgumentError.single(
            f"{prefix}update_mask", "is required (name the fields to change, or '*' for all updatable ones)"
        )
    if paths == ["*"]:
        paths = list(UPDATABLE_FIELDS)
    violations = []
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            why = _HOW_TO_CHANGE.get(path, f"updatable fields are {', '.join(UPDATABLE_FIELDS)}")
            violations.append(FieldViolation(f"{prefix}update_mask", f"{path!r} cannot be updated: {why}"))
    if violations:
        raise InvalidArgumentError(violations)
    changes = {_MODEL_FIELD.get(p, p): getattr(patch, _MODEL_FIELD.get(p, p)) for p in paths}
    updated = dataclasses.replace(current, **changes)
    return with_default_names(updated, current)


def with_default_names(experiment: Experiment, previous: Experiment | None = None) -> Experiment:
    """Empty names filled in: the previous name of the same arm id, else the id; the
    condition in its stored form (compact JSON, so a file and the API compare equal)."""
    old_names = {} if previous is None else {a.id: a.name for a in previous.arms}
    return dataclasses.replace(
        experiment,
        condition=canonical_text(experiment.condition),
        name=experiment.name or (previous.name if previous else "") or local_part(experiment.id),
        arms=tuple(dataclasses.replace(a, name=a.name or old_names.get(a.id) or a.id) for a in experiment.arms),
    )


def identity_changed(current: Experiment, updated: Experiment) -> bool:
    """True if the attribute that identifies participants changed (it would re-bucket everyone)."""
    return any(getattr(current, name) != getattr(updated, name) for name in IDENTITY_FIELDS)


def arms_reshaped(current: Experiment, updated: Experiment) -> bool:
    """True if arms were added, removed, reordered or renamed by id (names and weights may change)."""
    return [a.id for a in current.arms] != [a.id for a in updated.arms]


def split_changed(current: Experiment, updated: Experiment) -> bool:
    """True if the traffic split changed: weights, coverage or namespace."""
    return current.current_phase.weights != updated.current_phase.weights or (current.coverage, current.namespace) != (
        updated.coverage,
        updated.namespace,
    )


# Phases one experiment may have: each is kept in its definition (and every reply and
# webhook body that carries it), so a script that ramps weights without end is stopped.
MAX_PHASES = 100


def next_phase(current: Experiment, updated: Experiment, now_ms: int) -> Experiment:
    """`updated` in a new phase from now_ms, `current`'s phase kept in the history.

    For a split change of an experiment with stored assignments: its counters so far
    were drawn under the old split, so the SRM test must not compare them to the new one.
    """
    if current.phase + 1 >= MAX_PHASES:
        raise FailedPreconditionError(
            "TOO_MANY_PHASES",
            f"experiment {local_part(current.id)!r} has had {MAX_PHASES} phases, the most one may have:"
            " its split can no longer change (create a new experiment for a new split)",
        )
    return dataclasses.replace(
        updated,
        phase=current.phase + 1,
        phase_start_ms=now_ms,
        past_phases=(*current.past_phases, current.current_phase),
    )


def check_release(updated: Experiment) -> None:
    """A released arm is answered to everyone: only a STOPPED experiment may have one."""
    if updated.released_arm_id and updated.status is not ExperimentStatus.STOPPED:
        raise FailedPreconditionError(
            "RELEASE_NEEDS_STOP",
            f"cannot release arm {updated.released_arm_id!r} of experiment {local_part(updated.id)!r}: it is"
            f" {updated.status.name} (stop it first, or release in the StopExperiment call itself)",
        )


def check_update(current: Experiment, updated: Experiment, *, has_assignments: bool, prefix: str = "") -> None:
    """Raise unless `updated` is a valid successor of `current`.

    Reshaping arms is refused once any assignment is stored, and while RUNNING (a
    replica that has not yet seen the change could store an index into the old arms).
    So is changing the hash attribute: every participant would get a new identity, and
    with it a new arm. The condition may change at any time: stored arms stay.
    """
    violations = experiment_violations(updated, prefix)
    for name in _PERMANENT_FIELDS:
        before, after = getattr(current, name), getattr(updated, name)
        if name == "seed":
            before, after = current.effective_seed, updated.effective_seed
        if before != after:
            violations.append(FieldViolation(f"{prefix}{name}", f"cannot change: {_HOW_TO_CHANGE[name]}"))
    if violations:
        raise InvalidArgumentError(violations)
    check_release(updated)
    if not has_assignments and current.status is not ExperimentStatus.RUNNING:
        return
    why = "it has stored assignments" if has_assignments else "it is RUNNING"
    if arms_reshaped(current, updated):
        raise FailedPreconditionError(
            "ARMS_LOCKED",
            f"cannot add, remove or reorder arms of experiment {current.id!r}: {why}"
            " (weights and names may change; create a new experiment to change arms)",
        )
    if identity_changed(current, updated):
        raise FailedPreconditionError(
            "HASH_ATTRIBUTE_LOCKED",
            f"cannot change hash_attribute or fallback_attribute of experiment {current.id!r}: {why}"
            " (it decides who each participant is; create a new experiment instead)",
        )


def rerandomized(experiment: Experiment, seed: str, *, block_previous: bool) -> Experiment:
    """The next bucket version with a new seed: everyone is bucketed afresh.

    Rows of older versions stay stored (and exportable). With block_previous, anyone
    holding an older arm is blocked (GrowthBook's minBucketVersion) instead of re-bucketed.
    """
    version = experiment.bucket_version + 1
    return dataclasses.replace(
        experiment,
        seed=seed,
        bucket_version=version,
        min_bucket_version=version if block_previous else experiment.min_bucket_version,
    )


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def _namespace(e: Experiment) -> str:
    ns = e.namespace
    return "" if ns is None else f"{ns.id} [{ns.start!r}, {ns.end!r})"


# Every user-settable field, as exact text (repr for floats: a diff must never hide a change).
_SHOWN_FIELDS: tuple[tuple[str, Callable[[Experiment], str]], ...] = (
    ("name", lambda e: e.name),
    ("arms", lambda e: ", ".join(f"{a.id}:{a.weight!r}" for a in e.arms)),
    ("arm_names", lambda e: ", ".join(f"{a.id}={a.name}" for a in e.arms)),
    ("arm_values", lambda e: ", ".join(f"{a.id}={a.value or chr(34) + a.id + chr(34)}" for a in e.arms)),
    ("coverage", lambda e: repr(e.coverage)),
    ("namespace", _namespace),
    ("seed", lambda e: e.effective_seed),
    ("hash_algorithm", lambda e: e.hash_algorithm.name),
    ("bucket_version", lambda e: str(e.bucket_version)),
    ("min_bucket_version", lambda e: str(e.min_bucket_version)),
    ("status", lambda e: e.status.name),
    ("type", lambda e: e.type.name),
    ("start_time", lambda e: _time(e.start_time_ms)),
    ("end_time", lambda e: _time(e.end_time_ms)),
    ("forced_arms", lambda e: ", ".join(f"{p}={a}" for p, a in sorted(e.forced_arms.items()))),
    ("condition", lambda e: e.condition),
    ("hash_attribute", lambda e: e.hash_attribute),
    ("fallback_attribute", lambda e: e.fallback_attribute),
    ("redis_failure_policy", lambda e: e.redis_failure_policy.name),
    ("released_arm_id", lambda e: e.released_arm_id),
)


def diff(old: Experiment | None, new: Experiment) -> list[tuple[str, str, str]]:
    """(field, old, new) for every field that differs, as text; every field if old is None."""
    out = []
    for name, show in _SHOWN_FIELDS:
        before, after = ("" if old is None else show(old)), show(new)
        if old is None or before != after:
            out.append((name, before, after))
    return out
