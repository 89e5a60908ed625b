"""The pure webhook formats: the event mapping of each seed system, its body and signature,
the GrowthBook shape as the inverse of the GrowthBook import, and the bad-input rules."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from assignsvc.core import growthbook_shape
from assignsvc.core.events import EVENT_TYPES, canonical_json, envelope, event_data
from assignsvc.core.model import HashAlgorithm
from assignsvc.core.signing import format_secret
from assignsvc.core.webhook_formats import (
    ASSIGNSVC,
    EPPO,
    EVIDENTIAL,
    FORMATS,
    GROWTHBOOK,
    INTELLIGEMS,
    Event,
    carried,
    filter_violations,
    format_violations,
    limits,
    render,
    rfc3339,
    signed,
)
from assignsvc.documents.growthbook import from_growthbook

SECRET = format_secret(bytes(range(32)))
EXPERIMENT: dict[str, Any] = {
    "id": "checkout",
    "name": "Checkout button",
    "arms": [
        {"id": "control", "name": "Control", "weight": 0.25, "value": "blue"},
        {"id": "green", "name": "Green", "weight": 0.75},
    ],
    "coverage": 0.8,
    "namespace": {"id": "ns1", "range_start": 0.1, "range_end": 0.6},
    "seed": "seed-1",
    "hash_algorithm": "HASH_ALGORITHM_GROWTHBOOK_V2",
    "bucket_version": 3,
    "min_bucket_version": 2,
    "status": "EXPERIMENT_STATUS_RUNNING",
    "start_time": "2026-11-01T00:00:00Z",
    "create_time": "2026-10-31T00:00:00Z",
    "update_time": "2026-11-02T00:00:00Z",
    "condition": '{"country":"NL"}',
    "hash_attribute": "device",
}
DETAILS: dict[str, dict[str, Any]] = {
    "experiment.created": {},
    "experiment.updated": {"changes": [{"field": "name", "old": "Old", "new": "Checkout button"}]},
    "experiment.status.updated": {"action": "started", "previous_status": "DRAFT"},
    "experiment.rerandomized": {"previous_bucket_version": 2},
    "experiment.deleted": {},
    "experiment.warning": {"warning": {"type": "srm", "p_value": 1e-9, "threshold": 0.001}},
}


def event(event_type: str, experiment: dict[str, Any] | None = None, **detail: Any) -> Event:
    source = EXPERIMENT if experiment is None else experiment
    return Event("evt_1", event_type, 1_795_387_968_663, source, detail or DETAILS[event_type], "default", "/x")


def body_of(format_name: str, e: Event) -> dict[str, Any]:
    rendered = render(format_name, e)
    assert rendered.body, rendered.not_sent
    parsed: dict[str, Any] = json.loads(rendered.body)
    return parsed


class TestAssignsvc:
    """The default format is today's body, byte for byte."""

    @pytest.mark.parametrize("event_type", sorted(DETAILS))
    def test_same_bytes_as_the_envelope(self, event_type: str) -> None:
        e = event(event_type)
        expected = canonical_json(
            envelope("evt_1", event_type, rfc3339(e.created_ms), event_data(EXPERIMENT, DETAILS[event_type]))
        )
        assert render(ASSIGNSVC, e).body == expected

    def test_test_event(self) -> None:
        e = Event("evt_2", "webhook.test", 0, None, {"object": {"webhook_id": "wh_1"}})
        assert json.loads(render(ASSIGNSVC, e).body)["data"] == {"object": {"webhook_id": "wh_1"}}

    def test_sign_body_as_before(self) -> None:
        body = render(ASSIGNSVC, event("experiment.created")).body
        assert signed(ASSIGNSVC, body, SECRET) == (body, {})
        with_signature, headers = signed(ASSIGNSVC, body, SECRET, sign_body=True)
        assert headers == {} and with_signature.startswith(body[:-1]) and '"signature":"' in with_signature


class TestEventNames:
    """Each format's table: the events it carries and the reason for the others."""

    def test_carried(self) -> None:
        assert carried(ASSIGNSVC) == EVENT_TYPES
        assert carried(EVIDENTIAL) == ("experiment.created", "experiment.status.updated")
        assert "experiment.warning" not in carried(INTELLIGEMS) and "webhook.test" in carried(INTELLIGEMS)
        assert "webhook.test" not in carried(EPPO) + carried(GROWTHBOOK) + carried(EVIDENTIAL)

    @pytest.mark.parametrize(
        ("format_name", "event_type", "detail", "name"),
        [
            (EPPO, "experiment.created", {}, "experiment.configuration.updated"),
            (EPPO, "experiment.status.updated", {"action": "paused"}, "experiment.status.updated"),
            (EPPO, "experiment.deleted", {}, "experiment.status.updated"),
            (EPPO, "experiment.warning", DETAILS["experiment.warning"], "experiment.calculated_metrics.updated"),
            (INTELLIGEMS, "experiment.status.updated", {"action": "started"}, "start"),
            (INTELLIGEMS, "experiment.status.updated", {"action": "resumed"}, "start"),
            (INTELLIGEMS, "experiment.status.updated", {"action": "paused"}, "pause"),
            (INTELLIGEMS, "experiment.status.updated", {"action": "stopped"}, "end"),
            (INTELLIGEMS, "experiment.rerandomized", {"previous_bucket_version": 0}, "update"),
            (GROWTHBOOK, "experiment.status.updated", {"action": "stopped"}, "experiment.updated"),
            (GROWTHBOOK, "experiment.deleted", {}, "experiment.deleted"),
            (EVIDENTIAL, "experiment.status.updated", {"action": "started", "previous_status": "DRAFT"}, "created"),
        ],
    )
    def test_nearest_event(self, format_name: str, event_type: str, detail: dict[str, Any], name: str) -> None:
        assert render(format_name, event(event_type, **detail)).event.endswith(name)

    @pytest.mark.parametrize(
        ("format_name", "event_type", "detail", "words"),
        [
            (EVIDENTIAL, "experiment.updated", {"changes": []}, "no event for experiment.updated"),
            (EVIDENTIAL, "experiment.status.updated", {"action": "resumed", "previous_status": "PAUSED"}, "once"),
            (INTELLIGEMS, "experiment.warning", DETAILS["experiment.warning"], "no event for experiment.warning"),
            (GROWTHBOOK, "experiment.warning", {"warning": {"type": "other"}}, "sample-ratio"),
        ],
    )
    def test_not_sent_says_why(self, format_name: str, event_type: str, detail: dict[str, Any], words: str) -> None:
        rendered = render(format_name, event(event_type, **detail))
        assert rendered.body == "" and rendered.not_sent.startswith("not sent: ") and words in rendered.not_sent

    def test_evidential_sends_a_created_draft_only_when_it_starts(self) -> None:
        draft = {**EXPERIMENT, "status": "EXPERIMENT_STATUS_DRAFT"}
        assert "when it starts" in render(EVIDENTIAL, event("experiment.created", draft)).not_sent
        assert render(EVIDENTIAL, event("experiment.created")).event == "experiment.created"

    def test_test_event_of_a_format_without_one(self) -> None:
        e = Event("evt_2", "webhook.test", 0, None, {"object": {"webhook_id": "wh_1"}})
        assert "no event for webhook.test" in render(EPPO, e).not_sent
        assert json.loads(render(INTELLIGEMS, e).body)["action_type"] == "test"


class TestBadInput:
    """Unknown formats and filters naming events a format cannot carry list the valid values."""

    def test_unknown_format(self) -> None:
        [violation] = format_violations("svix")
        assert violation.field == "webhook.format" and all(f in violation.description for f in FORMATS)
        assert format_violations(EPPO) == []

    def test_filter(self) -> None:
        [violation] = filter_violations(EVIDENTIAL, ["experiment.created", "experiment.updated"])
        assert violation.field == "webhook.events[1]"
        assert "experiment.created, experiment.status.updated" in violation.description
        assert filter_violations(EPPO, ["experiment.updated", "experiment.warning"]) == []


class TestEppo:
    """{event, data: {experiment_id, experiment_key}, signature}: HMAC of data as JSON.stringify writes it."""

    def test_body_and_signature_as_eppo_documents_them(self) -> None:
        body, headers = signed(EPPO, render(EPPO, event("experiment.updated")).body, SECRET)
        doc = json.loads(body)
        assert list(doc) == ["event", "data", "signature"] and headers == {}
        assert doc["data"] == {"experiment_id": "checkout", "experiment_key": "checkout"}
        restringified = json.dumps(doc["data"], separators=(",", ":"), ensure_ascii=False)
        expected = hmac.new(SECRET.encode(), restringified.encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(doc["signature"], expected)

    def test_traffic_imbalance(self) -> None:
        meta = body_of(EPPO, event("experiment.warning"))["data"]["meta_data"]
        assert meta["is_traffic_imbalance"] is True and meta["status"] == "success"

    def test_a_body_of_another_format_is_sent_unsigned(self) -> None:
        evidential = render(EVIDENTIAL, event("experiment.created")).body
        assert signed(EPPO, evidential, SECRET) == (evidential, {})


class TestIntelligems:
    """Experience events, hex HMAC of the raw body in a header, 10 s and 5 attempts."""

    def test_body_header_and_limits(self) -> None:
        raw = render(INTELLIGEMS, event("experiment.created")).body
        body, headers = signed(INTELLIGEMS, raw, SECRET)
        assert body == raw
        expected = hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
        assert headers == {"X-Intelligems-Signature": expected}
        doc = json.loads(raw)
        assert (doc["action_type"], doc["experience_id"], doc["experience_name"]) == (
            "create",
            "checkout",
            "Checkout button",
        )
        assert (limits(INTELLIGEMS).timeout_s, limits(INTELLIGEMS).max_attempts) == (10.0, 5)
        assert limits(EPPO).max_attempts is None


class TestEvidential:
    """Evidential's commit webhook body: ids and the experiment's URL at the top."""

    def test_body(self) -> None:
        doc = body_of(EVIDENTIAL, event("experiment.created"))
        assert doc == {
            "type": "experiment.created",
            "organization_id": "default",
            "datasource_id": "default",
            "experiment_id": "checkout",
            "experiment_url": "/x",
        }


class TestGrowthBook:
    """The envelope and an experiment object the GrowthBook import reads back unchanged."""

    def test_envelope(self) -> None:
        doc = body_of(GROWTHBOOK, event("experiment.status.updated"))
        assert list(doc) == [
            "event",
            "object",
            "api_version",
            "created",
            "data",
            "user",
            "tags",
            "environments",
            "containsSecrets",
        ]
        assert (doc["event"], doc["object"], doc["created"]) == ("experiment.updated", "experiment", 1_795_387_968_663)
        assert doc["data"]["previous_attributes"] == {"status": "draft"}
        assert doc["containsSecrets"] is False and doc["user"] is None

    def test_the_import_reads_the_object_back(self) -> None:
        doc = body_of(GROWTHBOOK, event("experiment.created"))
        imported = from_growthbook(doc)
        x = imported.experiment
        assert (x.id, x.seed, x.coverage, x.bucket_version, x.min_bucket_version) == ("checkout", "seed-1", 0.8, 3, 2)
        assert x.hash_algorithm is HashAlgorithm.GROWTHBOOK_V2 and x.hash_attribute == "device"
        assert [(a.id, a.weight) for a in x.arms] == [("control", 0.25), ("green", 0.75)]
        assert x.namespace is not None and (x.namespace.id, x.namespace.start, x.namespace.end) == ("ns1", 0.1, 0.6)
        assert json.loads(x.condition) == {"country": "NL"} and x.arms[0].value == '"blue"'

    def test_murmur3_has_no_hash_version(self) -> None:
        shape = growthbook_shape.experiment_object({**EXPERIMENT, "hash_algorithm": "HASH_ALGORITHM_MURMUR3"})
        assert "hashVersion" not in shape

    def test_phases_and_released_arm_pass_through(self) -> None:
        phased = {
            **EXPERIMENT,
            "phases": [  # as the Experiment message's JSON names them (Phase)
                {"phase": 0, "start_time": "2026-11-01T00:00:00Z", "weights": [0.5, 0.5], "coverage": 0.8},
                {"phase": 1, "start_time": "2026-11-05T00:00:00Z", "weights": [0.25, 0.75], "coverage": 0.8},
            ],
            "released_arm_id": "green",
        }  # fmt: skip
        shape = growthbook_shape.experiment_object(phased)
        first, current = shape["phases"]
        assert [s["weight"] for s in first["trafficSplit"]] == [0.5, 0.5]
        assert first["dateEnded"] == "2026-11-05T00:00:00Z"
        assert [s["weight"] for s in current["trafficSplit"]] == [0.25, 0.75]
        assert current["dateStarted"] == "2026-11-05T00:00:00Z"
        assert (first["name"], current["name"]) == ("Phase 0", "Phase 1")
        assert "namespace" not in first and "namespace" not in current  # their own: none, whatever the experiment's
        assert shape["resultSummary"]["releasedVariationId"] == "green"

    def test_warning(self) -> None:
        doc = body_of(GROWTHBOOK, event("experiment.warning"))
        assert doc["data"]["object"] == {
            "type": "srm",
            "experimentName": "Checkout button",
            "experimentId": "checkout",
            "threshold": 0.001,
        }

    def test_deleted_is_archived(self) -> None:
        assert body_of(GROWTHBOOK, event("experiment.deleted"))["data"]["object"]["archived"] is True
