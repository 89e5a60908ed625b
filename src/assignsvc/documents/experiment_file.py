"""Experiment files: what `assignsvc apply` reads and `assignsvc experiments get -o yaml` writes.

A file is YAML (JSON is YAML) holding `{experiments: [...]}`, a list of experiments,
one experiment, or a stream of those separated by `---`. One experiment:

    id: checkout-button
    name: Checkout button                    # default: the id
    arms:                                    # 2 to 100, weights summing to 1
      - {id: control, weight: 0.5}
      - {id: treatment, name: Green button, weight: 0.5, value: green}  # value: default the id
    coverage: 0.8                            # default 1
    namespace: {id: checkout, range: [0.0, 0.5]}
    seed: checkout-button                    # default: the id (on apply: the stored seed)
    hash_algorithm: murmur3                  # murmur3 | growthbook_v1 | growthbook_v2
    bucket_version: 0                        # raising it re-randomizes
    min_bucket_version: 0
    status: running                          # draft | running | paused | stopped; absent: keep
    type: online                             # online | preassigned
    start_time: 2025-01-01T00:00:00Z         # RFC 3339, with an offset
    end_time: 2025-02-01T00:00:00Z
    forced_arms: {qa-alice: treatment}
    condition: {country: {$in: [US, CA]}}    # GrowthBook's condition syntax (or its JSON as a string)
    hash_attribute: deviceId                 # default: the participant id
    fallback_attribute: userId
    redis_failure_policy: fail_open          # fail_closed (default) | fail_open
    released_arm_id: treatment               # stopped only: everyone gets this arm

A GrowthBook experiment (REST object, webhook body or SDK shape) may stand wherever an
experiment may: documents.growthbook maps it. Reading raises only InvalidArgumentError,
naming every problem by its path in the file (`experiments[1].arms[0].weight`) and its
line, so a file is fixed in one pass and nothing is sent while a problem remains.
Unknown and duplicate keys are problems: a typo must never be silently ignored.

Scalars are read as YAML 1.2 reads them (only true/false are booleans, `1e-5` is a
number, `0123` and `12:30` are strings) and written quoted wherever a YAML 1.1 or 1.2
reader could take them for another type, so `dump` then `read` is the identity.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from assignsvc.core.conditions import canonical_text
from assignsvc.core.model import (
    Arm,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    HashAlgorithm,
    Namespace,
    RedisFailurePolicy,
)
from assignsvc.core.validation import experiment_violations
from assignsvc.documents.reading import Reader, show
from assignsvc.documents.yaml_text import ROOT, FlowMap, dump, join_path, load, not_unicode, with_line
from assignsvc.errors import FieldViolation, InvalidArgumentError

EXPERIMENT_FIELDS = (
    "id",
    "name",
    "arms",
    "coverage",
    "namespace",
    "seed",
    "hash_algorithm",
    "bucket_version",
    "min_bucket_version",
    "status",
    "type",
    "start_time",
    "end_time",
    "forced_arms",
    "condition",
    "hash_attribute",
    "fallback_attribute",
    "redis_failure_policy",
    "released_arm_id",
)
ARM_FIELDS = ("id", "name", "weight", "value")
NAMESPACE_FIELDS = ("id", "range")
MAX_UINT32 = 2**32 - 1
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_MS = datetime.timedelta(milliseconds=1)
E = TypeVar("E", HashAlgorithm, ExperimentStatus, ExperimentType, RedisFailurePolicy)


@dataclass(frozen=True, slots=True)
class FileExperiment:
    """One experiment read from a file.

    `status` is what the file asks for (None: keep the current one, DRAFT when new);
    `experiment.status` is that or DRAFT. `path` locates the experiment in the file
    ('' when the file is that one experiment), to point server-side violations back.
    """

    experiment: Experiment
    status: ExperimentStatus | None
    path: str
    notes: tuple[str, ...] = ()


def read_experiments(text: str | bytes) -> list[FileExperiment]:
    """Every experiment in a file; InvalidArgumentError naming every problem in it."""
    documents, lines = load(text)
    reader = _Reader()
    entries: list[FileExperiment] = []
    for k, document in enumerate(documents):
        if document is None:  # an empty document (e.g. after a trailing ---)
            continue
        root = f"documents[{k}]" if len(documents) > 1 else ""
        broken = not_unicode(document, root, 0)
        if broken is not None:  # escapes such as "\ud800" decode to text no protocol can carry
            reader.bad(broken, "is not valid Unicode text (it holds a lone surrogate)")
            continue
        for path, item in reader.items(document, root):
            entry = reader.experiment(item, path)
            if entry is not None:
                entries.append(entry)
    reader.violations += reader.unknown_keys
    if not entries and not reader.violations:
        reader.bad("", "holds no experiment")
    seen: dict[str, str] = {}
    for entry in entries:
        first = seen.setdefault(entry.experiment.id, entry.path)
        if first != entry.path:
            reader.bad(join_path(entry.path, "id"), f"duplicates the id of {first or ROOT}: {entry.experiment.id!r}")
    if reader.violations:
        located = [with_line(v, lines) for v in reader.violations]
        located.sort(key=lambda pair: pair[1])  # in file order (stable: same line keeps its order)
        raise InvalidArgumentError([v for v, _ in located])
    return entries


def parse_time(text: str) -> int:
    """RFC 3339 text (with an offset) -> ms since the epoch; ValueError saying what is wrong."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"must be an RFC 3339 time such as 2025-01-01T00:00:00Z, got {text!r}") from None
    return _ms(moment)


def format_time(ms: int) -> str:
    """ms since the epoch -> RFC 3339 in UTC ('Z'), milliseconds only when there are some."""
    moment = _EPOCH + ms * _ONE_MS
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds").replace("+00:00", "Z")


def experiment_document(experiment: Experiment) -> dict[str, Any]:
    """An experiment as a file mapping: stable key order, defaults left out, status always."""
    e = experiment
    doc: dict[str, Any] = {"id": e.id}
    if e.name and e.name != e.id:
        doc["name"] = e.name
    doc["arms"] = [
        FlowMap(
            {
                "id": a.id,
                **({"name": a.name} if a.name and a.name != a.id else {}),
                "weight": a.weight,
                **({"value": json.loads(a.value)} if a.value else {}),
            }
        )
        for a in e.arms
    ]
    if e.coverage != 1.0:
        doc["coverage"] = e.coverage
    if e.namespace is not None:
        doc["namespace"] = FlowMap({"id": e.namespace.id, "range": [e.namespace.start, e.namespace.end]})
    doc |= _hashing_document(e)
    doc["status"] = e.status.value
    if e.type is not ExperimentType.ONLINE:
        doc["type"] = e.type.value
    if e.start_time_ms is not None:
        doc["start_time"] = format_time(e.start_time_ms)
    if e.end_time_ms is not None:
        doc["end_time"] = format_time(e.end_time_ms)
    if e.forced_arms:
        doc["forced_arms"] = dict(sorted(e.forced_arms.items()))
    doc |= _targeting_document(e)
    if e.redis_failure_policy is not RedisFailurePolicy.FAIL_CLOSED:
        doc["redis_failure_policy"] = e.redis_failure_policy.value
    if e.released_arm_id:
        doc["released_arm_id"] = e.released_arm_id
    return doc


def _hashing_document(e: Experiment) -> dict[str, Any]:
    """The hashing fields that differ from their defaults (split out to keep one short
    branch per field in each function)."""
    doc: dict[str, Any] = {}
    if e.seed and e.seed != e.id:
        doc["seed"] = e.seed
    if e.hash_algorithm is not HashAlgorithm.MURMUR3:
        doc["hash_algorithm"] = e.hash_algorithm.value
    if e.bucket_version:
        doc["bucket_version"] = e.bucket_version
    if e.min_bucket_version:
        doc["min_bucket_version"] = e.min_bucket_version
    return doc


def _targeting_document(e: Experiment) -> dict[str, Any]:
    """The targeting fields that are set: the condition as a mapping, readable in YAML."""
    doc: dict[str, Any] = {"condition": json.loads(e.condition)} if e.condition else {}
    if e.hash_attribute:
        doc["hash_attribute"] = e.hash_attribute
    if e.fallback_attribute:
        doc["fallback_attribute"] = e.fallback_attribute
    return doc


def dump_experiment(experiment: Experiment) -> str:
    """One experiment as a file (a single mapping)."""
    return dump(experiment_document(experiment))


def dump_experiments(experiments: Sequence[Experiment]) -> str:
    """Many experiments as a file: `experiments: [...]`."""
    return dump({"experiments": [experiment_document(e) for e in experiments]})


def dump_data(data: object) -> str:
    """Any plain data (e.g. a message as a dict) as YAML, written the way experiment files are."""
    return dump(data)


_RANGE_FIELD = re.compile(r"namespace\.range_(start|end)$")  # the API's names for namespace.range[i]


# --- the schema ------------------------------------------------------------------------


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _looks_growthbook(item: Mapping[Any, Any]) -> bool:
    return "variations" in item or "trackingKey" in item or ("event" in item and "data" in item)


def _ms(moment: datetime.datetime) -> int:
    if moment.utcoffset() is None:
        raise ValueError(f"needs a UTC offset, e.g. {moment.isoformat()}Z")
    if moment.microsecond % 1000:
        raise ValueError("must be a whole number of milliseconds")
    return (moment - _EPOCH) // _ONE_MS


class _Reader(Reader):
    """Typed reads of an experiment file: every problem is recorded with its path, none raised."""

    def __init__(self) -> None:
        super().__init__()
        self.unknown_keys: list[FieldViolation] = []  # apart: they leave every value readable

    def field(self, where: str) -> str:
        """See Reader.field: a problem of the whole file is the document's."""
        return where or ROOT

    def items(self, document: object, root: str) -> list[tuple[str, object]]:
        """(path, experiment) for each experiment a document holds."""
        if isinstance(document, list):
            return [(f"{root}[{i}]", item) for i, item in enumerate(document)]
        if isinstance(document, Mapping) and "experiments" in document and not _looks_growthbook(document):
            self.keys(document, root, ("experiments",))
            experiments = document["experiments"]
            path = join_path(root, "experiments")
            if experiments is None:
                return []
            if not isinstance(experiments, list):
                self.bad(path, f"must be a list of experiments, got {show(experiments)}")
                return []
            return [(f"{path}[{i}]", item) for i, item in enumerate(experiments)]
        return [(root, document)]

    def keys(self, mapping: Mapping[Any, Any], path: str, allowed: Sequence[str]) -> None:
        for key in mapping:
            if key in allowed:
                continue
            name = str(key)
            close = difflib.get_close_matches(name, [*allowed, "experiments"] if not path else allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(allowed)}"
            self.unknown_keys.append(FieldViolation(join_path(path, name), f"unknown field ({hint})"))

    def experiment(self, item: object, path: str) -> FileExperiment | None:
        if not isinstance(item, Mapping):
            self.bad(path, f"must be an experiment (a mapping), got {show(item)}")
            return None
        if _looks_growthbook(item):
            return self.growthbook(item, path)
        before = len(self.violations)
        self.keys(item, path, EXPERIMENT_FIELDS)
        at = {name: join_path(path, name) for name in EXPERIMENT_FIELDS}
        status = self.choice(item.get("status"), at["status"], ExperimentStatus)
        experiment = Experiment(
            id=self.text(item.get("id"), at["id"], required=True) or "",
            name=self.text(item.get("name"), at["name"]) or "",
            arms=self.arms(item.get("arms"), at["arms"]),
            coverage=self.number(item.get("coverage"), at["coverage"], default=1.0),
            namespace=self.namespace(item.get("namespace"), at["namespace"]),
            seed=self.text(item.get("seed"), at["seed"]) or "",
            hash_algorithm=self.choice(item.get("hash_algorithm"), at["hash_algorithm"], HashAlgorithm)
            or HashAlgorithm.MURMUR3,
            bucket_version=self.uint(item.get("bucket_version"), at["bucket_version"]),
            min_bucket_version=self.uint(item.get("min_bucket_version"), at["min_bucket_version"]),
            status=status or ExperimentStatus.DRAFT,
            type=self.choice(item.get("type"), at["type"], ExperimentType) or ExperimentType.ONLINE,
            start_time_ms=self.time(item.get("start_time"), at["start_time"]),
            end_time_ms=self.time(item.get("end_time"), at["end_time"]),
            forced_arms=self.forced_arms(item.get("forced_arms"), at["forced_arms"]),
            condition=self.condition(item.get("condition"), at["condition"]),
            hash_attribute=self.text(item.get("hash_attribute"), at["hash_attribute"]) or "",
            fallback_attribute=self.text(item.get("fallback_attribute"), at["fallback_attribute"]) or "",
            redis_failure_policy=self.choice(
                item.get("redis_failure_policy"), at["redis_failure_policy"], RedisFailurePolicy
            )
            or RedisFailurePolicy.FAIL_CLOSED,
            released_arm_id=self.text(item.get("released_arm_id"), at["released_arm_id"]) or "",
        )
        self.rules(experiment, path, before)
        return FileExperiment(experiment, status, path)

    def rules(self, experiment: Experiment, path: str, before: int) -> None:
        """core.validation's rules, in file paths, unless the field was already reported."""
        reported = [v.field for v in self.violations[before:]]
        for v in experiment_violations(experiment, path + "." if path else ""):
            field = _RANGE_FIELD.sub(lambda m: f"namespace.range[{int(m[1] == 'end')}]", v.field)
            if not any(_within(field, r) or _within(r, field) for r in reported):
                self.bad(field, v.description)

    def growthbook(self, item: Mapping[Any, Any], path: str) -> FileExperiment | None:
        # Imported here so that this module stands without it (it maps a foreign format).
        from assignsvc.documents.growthbook import from_growthbook  # noqa: PLC0415

        try:
            imported = from_growthbook(item, path + "." if path else "")
        except InvalidArgumentError as exc:
            self.violations += exc.violations
            return None
        source = item.get("data", {}).get("object", {}) if "event" in item else item
        has_status = isinstance(source, Mapping) and source.get("status") is not None
        notes = [n for n in imported.notes if has_status or not n.startswith("no status")]
        self.rules(imported.experiment, path, len(self.violations))
        status = imported.experiment.status if has_status else None
        return FileExperiment(imported.experiment, status, path, tuple(notes))

    def text(self, value: object, path: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.bad(path, "is required")
            return None
        return self.given_text(value, path)

    def number(self, value: object, path: str, *, default: float = 0.0) -> float:
        number = None if value is None else self.given_number(value, path)
        return default if number is None else number

    def uint(self, value: object, path: str) -> int:
        if value is None:
            return 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT32:
            self.bad(path, f"must be a whole number from 0 to {MAX_UINT32}, got {show(value)}")
            return 0
        return value

    def choice(self, value: object, path: str, enum: type[E]) -> E | None:
        if value is None:
            return None
        names = [member.value for member in enum]
        if isinstance(value, str) and value.lower() in names:
            return enum(value.lower())
        close = difflib.get_close_matches(str(value).lower(), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.bad(path, f"must be one of {', '.join(names)}, got {show(value)}{hint}")
        return None

    def time(self, value: object, path: str) -> int | None:
        try:
            if value is None:
                return None
            if isinstance(value, str):
                return parse_time(value)
            if isinstance(value, datetime.datetime):
                return _ms(value)
            if isinstance(value, datetime.date):
                raise ValueError(f"needs a time and a UTC offset, e.g. {value.isoformat()}T00:00:00Z")
            raise ValueError(f"must be an RFC 3339 time such as 2025-01-01T00:00:00Z, got {show(value)}")
        except ValueError as exc:
            self.bad(path, str(exc))
            return None

    def arms(self, value: object, path: str) -> tuple[Arm, ...]:
        if value is None:
            self.bad(path, "is required")
            return ()
        if not isinstance(value, list):
            self.bad(path, f"must be a list of arms, got {show(value)}")
            return ()
        arms = []
        for i, item in enumerate(value):
            here = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self.bad(here, f"must be an arm like {{id: control, weight: 0.5}}, got {show(item)}")
                continue
            self.keys(item, here, ARM_FIELDS)
            weight = item.get("weight")
            if weight is None:
                self.bad(f"{here}.weight", "is required")
            arm_id = self.text(item.get("id"), f"{here}.id", required=True) or ""
            arms.append(
                Arm(
                    arm_id,
                    self.text(item.get("name"), f"{here}.name") or "",
                    self.number(weight, f"{here}.weight"),
                    self.arm_value(item.get("value"), arm_id, f"{here}.value"),
                )
            )
        return tuple(arms)

    def arm_value(self, value: object, arm_id: str, path: str) -> str:
        """An arm's value as compact JSON text ("" when absent or the arm id itself)."""
        if value is None or value == arm_id:
            return ""
        try:
            return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            self.bad(path, f"must be a string, a finite number, a boolean or a mapping, got {show(value)}")
            return ""

    def namespace(self, value: object, path: str) -> Namespace | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.bad(path, f"must be a mapping like {{id: checkout, range: [0.0, 0.5]}}, got {show(value)}")
            return None
        self.keys(value, path, NAMESPACE_FIELDS)
        namespace_id = self.text(value.get("id"), f"{path}.id", required=True)
        bounds = value.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            self.bad(f"{path}.range", f"must be [start, end], got {show(bounds)}")
            return None
        start = self.number(bounds[0], f"{path}.range[0]", default=math.nan)
        end = self.number(bounds[1], f"{path}.range[1]", default=math.nan)
        if bounds[0] is None or bounds[1] is None:
            self.bad(f"{path}.range", "must be [start, end], both numbers")
        return Namespace(namespace_id or "", start, end)

    def condition(self, value: object, path: str) -> str:
        """A condition written as a mapping (YAML) or as JSON text: stored as compact JSON text."""
        if value is None:
            return ""
        if isinstance(value, str):
            return canonical_text(value)  # not JSON: left as is, for the rules to report
        if isinstance(value, Mapping):
            try:
                return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:  # a date, a non-string key, NaN: not JSON
                self.bad(path, f"must hold only JSON values: {exc}")
                return ""
        self.bad(path, f"must be a condition (a mapping) or its JSON text, got {show(value)}")
        return ""

    def forced_arms(self, value: object, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, f"must be a mapping of participant id to arm id, got {show(value)}")
            return {}
        forced = {}
        for participant, arm in value.items():
            here = f"{path}[{str(participant)!r}]"
            if not isinstance(participant, str):
                self.bad(here, f"participant ids must be strings, got {show(participant)} (put it in quotes)")
                continue
            arm_id = self.text(arm, here, required=True)
            if arm_id is not None:
                forced[participant] = arm_id
        return forced
