"""Experiment <-> JSON, the stored form. Unknown keys are ignored so that an older
replica can read what a newer one wrote during a rolling upgrade."""

from __future__ import annotations

import json
from typing import Any

from assignsvc.core.model import (
    Arm,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    HashAlgorithm,
    Namespace,
    Phase,
    RedisFailurePolicy,
)

FORMAT_VERSION = 1


def experiment_to_json(experiment: Experiment) -> str:
    """Serialize for Redis; compact, stable key order."""
    doc: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "id": experiment.id,
        "name": experiment.name,
        "arms": [_arm_doc(a) for a in experiment.arms],
        "coverage": experiment.coverage,
        "namespace": _namespace_doc(experiment.namespace),
        "seed": experiment.seed,
        "hash_algorithm": experiment.hash_algorithm.value,
        "bucket_version": experiment.bucket_version,
        "min_bucket_version": experiment.min_bucket_version,
        "status": experiment.status.value,
        "type": experiment.type.value,
        "start_time_ms": experiment.start_time_ms,
        "end_time_ms": experiment.end_time_ms,
        "create_time_ms": experiment.create_time_ms,
        "update_time_ms": experiment.update_time_ms,
        "storage_shards": experiment.storage_shards,
        "forced_arms": experiment.forced_arms,
        "revision": experiment.revision,
        "condition": experiment.condition,
        "hash_attribute": experiment.hash_attribute,
        "fallback_attribute": experiment.fallback_attribute,
        "redis_failure_policy": experiment.redis_failure_policy.value,
    }
    # Written only when set, so that an experiment without phases or a release is stored
    # byte for byte as before they existed.
    if experiment.phase:
        doc["phase"] = experiment.phase
        doc["phase_start_ms"] = experiment.phase_start_ms
        doc["past_phases"] = [_phase_doc(p) for p in experiment.past_phases]
    if experiment.released_arm_id:
        doc["released_arm_id"] = experiment.released_arm_id
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _arm_doc(arm: Arm) -> dict[str, Any]:
    """An arm's stored form; "value" only when one was set, so that an experiment without
    values is stored byte for byte as before values existed."""
    doc: dict[str, Any] = {"id": arm.id, "name": arm.name, "weight": arm.weight}
    if arm.value:
        doc["value"] = arm.value
    return doc


def _namespace_doc(ns: Namespace | None) -> dict[str, Any] | None:
    return None if ns is None else {"id": ns.id, "start": ns.start, "end": ns.end}


def _namespace(doc: dict[str, Any] | None) -> Namespace | None:
    return None if doc is None else Namespace(doc["id"], float(doc["start"]), float(doc["end"]))


def _phase_doc(phase: Phase) -> dict[str, Any]:
    return {
        "number": phase.number,
        "start_ms": phase.start_time_ms,
        "weights": list(phase.weights),
        "coverage": phase.coverage,
        "namespace": _namespace_doc(phase.namespace),
    }


def _phase(doc: dict[str, Any]) -> Phase:
    weights = tuple(float(w) for w in doc["weights"])
    return Phase(
        int(doc["number"]), int(doc["start_ms"]), weights, float(doc["coverage"]), _namespace(doc["namespace"])
    )


def experiment_from_json(text: str | bytes) -> Experiment:
    """Parse what experiment_to_json wrote (floats round-trip exactly through JSON)."""
    doc = json.loads(text)
    return Experiment(
        id=doc["id"],
        name=doc["name"],
        # written before arm values existed: no "value" key, the arm id is the value
        arms=tuple(Arm(a["id"], a["name"], float(a["weight"]), a.get("value") or "") for a in doc["arms"]),
        coverage=float(doc["coverage"]),
        namespace=_namespace(doc.get("namespace")),
        seed=doc["seed"],
        hash_algorithm=HashAlgorithm(doc["hash_algorithm"]),
        bucket_version=int(doc["bucket_version"]),
        min_bucket_version=int(doc["min_bucket_version"]),
        status=ExperimentStatus(doc["status"]),
        type=ExperimentType(doc["type"]),
        start_time_ms=doc["start_time_ms"],
        end_time_ms=doc["end_time_ms"],
        create_time_ms=int(doc["create_time_ms"]),
        update_time_ms=int(doc["update_time_ms"]),
        storage_shards=int(doc["storage_shards"]),
        forced_arms=dict(doc.get("forced_arms") or {}),
        revision=int(doc.get("revision", 0)),  # written before revisions existed: 0
        # written before targeting existed: everyone eligible, the participant id hashed
        condition=doc.get("condition") or "",
        hash_attribute=doc.get("hash_attribute") or "",
        fallback_attribute=doc.get("fallback_attribute") or "",
        # written before the policy existed: fail closed, as every experiment did then
        redis_failure_policy=RedisFailurePolicy(doc.get("redis_failure_policy") or "fail_closed"),
        # written before phases existed: phase 0, whose counters are the plain arm fields
        phase=int(doc.get("phase", 0)),
        phase_start_ms=int(doc.get("phase_start_ms", 0)),
        past_phases=tuple(_phase(p) for p in doc.get("past_phases") or ()),
        released_arm_id=doc.get("released_arm_id") or "",
    )
