"""Validation of experiment definitions and participant ids.

Returns every violation at once (users fix a form in one pass), with field paths
in the API's own names. Weights are never silently equalized: a bad sum is an error.
"""

from __future__ import annotations

import math
import re
from typing import Any

from assignsvc.core.conditions import ConditionError, parse_condition
from assignsvc.core.model import Experiment, ExperimentStatus, ExperimentType
from assignsvc.core.scoping import local_part
from assignsvc.errors import FieldViolation

EXPERIMENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ARM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAMESPACE_ID_PATTERN = ARM_ID_PATTERN
ID_CHARSET_DOC = "letters, digits, '.', '_' or '-', starting with a letter or digit"
MIN_ARMS = 2
MAX_ARMS = 100
MAX_NAME_BYTES = 256
MAX_SEED_BYTES = 256
MAX_PARTICIPANT_ID_BYTES = 256
MAX_FORCED_ARMS = 1000
MAX_ATTRIBUTE_NAME_BYTES = 256
WEIGHT_SUM_TOLERANCE = 1e-6
MAX_ARM_VALUE_BYTES = 8 * 1024
CREATABLE_STATUSES = (ExperimentStatus.DRAFT, ExperimentStatus.RUNNING)


def experiment_id_violations(experiment_id: str, field: str) -> list[FieldViolation]:
    """Violations of the experiment id format (also used by lookups)."""
    local_id = local_part(experiment_id)  # the datasource part was checked by the edge
    if not local_id:
        return [FieldViolation(field, "is required")]
    if not EXPERIMENT_ID_PATTERN.fullmatch(local_id):
        return [FieldViolation(field, f"must be 1-100 {ID_CHARSET_DOC}")]
    return []


def participant_id_violations(participant_id: str, field: str) -> list[FieldViolation]:
    """Violations of the participant id rule: non-empty, at most 256 UTF-8 bytes."""
    if not participant_id:
        return [FieldViolation(field, "is required")]
    if len(participant_id.encode("utf-8", "surrogatepass")) > MAX_PARTICIPANT_ID_BYTES:
        return [FieldViolation(field, f"must be at most {MAX_PARTICIPANT_ID_BYTES} UTF-8 bytes")]
    return []


def _unit_violation(value: float, field: str, *, closed_end: bool) -> list[FieldViolation]:
    upper_ok = value <= 1.0 if closed_end else value < 1.0
    if not (math.isfinite(value) and value >= 0.0 and upper_ok):
        interval = "[0, 1]" if closed_end else "[0, 1)"
        return [FieldViolation(field, f"must be in {interval}, got {value!r}")]
    return []


def _arm_violations(experiment: Experiment, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    arms = experiment.arms
    if not MIN_ARMS <= len(arms) <= MAX_ARMS:
        out.append(FieldViolation(f"{prefix}arms", f"must have {MIN_ARMS} to {MAX_ARMS} arms"))
    seen: set[str] = set()
    for i, arm in enumerate(arms):
        path = f"{prefix}arms[{i}]"
        if not ARM_ID_PATTERN.fullmatch(arm.id):
            out.append(FieldViolation(f"{path}.id", f"must be 1-64 {ID_CHARSET_DOC}"))
        elif arm.id in seen:
            out.append(FieldViolation(f"{path}.id", f"duplicate arm id {arm.id!r}"))
        seen.add(arm.id)
        if len(arm.name.encode()) > MAX_NAME_BYTES:
            out.append(FieldViolation(f"{path}.name", f"must be at most {MAX_NAME_BYTES} bytes"))
        if not (math.isfinite(arm.weight) and arm.weight >= 0.0):
            out.append(FieldViolation(f"{path}.weight", "must be a finite number >= 0"))
    weights = [a.weight for a in arms]
    if arms and all(math.isfinite(w) and w >= 0 for w in weights):
        total = math.fsum(weights)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            out.append(FieldViolation(f"{prefix}arms", f"weights must sum to 1 (within 1e-6), got {total!r}"))
    return out


def value_kind(value: Any) -> str | None:
    """An arm value's kind (string, number, boolean, object), or None for anything else."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else None
    return "object" if isinstance(value, dict) else None


def _arm_value_violations(experiment: Experiment, prefix: str) -> list[FieldViolation]:
    """Every arm value parses to one kind shared by all arms (an application reads one type)."""
    out: list[FieldViolation] = []
    kinds: set[str] = set()
    for i, arm in enumerate(experiment.arms):
        path = f"{prefix}arms[{i}].value"
        if len(arm.value.encode()) > MAX_ARM_VALUE_BYTES:
            out.append(FieldViolation(path, f"must be at most {MAX_ARM_VALUE_BYTES} bytes as JSON"))
            continue
        try:
            kind = value_kind(arm.resolved_value)
        except ValueError:
            kind = None
        if kind is None:
            out.append(FieldViolation(path, "must be a string, a finite number, a boolean or an object"))
        else:
            kinds.add(kind)
    if len(kinds) > 1:
        out.append(
            FieldViolation(
                f"{prefix}arms",
                f"arm values must all be of one kind, got {', '.join(sorted(kinds))}"
                " (an arm without a value has its id, a string)",
            )
        )
    return out


def _forced_arm_violations(experiment: Experiment, prefix: str) -> list[FieldViolation]:
    forced = experiment.forced_arms
    if len(forced) > MAX_FORCED_ARMS:
        return [FieldViolation(f"{prefix}forced_arms", f"must have at most {MAX_FORCED_ARMS} entries")]
    arm_ids = {a.id for a in experiment.arms}
    out = []
    for participant, arm_id in sorted(forced.items()):
        path = f"{prefix}forced_arms[{participant!r}]"
        out += participant_id_violations(participant, path)
        if arm_id not in arm_ids:
            out.append(FieldViolation(path, f"{arm_id!r} is not an arm of this experiment"))
    return out


def targeting_violations(experiment: Experiment, prefix: str = "") -> list[FieldViolation]:
    """The condition compiles (the description names the path inside it); attribute names are sane."""
    out: list[FieldViolation] = []
    try:
        parse_condition(experiment.condition)
    except ConditionError as exc:
        out.append(FieldViolation(f"{prefix}condition", str(exc)))
    for name in ("hash_attribute", "fallback_attribute"):
        value = getattr(experiment, name)
        if len(value.encode("utf-8", "surrogatepass")) > MAX_ATTRIBUTE_NAME_BYTES:
            out.append(FieldViolation(f"{prefix}{name}", f"must be at most {MAX_ATTRIBUTE_NAME_BYTES} bytes"))
    if experiment.fallback_attribute and not experiment.hash_attribute:
        out.append(
            FieldViolation(f"{prefix}fallback_attribute", "needs hash_attribute (the participant id is never missing)")
        )
    if experiment.type is ExperimentType.PREASSIGNED:
        # Arms come from the uploaded list, stored under the uploaded ids: a condition would
        # never be consulted and a hash attribute would look rows up under other ids.
        for name in ("condition", "hash_attribute", "fallback_attribute"):
            if getattr(experiment, name):
                out.append(
                    FieldViolation(
                        f"{prefix}{name}",
                        "does not apply to a preassigned experiment "
                        "(its participants are the uploaded ids, all eligible)",
                    )
                )
    return out


def experiment_violations(experiment: Experiment, prefix: str = "") -> list[FieldViolation]:
    """Every rule a stored experiment must satisfy; [] when it is valid."""
    out = experiment_id_violations(experiment.id, f"{prefix}id")
    if len(experiment.name.encode()) > MAX_NAME_BYTES:
        out.append(FieldViolation(f"{prefix}name", f"must be at most {MAX_NAME_BYTES} bytes"))
    out += _arm_violations(experiment, prefix)
    out += _arm_value_violations(experiment, prefix)
    out += _unit_violation(experiment.coverage, f"{prefix}coverage", closed_end=True)
    ns = experiment.namespace
    if ns is not None:
        if not NAMESPACE_ID_PATTERN.fullmatch(ns.id):
            out.append(FieldViolation(f"{prefix}namespace.id", f"must be 1-64 {ID_CHARSET_DOC}"))
        out += _unit_violation(ns.start, f"{prefix}namespace.range_start", closed_end=False)
        out += _unit_violation(ns.end, f"{prefix}namespace.range_end", closed_end=True)
        if math.isfinite(ns.start) and math.isfinite(ns.end) and not ns.start < ns.end:
            out.append(FieldViolation(f"{prefix}namespace.range_end", "must be greater than range_start"))
    if len(experiment.seed.encode("utf-8", "surrogatepass")) > MAX_SEED_BYTES:
        out.append(FieldViolation(f"{prefix}seed", f"must be at most {MAX_SEED_BYTES} bytes"))
    if experiment.min_bucket_version > experiment.bucket_version:
        out.append(FieldViolation(f"{prefix}min_bucket_version", "must not exceed bucket_version"))
    out += _forced_arm_violations(experiment, prefix)
    start, end = experiment.start_time_ms, experiment.end_time_ms
    if start is not None and end is not None and end <= start:
        out.append(FieldViolation(f"{prefix}end_time", "must be after start_time"))
    out += targeting_violations(experiment, prefix)
    released = experiment.released_arm_id
    if released and experiment.arm_index(released) < 0:
        arms = ", ".join(a.id for a in experiment.arms)
        out.append(FieldViolation(f"{prefix}released_arm_id", f"{released!r} is not an arm (arms: {arms})"))
    return out


def creation_violations(experiment: Experiment, prefix: str = "") -> list[FieldViolation]:
    """Rules for a new experiment: the stored-experiment rules plus a creatable status."""
    out = experiment_violations(experiment, prefix)
    if experiment.status not in CREATABLE_STATUSES:
        out.append(FieldViolation(f"{prefix}status", "a new experiment must be DRAFT or RUNNING"))
    if experiment.released_arm_id:
        out.append(FieldViolation(f"{prefix}released_arm_id", "only a stopped experiment releases an arm"))
    return out
