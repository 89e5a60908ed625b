"""Evidential's client routes under /evidential/v1 on a live server: the response fields, the
CSV header and column order, `assignment: null` with 200, the 404 body, Cache-Control,
create_if_none, max_age and assign_with_filters, as Evidential's own API answers them."""

from __future__ import annotations

import dataclasses
import time

import pytest

from assignsvc.config import ServerConfig
from tests.support import free_port
from tests.support.http import call

ASSIGNMENT_RESPONSE_FIELDS = ["experiment_id", "participant_id", "assignment"]
ASSIGNMENT_FIELDS = [
    "arm_id",
    "participant_id",
    "cluster_key",
    "arm_name",
    "created_at",
    "strata",
    "observed_at",
    "outcome",
    "autofailed_outcome",
    "context_values",
]
BULK_FIELDS = ["balance_check", "experiment_id", "assignments", "sample_size"]
BULK_ROW_FIELDS = [
    "participant_id",
    "arm_id",
    "arm_name",
    "created_at",
    "strata",
    "observed_at",
    "outcome",
    "context_values",
]
CONFIG_FIELDS = {
    "experiment_id",
    "datasource_id",
    "state",
    "stopped_assignments_at",
    "stopped_assignments_reason",
    "design_spec",
    "power_analyses",
    "assign_summary",
    "webhooks",
    "decision",
    "impact",
}
NOT_FOUND = {"detail": "Experiment not found or not authorized."}
ARMS = [{"id": "control", "weight": 0.5}, {"id": "treatment", "weight": 0.5}]


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, http_port=free_port())


def create(base: str, experiment_id: str, **fields: object) -> None:
    body = {"id": experiment_id, "arms": ARMS, "status": "EXPERIMENT_STATUS_RUNNING", **fields}
    assert call("POST", base + "/v1/experiments", body).status == 200


def test_a_participant_is_assigned_on_the_fly_with_evidentials_fields(base: str) -> None:
    create(base, "online")
    url = base + "/evidential/v1/experiments/online/assignments/1"
    first = call("GET", url)
    assert first.status == 200
    body = first.json()
    assert list(body) == ASSIGNMENT_RESPONSE_FIELDS
    assert list(body["assignment"]) == ASSIGNMENT_FIELDS
    assert (body["experiment_id"], body["participant_id"]) == ("online", "1")
    assert body["assignment"]["arm_id"] in ("control", "treatment")
    assert body["assignment"]["arm_name"] == body["assignment"]["arm_id"]
    assert body["assignment"]["strata"] == [] and body["assignment"]["created_at"].endswith("Z")
    assert first.headers["cache-control"] == "private, max-age=3600"
    assert call("GET", url).json() == body  # sticky


def test_create_if_none_and_max_age(base: str) -> None:
    create(base, "e")
    url = base + "/evidential/v1/experiments/e/assignments/"
    lookup = call("GET", url + "new?create_if_none=false")
    assert (lookup.status, lookup.json()["assignment"]) == (200, None) and "cache-control" not in lookup.headers
    assert "cache-control" not in call("GET", url + "p?max_age=0").headers
    assert call("GET", url + "p?max_age=100").headers["cache-control"] == "private, max-age=100"
    bad = call("GET", url + "p?max_age=-100")
    assert bad.status == 422 and bad.json()["detail"][0]["loc"] == ["query", "max_age"]
    assert call("GET", url + "p?create_if_none=maybe").status == 422
    found = call("GET", url + "p?create_if_none=false").json()["assignment"]
    assert found is not None and found["participant_id"] == "p"


def test_unknown_experiments_are_404_with_evidentials_body(base: str) -> None:
    for path in (
        "/nope",
        "/nope/assignments",
        "/nope/assignments/csv",
        "/nope/assignments/1",
        "/bad%20id/assignments/1",
    ):
        reply = call("GET", base + "/evidential/v1/experiments" + path)
        assert (reply.status, reply.json()) == (404, NOT_FOUND), path


def test_not_assigned_is_200_with_null(base: str) -> None:
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    create(base, "ended", startTime="2020-01-01T00:00:00Z", endTime=past)
    reply = call("GET", base + "/evidential/v1/experiments/ended/assignments/1")
    assert (reply.status, reply.json()["assignment"]) == (200, None)
    config = call("GET", base + "/evidential/v1/experiments/ended").json()
    assert config["stopped_assignments_reason"] == "end_date" and config["stopped_assignments_at"].startswith(past[:10])


def test_experiment_config_and_list(base: str) -> None:
    create(base, "cfg", name="Checkout")
    call("GET", base + "/evidential/v1/experiments/cfg/assignments/u1")
    config = call("GET", base + "/evidential/v1/experiments/cfg").json()
    assert set(config) == CONFIG_FIELDS
    assert (config["state"], config["stopped_assignments_reason"]) == ("committed", None)
    spec = config["design_spec"]
    assert spec["experiment_type"] == "freq_online" and spec["experiment_name"] == "Checkout"
    assert [(a["arm_id"], a["arm_weight"]) for a in spec["arms"]] == [("control", 50.0), ("treatment", 50.0)]
    assert config["assign_summary"]["sample_size"] == 1
    listed = call("GET", base + "/evidential/v1/experiments").json()
    assert list(listed) == ["items"] and [item["experiment_id"] for item in listed["items"]] == ["cfg"]


def test_bulk_json_and_csv(base: str) -> None:
    create(base, "bulk")
    for i in range(10):
        call("GET", base + f"/evidential/v1/experiments/bulk/assignments/p{i}")
    bulk = call("GET", base + "/evidential/v1/experiments/bulk/assignments")
    document = bulk.json()
    assert list(document) == BULK_FIELDS and document["sample_size"] == 10
    assert all(list(row) == BULK_ROW_FIELDS for row in document["assignments"])
    single = call("GET", base + "/evidential/v1/experiments/bulk/assignments/p3").json()["assignment"]
    row = next(r for r in document["assignments"] if r["participant_id"] == "p3")
    assert (row["arm_id"], row["created_at"]) == (single["arm_id"], single["created_at"])
    csv_reply = call("GET", base + "/evidential/v1/experiments/bulk/assignments/csv")
    assert csv_reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_reply.headers["content-disposition"] == 'attachment; filename="experiment_bulk_assignments.csv"'
    text = csv_reply.body.decode()
    assert "\r" not in text
    header, *rows = text.splitlines()
    assert header == "participant_id,arm_id,arm_name,created_at" and len(rows) == 10
    assert all(len(r.split(",")[3]) == len("2025-01-01T00:00:00Z") for r in rows)


def test_csv_strata_columns_sorted_with_minimal_quoting(base: str) -> None:
    create(base, "strat", type="EXPERIMENT_TYPE_PREASSIGNED")
    body = b'participant_id,gender,ethnicity\np1,F,Asian\np2,M,"esc,aped"\n'
    assert (
        call("POST", base + "/v1/experiments/strat/assignments:preassign", raw=body, content_type="text/csv").status
        == 200
    )
    header, *rows = call("GET", base + "/evidential/v1/experiments/strat/assignments/csv").body.decode().splitlines()
    assert header == "participant_id,arm_id,arm_name,created_at,ethnicity,gender"
    assert any(r.startswith("p2,") and r.endswith(',"esc,aped",M') for r in rows)
    assert any(r.startswith("p1,") and r.endswith(",Asian,F") for r in rows)
    document = call("GET", base + "/evidential/v1/experiments/strat/assignments").json()
    p1 = next(r for r in document["assignments"] if r["participant_id"] == "p1")
    assert p1["strata"] == [
        {"field_name": "ethnicity", "strata_value": "Asian"},
        {"field_name": "gender", "strata_value": "F"},
    ]
    missing = call("GET", base + "/evidential/v1/experiments/strat/assignments/unassigned_id").json()
    assert missing["assignment"] is None


def test_assign_with_filters_uses_the_properties_as_attributes(base: str) -> None:
    create(base, "filtered", condition='{"current_income": {"$gte": 1000, "$lte": 5000}}')
    url = base + "/evidential/v1/experiments/filtered/assignments/{}/assign_with_filters"
    ok = call(  # no Content-Type header at all (urllib would send a form type)
        "POST",
        url.format("rich"),
        raw=b'{"properties":[{"field_name":"current_income","value":2500}]}',
        content_type=None,
    )
    assert ok.status == 200 and ok.json()["assignment"]["arm_id"] in ("control", "treatment")
    poor = call("POST", url.format("poor"), {"properties": [{"field_name": "current_income", "value": 10}]})
    assert (poor.status, poor.json()["assignment"]) == (200, None)
    extra = call("POST", url.format("x"), {"properties": [], "colour": "red"})
    assert extra.status == 422
