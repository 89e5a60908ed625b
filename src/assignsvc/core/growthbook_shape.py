"""An experiment (as the API returns it) in GrowthBook's REST experiment shape.

The inverse of documents/growthbook.py's import, for the `growthbook` webhook format: a
receiver written for GrowthBook's `experiment.*` webhooks reads `data.object` as it
would from GrowthBook. Importing the object again gives back the same seed, hash
version, weights, coverage, namespace and bucket versions, so the arms it describes are
the ones assignsvc assigns (for the GrowthBook hash algorithms; MURMUR3 has no
GrowthBook hash version, so such objects carry none). Keys this module does not know
(`phases`, `released_arm_id`, added by newer versions) are mapped when present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assignsvc.core.scoping import local_part

# Our status -> GrowthBook's (draft | running | stopped). Paused takes no new
# participants, which GrowthBook can only say as stopped.
STATUSES = {
    "EXPERIMENT_STATUS_DRAFT": "draft",
    "EXPERIMENT_STATUS_RUNNING": "running",
    "EXPERIMENT_STATUS_PAUSED": "stopped",
    "EXPERIMENT_STATUS_STOPPED": "stopped",
}
_SHORT_STATUSES = {name.removeprefix("EXPERIMENT_STATUS_"): gb for name, gb in STATUSES.items()}
HASH_VERSIONS = {"HASH_ALGORITHM_GROWTHBOOK_V1": 1, "HASH_ALGORITHM_GROWTHBOOK_V2": 2}


def status_of(status: str) -> str:
    """GrowthBook's status for ours, given as `EXPERIMENT_STATUS_X` or `X` ('' if unknown)."""
    return STATUSES.get(status) or _SHORT_STATUSES.get(status, "")


def experiment_object(experiment: Mapping[str, Any], *, archived: bool = False) -> dict[str, Any]:
    """GrowthBook's experiment object; its last phase is the split that runs now."""
    arms: Sequence[Mapping[str, Any]] = experiment.get("arms", [])
    experiment_id = local_part(str(experiment.get("id", "")))
    out: dict[str, Any] = {
        "id": experiment_id,
        "trackingKey": experiment_id,
        "dateCreated": experiment.get("create_time"),
        "dateUpdated": experiment.get("update_time"),
        "name": experiment.get("name") or experiment_id,
        "type": "standard",
        "project": "",
        "hypothesis": "",
        "description": "",
        "tags": [],
        "owner": "",
        "archived": archived,
        "status": status_of(str(experiment.get("status", ""))) or "draft",
        "autoRefresh": False,
        "hashAttribute": experiment.get("hash_attribute") or "id",
        "disableStickyBucketing": False,  # assignsvc's arms are always sticky
        "bucketVersion": int(experiment.get("bucket_version", 0)),
        "minBucketVersion": int(experiment.get("min_bucket_version", 0)),
        "variations": [_variation(arm) for arm in arms],
        "phases": _phases(experiment, arms),
        "settings": {},
    }
    if experiment.get("fallback_attribute"):
        out["fallbackAttribute"] = experiment["fallback_attribute"]
    version = HASH_VERSIONS.get(str(experiment.get("hash_algorithm", "")))
    if version is not None:
        out["hashVersion"] = version
    released = experiment.get("released_arm_id")
    if released:
        out["resultSummary"] = {
            "status": "won",
            "winner": released,
            "conclusions": "",
            "releasedVariationId": released,
            "excludeFromPayload": False,
        }
    return out


def _variation(arm: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "variationId": arm.get("id"),
        "key": arm.get("id"),
        "name": arm.get("name") or arm.get("id"),
        "description": "",
        "screenshots": [],
    }
    if "value" in arm:
        out["value"] = arm["value"]
    return out


def _phases(experiment: Mapping[str, Any], arms: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every phase from `phases` (the current one last) when the experiment has them, each
    with its own split and each ended by the next one's start; else one phase, "Main", from
    the experiment's own split."""
    given = [p for p in experiment.get("phases") or () if isinstance(p, Mapping)]
    if len(given) < 2:
        return [_phase(experiment, arms, experiment)]
    mapped = [_phase(p, arms, experiment) for p in given]
    for phase, following in zip(mapped, given[1:], strict=False):
        phase["dateEnded"] = following.get("start_time")
    return mapped


def _phase(
    source: Mapping[str, Any], arms: Sequence[Mapping[str, Any]], experiment: Mapping[str, Any]
) -> dict[str, Any]:
    """One phase: a Phase entry's own split (proto JSON leaves out a zero coverage and an
    absent namespace), or the experiment's when `source` is the experiment itself."""
    own = source is experiment
    weights = _weights(source, arms)
    namespace = source.get("namespace")
    phase: dict[str, Any] = {
        "name": "Main" if own else _phase_name(source, 0),
        "dateStarted": (experiment.get("start_time") if own else None)
        or source.get("start_time")
        or experiment.get("create_time"),
        "dateEnded": None,
        "reasonForStopping": "",
        "seed": experiment.get("seed") or local_part(str(experiment.get("id", ""))),
        "coverage": float(source.get("coverage", 1.0 if own else 0.0)),
        "trafficSplit": [{"variationId": arm.get("id"), "weight": w} for arm, w in zip(arms, weights, strict=True)],
        "targetingCondition": experiment.get("condition") or "",
        "prerequisites": [],
        "savedGroupTargeting": [],
    }
    if isinstance(namespace, Mapping) and namespace.get("id"):
        phase["namespace"] = {
            "namespaceId": namespace["id"],
            "range": [float(namespace.get("range_start", 0.0)), float(namespace.get("range_end", 0.0))],
        }
    return phase


def _phase_name(phase: Mapping[str, Any], index: int) -> str:
    number = phase.get("phase", phase.get("number", index))
    return str(phase.get("name") or f"Phase {number}")


def _weights(source: Mapping[str, Any], arms: Sequence[Mapping[str, Any]]) -> list[float]:
    """Weights in arm order: a phase's `weights` (list, or arm id -> weight), its `arms`, or the arms'."""
    given = source.get("weights")
    if isinstance(given, list) and len(given) == len(arms):
        return [float(w) for w in given]
    by_id: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    phase_arms = source.get("arms")
    if not by_id and isinstance(phase_arms, list):
        by_id = {str(a.get("id")): a.get("weight", 0.0) for a in phase_arms if isinstance(a, Mapping)}
    return [float(by_id.get(str(arm.get("id")), arm.get("weight", 0.0))) for arm in arms]
