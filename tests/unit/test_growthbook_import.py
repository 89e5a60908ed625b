"""from_growthbook: a GrowthBook experiment imports so that our core assigns exactly as GrowthBook's SDK.

The oracle is the `growthbook` package: each payload is also turned into the SDK's own
Experiment the way GrowthBook's back end builds an experiment-ref feature rule
(key = trackingKey, weights = the last phase's split, seed = phase seed, legacy
namespace tuple), and both must agree on every participant.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import growthbook.core as gbcore
import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assignsvc.core.bucketing import BucketPlan, bucket_ranges, choose_arm
from assignsvc.core.model import ExperimentStatus, HashAlgorithm, Namespace
from assignsvc.core.validation import creation_violations
from assignsvc.documents.growthbook import ImportedExperiment, from_growthbook
from assignsvc.errors import InvalidArgumentError

IDS_PER_PAYLOAD = 10_000


def payload(
    weights: list[float] | None = None,
    *,
    coverage: float = 1.0,
    hash_version: int | None = 2,
    tracking_key: str = "checkout-cta",
    seed: str | None = None,
    namespace: tuple[str, float, float] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A REST API Experiment object, shaped as GrowthBook's toExperimentApiInterface writes it."""
    weights = [0.5, 0.5] if weights is None else weights
    variations = [
        {
            "variationId": f"var_{i}x",
            "key": str(i),
            "name": "Control" if i == 0 else f"Variation {i}",
            "description": "",
            "screenshots": [],
        }
        for i in range(len(weights))
    ]
    phase: dict[str, Any] = {
        "name": "Main",
        "dateStarted": "2024-05-01T00:00:00.000Z",
        "dateEnded": "",
        "reasonForStopping": "",
        "seed": tracking_key if seed is None else seed,
        "coverage": coverage,
        "trafficSplit": [
            {"variationId": v["variationId"], "weight": w} for v, w in zip(variations, weights, strict=True)
        ],
        "targetingCondition": "",
        "savedGroupTargeting": [],
        "prerequisites": [],
    }
    if namespace is not None:
        phase["namespace"] = {"namespaceId": namespace[0], "range": [namespace[1], namespace[2]]}
    doc: dict[str, Any] = {
        "id": "exp_19g61ilvwbv6rl",
        "trackingKey": tracking_key,
        "name": "Checkout CTA",
        "type": "standard",
        "project": "",
        "hypothesis": "",
        "description": "",
        "tags": [],
        "owner": "",
        "archived": False,
        "status": "running",
        "autoRefresh": True,
        "hashAttribute": "id",
        "hashVersion": hash_version,
        "bucketVersion": 1,
        "minBucketVersion": 0,
        "variations": variations,
        "phases": [phase],
        "settings": {},
    }
    doc.update(top)
    return doc


def sdk_experiment(doc: dict[str, Any]) -> GBExperiment[int]:
    """What GrowthBook's back end puts in the SDK payload for this experiment (an experiment-ref rule)."""
    phase = doc["phases"][-1]
    split = {s["variationId"]: s["weight"] for s in phase.get("trafficSplit", [])}
    variations = doc["variations"]
    namespace = phase.get("namespace")
    return GBExperiment(
        key=doc["trackingKey"],
        variations=list(range(len(variations))),
        weights=[split[v["variationId"]] for v in variations] if split else None,
        coverage=phase.get("coverage"),
        hashVersion=doc.get("hashVersion"),
        seed=phase.get("seed") or None,
        namespace=(namespace["namespaceId"], *namespace["range"]) if namespace else None,
        bucketVersion=doc.get("bucketVersion"),
        minBucketVersion=doc.get("minBucketVersion"),
    )


def participant_ids(seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(IDS_PER_PAYLOAD):
        kind = i % 4
        if kind == 0:
            out.append(f"user-{rng.randrange(10**9)}")
        elif kind == 1:
            out.append("".join(rng.choice("abcdef0123456789") for _ in range(32)))
        elif kind == 2:
            out.append("".join(chr(rng.randint(0x80, 0xD7FF)) for _ in range(rng.randint(1, 12))))
        else:
            out.append("u" + "".join(chr(rng.randint(0x1F300, 0x1FAFF)) for _ in range(rng.randint(1, 6))))
    return out


def with_phases(doc: dict[str, Any], *earlier: dict[str, Any]) -> dict[str, Any]:
    doc["phases"] = [*earlier, *doc["phases"]]
    return doc


def shuffled_split(doc: dict[str, Any]) -> dict[str, Any]:
    doc["phases"][-1]["trafficSplit"].reverse()
    return doc


def without_split(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["phases"][-1]["trafficSplit"]
    return doc


PAYLOADS: dict[str, dict[str, Any]] = {
    "two-arms-v2": payload(),
    "third-split-0.333-v1": payload([0.333, 0.333, 0.334], hash_version=1),
    "four-uneven-partial-coverage": payload([0.1, 0.2, 0.3, 0.4], coverage=0.35),
    "namespace-v1-coverage-0.8": payload(
        [0.3333, 0.3333, 0.3334], hash_version=1, coverage=0.8, namespace=("pricing", 0.2, 0.7)
    ),
    "explicit-seed-namespace-v2": payload([0.8, 0.2], seed="reseeded-7f3a", namespace=("ns-b", 0.0, 0.5)),
    "odd-tracking-key-no-hash-version": shuffled_split(
        payload(
            [0.25, 0.5, 0.25], hash_version=None, coverage=0.9, seed="", tracking_key="Checkout flow: new CTA 🎉 #2"
        )
    ),
    "sum-1.005-cut-at-full-coverage": payload([0.5, 0.505]),
    "sum-1.01-three-arms-v1": payload([0.34, 0.34, 0.33], hash_version=1),
    "sum-0.7-sdk-splits-equally": payload([0.35, 0.35], hash_version=1, coverage=0.6),
    "negative-weight-sdk-splits-equally": payload([1.2, -0.2, 0.0]),
    "no-traffic-split-equal": without_split(payload([0.25] * 4)),
    "coverage-above-1-clamped": payload([0.6, 0.4], coverage=1.7),
    "last-phase-wins": with_phases(
        payload([0.2, 0.3, 0.5], coverage=0.5, seed="phase-2"),
        {"name": "Ramp", "coverage": 0.1, "seed": "phase-1", "trafficSplit": []},
    ),
    "bucket-versions": payload([0.5, 0.5], bucketVersion=3, minBucketVersion=2),
}


def imported(doc: dict[str, Any]) -> ImportedExperiment:
    result = from_growthbook(copy.deepcopy(doc))
    assert creation_violations(result.experiment) == []
    return result


class TestSdkParity:
    """Every imported payload assigns 10,000 participants exactly as GrowthBook's SDK run() does."""

    @pytest.mark.parametrize("name", list(PAYLOADS))
    def test_full_sdk_run_agrees(self, name: str) -> None:
        doc = PAYLOADS[name]
        plan = BucketPlan.compile(imported(doc).experiment)
        theirs = sdk_experiment(doc)
        gb = GrowthBook(attributes={})
        mismatches = []
        included = 0
        for pid in participant_ids(list(PAYLOADS).index(name)):
            gb.set_attributes({"id": pid})
            result = gb.run(theirs)
            expected = result.variationId if result.inExperiment else -1
            got = plan.decide(pid).arm_index
            included += got >= 0
            if got != expected:
                mismatches.append((pid, expected, got))
        gb.destroy()
        assert mismatches == []
        assert included > 0

    @pytest.mark.parametrize("name", list(PAYLOADS))
    def test_every_hash_value_lands_in_the_same_arm(self, name: str) -> None:
        """Exhaustive over the hash's range: v1 gives k/1000, v2 gives k/10000."""
        doc = PAYLOADS[name]
        ours = bucket_ranges([a.weight for a in imported(doc).experiment.arms], imported(doc).experiment.coverage)
        theirs = sdk_experiment(doc)
        coverage = 1 if theirs.coverage is None else theirs.coverage
        sdk_ranges = gbcore.getBucketRanges(len(theirs.variations), coverage, theirs.weights)
        steps = 1000 if theirs.hashVersion == 1 else 10000
        for k in range(steps):
            x = k / steps  # exactly the SDK's (n % steps) / steps
            assert choose_arm(x, ours) == gbcore.chooseVariation(x, sdk_ranges), (k, ours, sdk_ranges)

    @pytest.mark.parametrize("weights", [[0.333, 0.333, 0.334], [0.3333, 0.3333, 0.3334], [0.1, 0.2, 0.3, 0.4]])
    def test_weights_summing_to_1_keep_the_sdk_ranges_bit_for_bit(self, weights: list[float]) -> None:
        experiment = imported(payload(weights, coverage=0.77)).experiment
        assert bucket_ranges([a.weight for a in experiment.arms], 0.77) == tuple(
            gbcore.getBucketRanges(len(weights), 0.77, weights)
        )

    def test_rejected_weights_become_the_sdks_equal_weights(self) -> None:
        result = imported(payload([0.35, 0.35]))
        assert [a.weight for a in result.experiment.arms] == gbcore.getEqualWeights(2)
        assert any("splits equally" in note for note in result.notes)

    def test_sdk_shape_is_read_as_the_sdk_reads_it(self) -> None:
        doc: dict[str, Any] = {
            "key": "hero-banner",
            "variations": ["a", "b", "c"],
            "weights": [0.2, 0.3, 0.5],
            "coverage": 0.6,
            "namespace": ["home", 0.1, 0.9],
            "hashVersion": 2,
            "seed": "s-42",
            "status": "running",
            "meta": [{"key": "control", "name": "Control"}, {"key": "blue"}, {"key": "bad key!"}],
        }
        result = imported(doc)
        assert [a.id for a in result.experiment.arms] == ["control", "blue", "bad-key-"]
        plan = BucketPlan.compile(result.experiment)
        gb = GrowthBook(attributes={})
        theirs: GBExperiment[str] = GBExperiment(**copy.deepcopy(doc))
        for pid in participant_ids(99)[:3000]:
            gb.set_attributes({"id": pid})
            run = gb.run(theirs)
            assert plan.decide(pid).arm_index == (run.variationId if run.inExperiment else -1), pid
        gb.destroy()


class TestMapping:
    """Each GrowthBook field lands in the right place of our Experiment."""

    def test_fields(self) -> None:
        result = imported(
            payload(
                [0.8, 0.2],
                hash_version=1,
                coverage=0.4,
                seed="s1",
                namespace=("pricing", 0.25, 0.75),
                bucketVersion=4,
                minBucketVersion=2,
                hashAttribute="deviceId",
                status="running",
            )
        )
        exp = result.experiment
        assert (exp.id, exp.name, exp.seed, exp.coverage) == ("checkout-cta", "Checkout CTA", "s1", 0.4)
        assert exp.hash_algorithm is HashAlgorithm.GROWTHBOOK_V1
        assert exp.namespace == Namespace("pricing", 0.25, 0.75)
        assert (exp.bucket_version, exp.min_bucket_version, exp.status) == (4, 2, ExperimentStatus.RUNNING)
        assert [(a.id, a.name, a.weight) for a in exp.arms] == [("0", "Control", 0.8), ("1", "Variation 1", 0.2)]
        assert result.hash_attribute == "deviceId"
        assert result.notes == ()

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("draft", ExperimentStatus.DRAFT),
            ("running", ExperimentStatus.RUNNING),
            ("stopped", ExperimentStatus.STOPPED),
        ],
    )
    def test_status(self, status: str, expected: ExperimentStatus) -> None:
        assert from_growthbook(payload(status=status)).experiment.status is expected

    def test_a_stopped_experiments_released_variation_is_its_released_arm(self) -> None:
        shipped = from_growthbook(payload(status="stopped", resultSummary={"releasedVariationId": "var_1x"}))
        assert shipped.experiment.released_arm_id == "1" and shipped.notes == ()
        running = from_growthbook(payload(status="running", resultSummary={"releasedVariationId": "var_1x"}))
        assert running.experiment.released_arm_id == ""  # GrowthBook releases only once stopped
        unknown = from_growthbook(payload(status="stopped", resultSummary={"releasedVariationId": "var_9"}))
        assert unknown.experiment.released_arm_id == ""
        assert unknown.notes == (
            "resultSummary.releasedVariationId: 'var_9' names no variation: imported with no released arm",
        )

    def test_seed_is_always_explicit(self) -> None:
        assert from_growthbook(payload(seed="")).experiment.seed == "checkout-cta"
        assert from_growthbook(payload(seed="other")).experiment.seed == "other"

    def test_tracking_key_outside_our_id_set_keeps_its_hash(self) -> None:
        result = from_growthbook(payload(tracking_key="_Checkout flow: new CTA 🎉", seed=""))
        assert result.experiment.id == "Checkout-flow--new-CTA--"
        assert result.experiment.seed == "_Checkout flow: new CTA 🎉"
        assert any(note.startswith("trackingKey: ") for note in result.notes)

    def test_long_tracking_key_is_truncated(self) -> None:
        result = from_growthbook(payload(tracking_key="k" * 150))
        assert result.experiment.id == "k" * 100
        assert result.experiment.seed == "k" * 150

    def test_id_used_when_tracking_key_is_missing_or_unusable(self) -> None:
        doc = payload()
        del doc["trackingKey"]
        assert from_growthbook(doc).experiment.id == "exp_19g61ilvwbv6rl"
        result = from_growthbook(payload(tracking_key="🎉🎉", seed=""))
        assert (result.experiment.id, result.experiment.seed) == ("exp_19g61ilvwbv6rl", "🎉🎉")

    def test_arm_ids_fall_back_to_sanitized_key_then_variation_id_then_index(self) -> None:
        doc = payload([0.25] * 4)
        keys = ["A/B test", "", "!!!", "0"]
        for variation, key in zip(doc["variations"], keys, strict=True):
            variation["key"] = key
        doc["variations"][2]["variationId"] = "var_2x"
        exp = from_growthbook(doc).experiment
        assert [a.id for a in exp.arms] == ["A-B-test", "var_1x", "var_2x", "0"]

    def test_duplicate_arm_ids_are_made_unique(self) -> None:
        doc = payload([0.5, 0.5])
        doc["variations"][1]["key"] = "0"
        assert [a.id for a in from_growthbook(doc).experiment.arms] == ["0", "0-1"]

    def test_disabled_namespace_is_ignored(self) -> None:
        doc = payload(namespace=("pricing", 0.0, 0.5))
        doc["phases"][0]["namespace"]["enabled"] = False
        assert from_growthbook(doc).experiment.namespace is None

    def test_no_phases(self) -> None:
        result = from_growthbook(payload([0.3, 0.7], phases=[]))
        assert [a.weight for a in result.experiment.arms] == [0.5, 0.5]
        assert result.experiment.coverage == 1.0
        assert result.notes

    def test_targeting_condition_and_saved_groups(self) -> None:
        doc = payload(hashAttribute="deviceId", fallbackAttribute="userId")
        doc["phases"][0]["targetingCondition"] = '{"country": "US"}'
        doc["phases"][0]["savedGroupTargeting"] = [
            {"matchType": "any", "savedGroups": ["grp_a", "grp_b"]},
            {"matchType": "none", "savedGroups": ["grp_c"]},
        ]
        result = from_growthbook(doc)
        exp = result.experiment
        assert json.loads(exp.condition) == {
            "$and": [
                {"country": "US"},
                {"$or": [{"deviceId": {"$inGroup": "grp_a"}}, {"deviceId": {"$inGroup": "grp_b"}}]},
                {"$nor": [{"deviceId": {"$inGroup": "grp_c"}}]},
            ]
        }
        assert (exp.hash_attribute, exp.fallback_attribute) == ("deviceId", "userId")
        assert any("savedGroupTargeting[0]" in note for note in result.notes)

    def test_sdk_condition_and_id_attribute(self) -> None:
        result = from_growthbook(
            {
                "key": "k",
                "variations": [0, 1],
                "condition": {"plan": {"$in": ["pro"]}},
                "hashAttribute": "id",
                "fallbackAttribute": "deviceId",
            }
        )
        assert result.experiment.condition == '{"plan":{"$in":["pro"]}}'
        assert (result.experiment.hash_attribute, result.experiment.fallback_attribute) == ("", "")

    @pytest.mark.parametrize(
        ("condition", "start"),
        [
            ('{"a": {"$regex": "("}}', "a.$regex: invalid regex"),
            ("{not json", "is not valid JSON"),
        ],
    )
    def test_bad_targeting_condition(self, condition: str, start: str) -> None:
        doc = payload()
        doc["phases"][0]["targetingCondition"] = condition
        with pytest.raises(InvalidArgumentError) as caught:
            from_growthbook(doc)
        [violation] = caught.value.violations
        assert violation.field == "phases[0].targetingCondition" and violation.description.startswith(start)

    def test_weights_above_1_are_cut_at_1(self) -> None:
        result = from_growthbook(payload([0.6, 0.405, 0.005]))
        assert [a.weight for a in result.experiment.arms] == [0.6, 0.4, 0.0]
        assert creation_violations(result.experiment) == []


class TestWebhookEnvelope:
    """A whole experiment.created / experiment.updated webhook body is unwrapped."""

    @pytest.mark.parametrize("event", ["experiment.created", "experiment.updated"])
    def test_unwraps(self, event: str) -> None:
        body = {
            "event": event,
            "object": "experiment",
            "api_version": "2024-07-31",
            "created": 1720000000000,
            "data": {"object": payload(), "previous_attributes": {"status": "draft"}},
            "user": {"type": "dashboard", "id": "u_1", "email": "a@example.com", "name": "A"},
            "projects": [],
            "tags": [],
            "environments": [],
            "containsSecrets": False,
        }
        assert from_growthbook(body) == from_growthbook(payload())

    def test_notes_name_fields_from_the_body(self) -> None:
        body = {"event": "experiment.created", "data": {"object": payload(tracking_key="a b")}}
        assert from_growthbook(body, "experiments[0].").notes == (
            "experiments[0].data.object.trackingKey: 'a b' imported as experiment id 'a-b' (the seed keeps every arm)",
        )

    def test_other_events_are_refused(self) -> None:
        body = {"event": "experiment.deleted", "data": {"object": payload()}}
        assert fields_of(body) == ["event"]

    def test_missing_object(self) -> None:
        assert fields_of({"event": "experiment.updated", "data": {}}) == ["data.object"]

    def test_inner_fields_are_named_from_the_body(self) -> None:
        body = {"event": "experiment.updated", "data": {"object": payload(hash_version=3)}}
        assert fields_of(body, "experiments[2].") == ["experiments[2].data.object.hashVersion"]


def fields_of(document: object, path: str = "") -> list[str]:
    with pytest.raises(InvalidArgumentError) as caught:
        from_growthbook(document, path)
    return [v.field for v in caught.value.violations]


def mutated(change: Any) -> dict[str, Any]:
    doc = payload([0.25, 0.25, 0.5], namespace=("pricing", 0.0, 0.5))
    change(doc)
    return doc


def _set(path: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

BAD_INPUTS = {
    "no variations": (_set("variations", _DELETE), "variations"),
    "one variation": (
        lambda d: (
            _set("variations", d["variations"][:1])(d),
            _set("phases/0/trafficSplit", d["phases"][0]["trafficSplit"][:1])(d),
        ),
        "variations",
    ),
    "variation not an object": (_set("variations/1", "B"), "variations[1]"),
    "variation key not a string": (_set("variations/0/key", 7), "variations[0].key"),
    "variation without variationId": (_set("variations/2/variationId", _DELETE), "variations[2].variationId"),
    "weight not a number": (_set("phases/0/trafficSplit/1/weight", "0.25"), "phases[0].trafficSplit[1].weight"),
    "weight a boolean": (_set("phases/0/trafficSplit/1/weight", True), "phases[0].trafficSplit[1].weight"),
    "weight missing": (_set("phases/0/trafficSplit/0/weight", _DELETE), "phases[0].trafficSplit[0].weight"),
    "split entry not an object": (_set("phases/0/trafficSplit/2", 0.5), "phases[0].trafficSplit[2]"),
    "split unknown variation": (
        _set("phases/0/trafficSplit/0/variationId", "nope"),
        "phases[0].trafficSplit[0].variationId",
    ),
    "split duplicate variation": (
        _set("phases/0/trafficSplit/1/variationId", "var_0x"),
        "phases[0].trafficSplit[1].variationId",
    ),
    "split missing a variation": (_set("phases/0/trafficSplit/2", _DELETE), "phases[0].trafficSplit"),
    "split not a list": (_set("phases/0/trafficSplit", {"var_0x": 1}), "phases[0].trafficSplit"),
    "weights sum 0.99": (_set("phases/0/trafficSplit/2/weight", 0.49), "phases[0].trafficSplit"),
    "weights sum 1.005 under partial coverage": (
        lambda d: (_set("phases/0/trafficSplit/2/weight", 0.505)(d), _set("phases/0/coverage", 0.5)(d)),
        "phases[0].trafficSplit",
    ),
    "coverage not a number": (_set("phases/0/coverage", "all"), "phases[0].coverage"),
    "hashVersion 3": (_set("hashVersion", 3), "hashVersion"),
    "hashVersion a string": (_set("hashVersion", "2"), "hashVersion"),
    "namespace range one number": (_set("phases/0/namespace/range", [0.2]), "phases[0].namespace.range"),
    "namespace range not a list": (_set("phases/0/namespace/range", "0-0.5"), "phases[0].namespace.range"),
    "namespace range reversed": (_set("phases/0/namespace/range", [0.7, 0.2]), "phases[0].namespace.range"),
    "namespace range text": (_set("phases/0/namespace/range", ["0", 0.5]), "phases[0].namespace.range"),
    "namespace id outside our set": (
        _set("phases/0/namespace/namespaceId", "pricing page"),
        "phases[0].namespace.namespaceId",
    ),
    "namespace id missing": (_set("phases/0/namespace/namespaceId", _DELETE), "phases[0].namespace.namespaceId"),
    "multi-range namespace": (
        _set("phases/0/namespace", {"namespaceId": "pricing", "ranges": [[0, 0.1], [0.5, 0.6]]}),
        "phases[0].namespace.ranges",
    ),
    "namespace not an object": (_set("phases/0/namespace", ["pricing", 0, 1]), "phases[0].namespace"),
    "phases not a list": (_set("phases", {"0": {}}), "phases"),
    "phase not an object": (_set("phases/0", "main"), "phases[0]"),
    "seed not a string": (_set("phases/0/seed", 12), "phases[0].seed"),
    "seed too long": (_set("phases/0/seed", "s" * 300), "phases[0].seed"),
    "status unknown": (_set("status", "paused"), "status"),
    "bucketVersion negative": (_set("bucketVersion", -1), "bucketVersion"),
    "bucketVersion fractional": (_set("bucketVersion", 1.5), "bucketVersion"),
    "minBucketVersion above bucketVersion": (_set("minBucketVersion", 5), "minBucketVersion"),
    "no trackingKey nor id": (lambda d: (d.pop("trackingKey"), d.pop("id")), "trackingKey"),
    "trackingKey without a letter or digit": (lambda d: (_set("trackingKey", "🎉🎉")(d), d.pop("id")), "trackingKey"),
    "hashAttribute not a string": (_set("hashAttribute", ["id"]), "hashAttribute"),
}


class TestBadInput:
    """Bad input is one InvalidArgumentError naming each bad field in GrowthBook's names."""

    @pytest.mark.parametrize("name", list(BAD_INPUTS))
    def test_violation(self, name: str) -> None:
        change, field = BAD_INPUTS[name]
        assert fields_of(mutated(change), "experiments[2].") == [f"experiments[2].{field}"]

    @pytest.mark.parametrize("document", [None, [], "experiment", 3])
    def test_not_an_object(self, document: object) -> None:
        assert fields_of(document, "experiments[2].") == ["experiments[2]"]
        assert fields_of(document) == ["document"]

    def test_every_problem_is_reported_at_once(self) -> None:
        doc = payload(hash_version=7, status="paused")
        doc["phases"][0]["trafficSplit"][0]["weight"] = "x"
        assert sorted(fields_of(doc)) == ["hashVersion", "phases[0].trafficSplit[0].weight", "status"]
        assert fields_of(payload([0.33, 0.33, 0.33], hash_version=3)) == ["hashVersion", "phases[0].trafficSplit"]

    @pytest.mark.parametrize(
        ("doc", "field"),
        [
            ({"key": "k", "variations": [1, 2], "namespace": ["ns", 0.5]}, "namespace"),
            ({"key": "k", "variations": [1, 2], "ranges": [[0, 0.5], [0.5, 1]]}, "ranges"),
            ({"key": "k", "variations": [1, 2], "weights": [0.5, None]}, "weights[1]"),
            ({"key": "k", "variations": [1]}, "variations"),
            ({"key": "", "variations": [1, 2]}, "key"),
        ],
    )
    def test_sdk_shape(self, doc: dict[str, Any], field: str) -> None:
        assert fields_of(doc) == [field]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
FIELDS = [
    "trackingKey",
    "id",
    "name",
    "status",
    "hashVersion",
    "hashAttribute",
    "bucketVersion",
    "minBucketVersion",
    "variations",
    "variations/0",
    "variations/1/key",
    "variations/1/variationId",
    "variations/0/name",
    "phases",
    "phases/0",
    "phases/0/coverage",
    "phases/0/seed",
    "phases/0/trafficSplit",
    "phases/0/trafficSplit/0",
    "phases/0/trafficSplit/1/weight",
    "phases/0/trafficSplit/1/variationId",
    "phases/0/namespace",
    "phases/0/namespace/range",
    "phases/0/namespace/range/0",
    "phases/0/namespace/namespaceId",
    "phases/0/namespace/enabled",
]


class TestNeverCrashes:
    """Whatever JSON sits in any field, the answer is an experiment or InvalidArgumentError."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.sampled_from(FIELDS), JSON), min_size=1, max_size=3))
    def test_fuzzed_fields(self, changes: list[tuple[str, Any]]) -> None:
        doc = payload([0.25, 0.25, 0.5], namespace=("pricing", 0.0, 0.5))
        for field, value in changes:
            try:
                _set(field, value)(doc)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the parent
        try:
            result = from_growthbook(doc)
        except InvalidArgumentError as error:
            assert error.violations
        else:
            assert result.experiment.arms

    @settings(max_examples=60, deadline=None)
    @given(JSON)
    def test_fuzzed_documents(self, document: object) -> None:
        try:
            from_growthbook(document)
        except InvalidArgumentError as error:
            assert error.violations
