"""GrowthBook experiments as assignsvc experiments that assign exactly as GrowthBook's SDK does.

Teams moving off GrowthBook, or mirroring it, keep every participant's arm only if seed,
hash version, weights, coverage and namespace carry over bit for bit; this module is that
mapping, with no I/O. It reads GrowthBook's REST API Experiment object (what the
`experiment.created` / `experiment.updated` webhooks carry in `data.object`), the whole
webhook body, or the SDK's own experiment shape (`key`, `variations`, `weights`, ...).
It follows the SDK where the SDK is lenient (no hashVersion means 1, coverage is clamped,
an unusable weight vector means equal weights) and refuses what our model cannot express
without moving participants (e.g. weights summing to 0.99, multi-range namespaces).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from assignsvc.core.conditions import ConditionError, compile_condition
from assignsvc.core.model import Arm, Experiment, ExperimentStatus, HashAlgorithm, Namespace
from assignsvc.core.validation import (
    ID_CHARSET_DOC,
    MAX_ARMS,
    MAX_NAME_BYTES,
    MAX_SEED_BYTES,
    MIN_ARMS,
    NAMESPACE_ID_PATTERN,
    WEIGHT_SUM_TOLERANCE,
)
from assignsvc.documents.reading import Reader, show
from assignsvc.errors import InvalidArgumentError

WEBHOOK_EVENTS = ("experiment.created", "experiment.updated")
# growthbook.core.WEIGHT_SUM_MIN / WEIGHT_SUM_MAX: the SDK buckets with equal weights
# when the weights are not all finite and >= 0 with a sum inside these bounds.
SDK_WEIGHT_SUM_MIN = 0.99
SDK_WEIGHT_SUM_MAX = 1.01
_STATUSES = {"draft": ExperimentStatus.DRAFT, "running": ExperimentStatus.RUNNING, "stopped": ExperimentStatus.STOPPED}
_NOT_ID_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")
_MAX_EXPERIMENT_ID = 100
_MAX_ARM_ID = 64


@dataclass(frozen=True, slots=True)
class ImportedExperiment:
    """The mapped experiment, plus what the caller should tell the user.

    `hash_attribute` is the GrowthBook user attribute the SDK hashes (usually "id").
    "id" maps to the participant id (callers send the GrowthBook id as participant id);
    any other attribute becomes the experiment's hash_attribute.
    """

    experiment: Experiment
    hash_attribute: str
    notes: tuple[str, ...] = ()


def from_growthbook(document: object, path: str = "") -> ImportedExperiment:
    """Map a GrowthBook experiment (REST object, webhook body or SDK shape) onto ours.

    Raises InvalidArgumentError with one FieldViolation per problem, each field being
    `path` followed by GrowthBook's own field path (e.g. `phases[0].trafficSplit[1].weight`).
    """
    reader = _Reader(path)
    source = reader.unwrap(document)
    imported = None
    if source is not None:
        if "key" in source and "trackingKey" not in source and "phases" not in source:
            imported = _from_sdk_shape(source, reader)
        else:
            imported = _from_rest_object(source, reader)
    if reader.violations or imported is None:
        raise InvalidArgumentError(reader.violations)
    return imported


class _Reader(Reader):
    """Typed reads of untrusted JSON: a wrong value is recorded, never raised."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.notes: list[str] = []

    def field(self, where: str) -> str:
        """See Reader.field: names are relative to the experiment object's path."""
        return (self.path + where).rstrip(".") or "document"

    def note(self, name: str, text: str) -> None:
        self.notes.append(f"{self.path}{name}: {text}")

    def unwrap(self, document: object) -> Mapping[str, object] | None:
        """The experiment object, out of its webhook envelope if it has one."""
        if not isinstance(document, Mapping):
            self.bad("", f"must be an object, got {show(document)}")
            return None
        if "event" not in document:
            return document
        event = document.get("event")
        if event not in WEBHOOK_EVENTS:
            self.bad("event", f"must be one of {', '.join(WEBHOOK_EVENTS)}, got {show(event)}")
            return None
        data = document.get("data")
        inner = data.get("object") if isinstance(data, Mapping) else None
        if not isinstance(inner, Mapping):
            self.bad("data.object", "must be the experiment object")
            return None
        self.path += "data.object."
        return inner

    def text(self, value: object, name: str, *, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                self.bad(name, "is required")
            return None
        return self.given_text(value, name)

    def number(self, value: object, name: str) -> float | None:
        if value is None:
            self.bad(name, "is required")
            return None
        return self.given_number(value, name)

    def items(self, value: object, name: str) -> list[object] | None:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            self.bad(name, f"must be a list, got {show(value)}")
            return None
        return list(value)


def _from_rest_object(source: Mapping[str, object], r: _Reader) -> ImportedExperiment | None:
    """The REST API object: the last phase holds coverage, split, namespace and seed."""
    tracking_key = r.text(source.get("trackingKey"), "trackingKey")
    api_id = r.text(source.get("id"), "id")
    key, key_field = (tracking_key, "trackingKey") if tracking_key else (api_id, "id")
    if key is None:
        r.bad("trackingKey", "is required")
    variations = _rest_variations(source.get("variations"), r)

    phases = r.items(source.get("phases"), "phases")
    phase: Mapping[str, object] = {}
    at = ""
    if not phases:
        r.note("phases", "none, so imported with coverage 1 and equal weights")
    elif not isinstance(phases[-1], Mapping):
        r.bad(f"phases[{len(phases) - 1}]", f"must be an object, got {show(phases[-1])}")
    else:
        phase, at = phases[-1], f"phases[{len(phases) - 1}]."
    coverage = _coverage(phase.get("coverage"), at + "coverage", r)
    raw_weights = _traffic_split(phase.get("trafficSplit"), variations, at + "trafficSplit", r)
    namespace = _rest_namespace(phase.get("namespace"), at + "namespace", r)
    seed_value = r.text(phase.get("seed"), at + "seed")
    parts = _targeting_parts(phase, at, _identity_attribute(source, r), r)
    if phase.get("prerequisites") not in (None, "", "{}", [], {}):
        r.note(at + "prerequisites", "ignored: assignsvc has no prerequisite experiments")
    if source.get("type") == "multi-armed-bandit":
        r.note("type", "multi-armed bandit: imported the current trafficSplit, which GrowthBook keeps changing")

    seed = (seed_value, at + "seed") if seed_value else (key, key_field)
    return _build(
        r,
        source,
        (key, key_field),
        api_id,
        seed,
        variations,
        (raw_weights, at + "trafficSplit"),
        coverage,
        namespace,
        _condition_text(parts),
    )


def _from_sdk_shape(source: Mapping[str, object], r: _Reader) -> ImportedExperiment | None:
    """The SDK's Experiment as a dict; arm ids come from `meta[i].key` when present."""
    key = r.text(source.get("key"), "key", required=True)
    values = r.items(source.get("variations"), "variations")
    if values is None:
        r.bad("variations", "is required")
    meta = r.items(source.get("meta"), "meta") or []
    variations: list[_Variation] | None = None
    if values is not None:
        variations = []
        for i in range(len(values)):
            entry = meta[i] if i < len(meta) else None
            item: Mapping[str, object] = entry if isinstance(entry, Mapping) else {}
            arm_key = r.text(item.get("key"), f"meta[{i}].key")
            name = r.text(item.get("name"), f"meta[{i}].name")
            variations.append(_Variation(arm_key, None, name, f"meta[{i}].key", values[i]))
        _check_arm_count(variations, r)
    raw_weights: list[float] | None = None
    weights = r.items(source.get("weights"), "weights")
    if weights is not None:
        numbers = [r.number(w, f"weights[{i}]") for i, w in enumerate(weights)]
        raw_weights = [w for w in numbers if w is not None]
    for unsupported in ("ranges", "filters"):
        if source.get(unsupported):
            r.bad(unsupported, "bucket by rules assignsvc cannot express; use weights, coverage and namespace")
    for ignored in ("parentConditions", "groups", "url", "force"):
        if source.get(ignored) not in (None, "", [], {}):
            r.note(ignored, "ignored: assignsvc assigns whoever it is asked about")
    parts: list[object] = []
    if source.get("condition") not in (None, {}):
        parts = [_checked_condition(source.get("condition"), "condition", r)]
    seed_value = r.text(source.get("seed"), "seed")
    seed = (seed_value, "seed") if seed_value else (key, "key")
    return _build(
        r,
        source,
        (key, "key"),
        None,
        seed,
        variations,
        (raw_weights, "weights"),
        _coverage(source.get("coverage"), "coverage", r),
        _sdk_namespace(source.get("namespace"), r),
        _condition_text(parts),
    )


def _identity_attribute(source: Mapping[str, object], r: _Reader) -> str:
    value = source.get("hashAttribute")
    return value if isinstance(value, str) and value else "id"


def _checked_condition(value: object, name: str, r: _Reader) -> object:
    """A condition (JSON text or an object), compiled to check it; None when it is not usable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            r.bad(name, f"is not valid JSON: {exc}")
            return None
    try:
        compile_condition(value)
    except ConditionError as exc:
        r.bad(name, str(exc))
        return None
    return value


def _targeting_parts(phase: Mapping[str, object], at: str, attribute: str, r: _Reader) -> list[object]:
    """targetingCondition and savedGroupTargeting as conditions, all of which must hold.

    A saved group targets the attribute its GrowthBook definition names, which the
    experiment object does not carry: the experiment's hash attribute is assumed.
    """
    parts: list[object] = []
    text = phase.get("targetingCondition")
    if text not in (None, "", "{}", {}):
        parts.append(_checked_condition(text, at + "targetingCondition", r))
    rules = r.items(phase.get("savedGroupTargeting"), at + "savedGroupTargeting") or []
    operators = {"all": "$and", "any": "$or", "none": "$nor"}
    for i, rule in enumerate(rules):
        here = f"{at}savedGroupTargeting[{i}]"
        if not isinstance(rule, Mapping):
            r.bad(here, f"must be an object, got {show(rule)}")
            continue
        match = rule.get("matchType")
        groups = r.items(rule.get("savedGroups"), here + ".savedGroups") or []
        if match not in operators:
            r.bad(here + ".matchType", f"must be one of all, any, none, got {show(match)}")
            continue
        ids = [g for j, g in enumerate(groups) if r.text(g, f"{here}.savedGroups[{j}]", required=True)]
        if ids:
            parts.append({operators[str(match)]: [{attribute: {"$inGroup": g}} for g in ids]})
            r.note(
                here,
                f"saved groups {', '.join(map(repr, ids))} are tested on the attribute {attribute!r}"
                " and must exist in assignsvc (same ids)",
            )
    return parts


def _condition_text(parts: Sequence[object]) -> str:
    usable = [p for p in parts if p is not None]
    if not usable:
        return ""
    condition = usable[0] if len(usable) == 1 else {"$and": list(usable)}
    return json.dumps(condition, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Variation:
    key: str | None
    variation_id: str | None
    name: str | None
    key_field: str
    # The variation's value (the SDK shape's variations[i], a REST variation's "value"): None when absent.
    value: object = None


def _rest_variations(value: object, r: _Reader) -> list[_Variation] | None:
    items = r.items(value, "variations")
    if items is None:
        r.bad("variations", "is required")
        return None
    variations = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            r.bad(f"variations[{i}]", f"must be an object, got {show(item)}")
            continue
        variations.append(
            _Variation(
                r.text(item.get("key"), f"variations[{i}].key"),
                r.text(item.get("variationId"), f"variations[{i}].variationId"),
                r.text(item.get("name"), f"variations[{i}].name"),
                f"variations[{i}].key",
                item.get("value"),
            )
        )
    if len(variations) < len(items):
        return None
    _check_arm_count(variations, r)
    return variations


def _check_arm_count(variations: Sequence[_Variation], r: _Reader) -> None:
    if not MIN_ARMS <= len(variations) <= MAX_ARMS:
        r.bad("variations", f"must have {MIN_ARMS} to {MAX_ARMS} variations, got {len(variations)}")


def _traffic_split(value: object, variations: list[_Variation] | None, name: str, r: _Reader) -> list[float] | None:
    """Weights in `variations` order, matched by variationId; None when absent."""
    entries = r.items(value, name)
    if entries is None or variations is None:
        return None
    unnamed = [i for i, v in enumerate(variations) if v.variation_id is None]
    for i in unnamed:
        r.bad(f"variations[{i}].variationId", "is required to match trafficSplit")
    if unnamed:
        return None
    before = len(r.violations)
    by_id: dict[str, float] = {}
    ids = {v.variation_id for v in variations}
    for j, entry in enumerate(entries):
        here = f"{name}[{j}]"
        if not isinstance(entry, Mapping):
            r.bad(here, f"must be an object, got {show(entry)}")
            continue
        variation_id = r.text(entry.get("variationId"), here + ".variationId", required=True)
        weight = r.number(entry.get("weight"), here + ".weight")
        if variation_id is None or weight is None:
            continue
        if variation_id not in ids:
            r.bad(here + ".variationId", f"no variation has variationId {variation_id!r}")
        elif variation_id in by_id:
            r.bad(here + ".variationId", f"variation {variation_id!r} appears twice")
        else:
            by_id[variation_id] = weight
    missing = [v.variation_id for v in variations if v.variation_id not in by_id]
    if missing and len(r.violations) == before:
        r.bad(name, f"has no weight for variationId {', '.join(map(repr, missing))}")
    if len(r.violations) > before:
        return None
    return [by_id[v.variation_id] for v in variations if v.variation_id is not None]


def _coverage(value: object, name: str, r: _Reader) -> float:
    coverage = None if value is None else r.number(value, name)
    if coverage is None:  # absent (the SDK's default: everyone) or already reported
        return 1.0
    if math.isnan(coverage):
        r.bad(name, "must be a number in [0, 1]")
        return 1.0
    clamped = min(max(coverage, 0.0), 1.0)
    if clamped != coverage:
        r.note(name, f"{coverage!r} clamped to {clamped!r}, as GrowthBook's SDK does")
    return clamped


def _rest_namespace(value: object, name: str, r: _Reader) -> Namespace | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        r.bad(name, f"must be an object, got {show(value)}")
        return None
    if value.get("enabled") is False:
        return None
    if "range" not in value and "ranges" in value:
        r.bad(name + ".ranges", "multi-range namespaces hash differently; assignsvc supports one range")
        return None
    namespace_id = r.text(value.get("namespaceId"), name + ".namespaceId", required=True)
    bounds = value.get("range")
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        r.bad(name + ".range", f"must be [start, end], got {show(bounds)}")
        return None
    return _namespace(r, namespace_id, bounds, id_field=name + ".namespaceId", range_field=name + ".range")


def _sdk_namespace(value: object, r: _Reader) -> Namespace | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 3:
        r.bad("namespace", f"must be [id, start, end], got {show(value)}")
        return None
    namespace_id = r.text(value[0], "namespace[0]", required=True)
    return _namespace(r, namespace_id, value[1:], id_field="namespace[0]", range_field="namespace")


def _namespace(
    r: _Reader, namespace_id: str | None, bounds: Sequence[object], *, id_field: str, range_field: str
) -> Namespace | None:
    if namespace_id is not None and not NAMESPACE_ID_PATTERN.fullmatch(namespace_id):
        # The id seeds the namespace hash: renaming it would move participants.
        r.bad(id_field, f"must be 1-64 {ID_CHARSET_DOC} (it seeds the hash, so it cannot be renamed)")
        namespace_id = None
    low, high = r.number(bounds[0], range_field), r.number(bounds[1], range_field)
    if low is None or high is None or namespace_id is None:
        return None
    if not 0.0 <= low < high <= 1.0:
        r.bad(range_field, f"must satisfy 0 <= start < end <= 1, got [{low!r}, {high!r}]")
        return None
    return Namespace(namespace_id, low, high)


def _hash_algorithm(value: object, r: _Reader) -> HashAlgorithm:
    if value is None or (value == 0 and not isinstance(value, bool)):
        return HashAlgorithm.GROWTHBOOK_V1  # the SDK hashes with `hashVersion or 1`
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in (1, 2):
        r.bad("hashVersion", f"must be 1 or 2, got {show(value)}")
        return HashAlgorithm.GROWTHBOOK_V1
    return HashAlgorithm.GROWTHBOOK_V2 if value == 2 else HashAlgorithm.GROWTHBOOK_V1


def _bucket_version(value: object, name: str, r: _Reader) -> int:
    version = None if value is None else r.number(value, name)
    if version is None:  # absent (the SDK's default) or already reported
        return 0
    if not (version.is_integer() and version >= 0):
        r.bad(name, f"must be a whole number >= 0, got {version!r}")
        return 0
    return int(version)


def _status(value: object, r: _Reader) -> ExperimentStatus:
    if value is None:
        r.note("status", "missing, so imported as draft")
        return ExperimentStatus.DRAFT
    if isinstance(value, str) and value in _STATUSES:
        return _STATUSES[value]
    r.bad("status", f"must be one of {', '.join(_STATUSES)}, got {show(value)}")
    return ExperimentStatus.DRAFT


def _bucketing_weights(raw: list[float] | None, name: str, n: int, coverage: float, r: _Reader) -> tuple[float, ...]:
    """Weights summing to 1 whose bucket ranges decide every hash as the SDK's do.

    Within 1e-6 of 1 the weights pass unchanged (same ranges bit for bit). A vector the
    SDK rejects becomes equal weights, as in the SDK. Above 1 at full coverage, the
    cumulative sum is cut at 1: hashes are < 1, so no participant moves. Any other sum
    leaves part of [0, 1) to a different arm or to nobody, which our model cannot say.
    """
    equal = tuple(1 / n for _ in range(n))
    if raw is None:
        return equal
    sdk_sum = sum(raw)  # the SDK's own (not compensated) sum decides validity
    usable = len(raw) == n and all(math.isfinite(w) and w >= 0 for w in raw)
    if not (usable and SDK_WEIGHT_SUM_MIN <= sdk_sum <= SDK_WEIGHT_SUM_MAX):
        r.note(name, "GrowthBook's SDK ignores these weights and splits equally; imported equal weights")
        return equal
    total = math.fsum(raw)
    if abs(total - 1.0) <= WEIGHT_SUM_TOLERANCE:
        return tuple(raw)
    if total > 1.0 and coverage >= 1.0:
        cut: list[float] = []
        cumulative = 0.0
        for w in raw:
            start, cumulative = cumulative, cumulative + w
            cut.append(w if cumulative <= 1.0 else max(0.0, 1.0 - start))
        r.note(name, f"weights sum to {total!r}; cut at 1, which moves no participant")
        return tuple(cut)
    gap = "leaves the rest of the traffic out" if total < 1.0 else "stretches the last arm past 1"
    r.bad(name, f"weights sum to {total!r}: GrowthBook {gap}, which assignsvc cannot express; make them sum to 1")
    return equal


def _arms(variations: list[_Variation], weights: tuple[float, ...], r: _Reader) -> tuple[Arm, ...]:
    """Arm ids from key, else variationId, else the index; made valid and unique."""
    arms: list[Arm] = []
    seen: set[str] = set()
    for i, (variation, weight) in enumerate(zip(variations, weights, strict=True)):
        candidates = (_id_of(c, _MAX_ARM_ID) for c in (variation.key, variation.variation_id, str(i)))
        arm_id = base = next(c for c in candidates if c)
        suffix = 0
        while arm_id in seen:
            suffix += 1
            arm_id = f"{base[: _MAX_ARM_ID - len(str(suffix)) - 1]}-{suffix}"
        seen.add(arm_id)
        if variation.key is not None and arm_id != variation.key:
            r.note(variation.key_field, f"{variation.key!r} imported as arm id {arm_id!r}")
        value = variation.value
        text = "" if value is None or value == arm_id else json.dumps(value, separators=(",", ":"), sort_keys=True)
        arms.append(Arm(arm_id, _clip(variation.name or variation.key or arm_id), weight, text))
    return tuple(arms)


def _build(  # noqa: PLR0917 - one call per front end, each argument a (value, GrowthBook field) pair or plain value
    r: _Reader,
    source: Mapping[str, object],
    key: tuple[str | None, str],
    fallback_id: str | None,
    seed: tuple[str | None, str],
    variations: list[_Variation] | None,
    weights: tuple[list[float] | None, str],
    coverage: float,
    namespace: Namespace | None,
    condition: str = "",
) -> ImportedExperiment | None:
    """The fields every shape shares, then the Experiment; None when anything was wrong."""
    algorithm = _hash_algorithm(source.get("hashVersion"), r)
    bucket_version = _bucket_version(source.get("bucketVersion"), "bucketVersion", r)
    min_bucket_version = _bucket_version(source.get("minBucketVersion"), "minBucketVersion", r)
    if min_bucket_version > bucket_version:
        r.bad("minBucketVersion", "must not exceed bucketVersion")
    status = _status(source.get("status"), r)
    hash_attribute = r.text(source.get("hashAttribute"), "hashAttribute") or "id"
    fallback = r.text(source.get("fallbackAttribute"), "fallbackAttribute") or ""
    if fallback and hash_attribute == "id":
        r.note("fallbackAttribute", "ignored: the participant id (GrowthBook's id) is never missing")
        fallback = ""
    name = r.text(source.get("name"), "name")
    seed_value, seed_field = seed
    if seed_value is not None and len(seed_value.encode("utf-8", "surrogatepass")) > MAX_SEED_BYTES:
        r.bad(seed_field, f"must be at most {MAX_SEED_BYTES} UTF-8 bytes to serve as the hash seed")
    key_value, key_field = key
    experiment_id = _id_of(key_value, _MAX_EXPERIMENT_ID) or _id_of(fallback_id, _MAX_EXPERIMENT_ID)
    if key_value is not None and not experiment_id:
        r.bad(key_field, "has no letter or digit to make an experiment id of")
    arms: tuple[Arm, ...] = ()
    if variations is not None:  # weights and arms are checked even when other fields are wrong
        arms = _arms(variations, _bucketing_weights(*weights, len(variations), coverage, r), r)
    if r.violations or variations is None or key_value is None or seed_value is None:
        return None
    if experiment_id != key_value:
        r.note(key_field, f"{key_value!r} imported as experiment id {experiment_id!r} (the seed keeps every arm)")
    released = _released_arm(source.get("resultSummary"), variations, arms, status, r)
    experiment = Experiment(
        id=experiment_id,
        name=_clip(name or key_value),
        arms=arms,
        coverage=coverage,
        namespace=namespace,
        seed=seed_value,
        hash_algorithm=algorithm,
        bucket_version=bucket_version,
        min_bucket_version=min_bucket_version,
        status=status,
        condition=condition,
        hash_attribute="" if hash_attribute == "id" else hash_attribute,
        fallback_attribute=fallback,
        released_arm_id=released,
    )
    return ImportedExperiment(experiment, hash_attribute, tuple(r.notes))


def _released_arm(
    summary: object, variations: list[_Variation], arms: tuple[Arm, ...], status: ExperimentStatus, r: _Reader
) -> str:
    """The arm of a stopped experiment's resultSummary.releasedVariationId (GrowthBook's
    shipped variation, answered to everyone), or ""."""
    released = summary.get("releasedVariationId") if isinstance(summary, Mapping) else None
    if not released or status is not ExperimentStatus.STOPPED:
        return ""
    for variation, arm in zip(variations, arms, strict=True):
        if released in (variation.variation_id, variation.key):
            return arm.id
    r.note("resultSummary.releasedVariationId", f"{show(released)} names no variation: imported with no released arm")
    return ""


def _id_of(text: str | None, limit: int) -> str:
    """`text` made into an id: other characters become '-', leading '-', '.', '_' go."""
    if not text:
        return ""
    return _NOT_ID_CHARACTER.sub("-", text).lstrip("-._")[:limit]


def _clip(name: str) -> str:
    """At most MAX_NAME_BYTES of UTF-8, cut on a character boundary."""
    data = name.encode("utf-8", "surrogatepass")
    return name if len(data) <= MAX_NAME_BYTES else data[:MAX_NAME_BYTES].decode("utf-8", "ignore")
