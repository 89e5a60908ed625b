"""The transcoded v1 API over HTTP/JSON on a live server: routes from the annotations,
proto3 JSON bodies, google.rpc.Status errors with AIP-193's HTTP statuses, streamed
NDJSON and CSV, bad input answered precisely (never a 500), health, drain and metrics."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from assignsvc.api.http.routes import all_routes, services
from assignsvc.config import ServerConfig
from tests.support import Client, ServerThread, free_port
from tests.support.http import call

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
TWO_ARMS = [{"id": "a", "weight": 0.5}, {"id": "b", "weight": 0.5}]


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """The shared test config with the HTTP edge (and metrics) on."""
    return dataclasses.replace(server_config, http_port=free_port(), metrics_port=free_port())


def violations(body: dict[str, object]) -> list[str]:
    """The fields of the BadRequest detail of a Status JSON."""
    details = body.get("details", [])
    assert isinstance(details, list)
    return [v["field"] for d in details if d["@type"] == BAD_REQUEST for v in d["fieldViolations"]]


def create(base: str, experiment_id: str, **fields: object) -> dict[str, Any]:
    body = {"id": experiment_id, "arms": TWO_ARMS, "status": "EXPERIMENT_STATUS_RUNNING", **fields}
    reply = call("POST", base + "/v1/experiments", body)
    assert reply.status == 200, reply.body
    return dict(reply.json()["experiment"])


class TestRoutes:
    def test_every_rpc_has_an_http_rule(self) -> None:
        annotated = {route.full_method for route in all_routes()}
        every = {f"/{s.full_name}/{m.name}" for s in services() for m in s.methods}
        assert annotated == every

    def test_openapi_lists_exactly_the_routes_served(self, base: str, server: ServerThread) -> None:
        document = call("GET", base + "/openapi.json").json()
        documented = {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}
        assert server.running is not None and server.running.http is not None
        served = {
            (route.method, route.resource.canonical.replace("__", "."))
            for route in server.running.http.app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith("/v1/") and route.method != "HEAD"
        }
        assert documented == served
        assert document["openapi"].startswith("3.")
        assert "assignsvc.v1.Experiment" in document["components"]["schemas"]

    def test_health_and_request_ids(self, base: str) -> None:
        assert call("GET", base + "/healthz").status == 200
        assert call("GET", base + "/readyz").json() == {"status": "SERVING"}
        reply = call("GET", base + "/v1/experiments", headers={"X-Request-Id": "req-42"})
        assert reply.headers["x-request-id"] == "req-42"
        streamed = call("GET", base + "/v1/experiments/none/assignments", headers={"X-Request-Id": "req-43"})
        assert streamed.headers["x-request-id"] == "req-43"
        generated = call("GET", base + "/v1/experiments").headers["x-request-id"]
        assert generated and generated != call("GET", base + "/v1/experiments").headers["x-request-id"]


class TestExperimentsOverHttp:
    def test_lifecycle_assign_and_stats(self, base: str) -> None:
        created = create(
            base, "checkout", arms=[{"id": "a", "weight": 0.5, "value": 1}, {"id": "b", "weight": 0.5, "value": 2}]
        )
        assert created["status"] == "EXPERIMENT_STATUS_RUNNING" and created["arms"][0]["value"] == 1
        assigned = call("POST", base + "/v1/experiments/checkout/participants/u1:assign", {}).json()["assignment"]
        assert assigned["reason"] == "ASSIGNMENT_REASON_NEW_ASSIGNMENT" and assigned["arm"]["value"] in (1, 2)
        again = call("GET", base + "/v1/experiments/checkout/participants/u1/assignment").json()["assignment"]
        assert again["arm"] == assigned["arm"] and again["reason"] == "ASSIGNMENT_REASON_STICKY"
        stats = call("GET", base + "/v1/experiments/checkout/stats").json()
        assert stats["totalAssignments"] == "1"  # int64 as a string: the proto3 JSON mapping
        paused = call("POST", base + "/v1/experiments/checkout:pause", {}).json()["experiment"]
        assert paused["status"] == "EXPERIMENT_STATUS_PAUSED"
        patched = call(
            "PATCH", base + "/v1/experiments/checkout?updateMask=name", {"name": "Checkout", "etag": paused["etag"]}
        )
        assert patched.status == 200 and patched.json()["experiment"]["name"] == "Checkout"
        stale = call("DELETE", base + f"/v1/experiments/checkout?etag={paused['etag']}")
        assert (stale.status, stale.json()["code"]) == (409, 10)  # ABORTED
        precondition = call(
            "POST", base + "/v1/experiments/checkout:resume", {}, headers={"If-Match": f'"{paused["etag"]}"'}
        )
        assert (precondition.status, precondition.json()["code"]) == (412, 10)
        current = call("GET", base + "/v1/experiments/checkout").json()["experiment"]["etag"]
        resumed = call("POST", base + "/v1/experiments/checkout:resume", {}, headers={"If-Match": f'"{current}"'})
        assert resumed.status == 200
        listed = call("GET", base + "/v1/experiments?pageSize=1").json()
        assert [e["id"] for e in listed["experiments"]] == ["checkout"]

    def test_batch_and_stream_assign(self, base: str) -> None:
        create(base, "b")
        batch = call(
            "POST",
            base + "/v1/assignments:batchAssign",
            {
                "requests": [
                    {"experimentId": "b", "participantId": "p1"},
                    {"experimentId": "missing", "participantId": "p1"},
                ]
            },
        ).json()
        assert batch["results"][0]["assignment"]["inExperiment"] is True
        assert batch["results"][1]["error"]["code"] == 5
        lines = b"".join(json.dumps({"experimentId": "b", "participantId": f"s{i}"}).encode() + b"\n" for i in range(3))
        reply = call("POST", base + "/v1/assignments:streamAssign", raw=lines, content_type="application/x-ndjson")
        assert reply.status == 200 and reply.headers["content-type"].startswith("application/x-ndjson")
        assert [item["result"]["result"]["assignment"]["participantId"] for item in reply.lines] == ["s0", "s1", "s2"]

    def test_export_as_ndjson_and_csv_and_preassign_from_csv(self, base: str) -> None:
        create(base, "pre", type="EXPERIMENT_TYPE_PREASSIGNED")
        csv_body = b"participant_id,country\np1,US\np2,US\np3,CA\n"
        reply = call("POST", base + "/v1/experiments/pre/assignments:preassign", raw=csv_body, content_type="text/csv")
        assert reply.status == 200, reply.body
        assert reply.json()["createdCount"] == "3"
        rows = [
            row
            for line in call("GET", base + "/v1/experiments/pre/assignments").lines
            for row in line["result"].get("assignments", [])
        ]
        assert sorted(r["participantId"] for r in rows) == ["p1", "p2", "p3"]
        assert {r["participantId"]: r["strata"] for r in rows}["p3"] == {"country": "CA"}
        as_csv = call("GET", base + "/v1/experiments/pre/assignments", headers={"Accept": "text/csv"})
        header, *lines = as_csv.body.decode().splitlines()
        assert header == "participant_id,arm_id,bucket_version,first_seen_time,strata" and len(lines) == 3

    def test_saved_groups_upload_ndjson(self, base: str) -> None:
        assert call("POST", base + "/v1/savedGroups", {"savedGroup": {"id": "vip"}, "ids": ["a"]}).status == 200
        upload = b'{"ids": ["b", "c"]}\n{"ids": ["d"]}\n'
        reply = call("POST", base + "/v1/savedGroups/vip:uploadIds", raw=upload, content_type="application/x-ndjson")
        assert reply.status == 200, reply.body
        group = call("GET", base + "/v1/savedGroups/vip").json()["savedGroup"]
        assert group["size"] == "3"  # REPLACE (the default mode): the uploaded ids only
        added = call(
            "POST",
            base + "/v1/savedGroups/vip:uploadIds?mode=UPLOAD_MODE_ADD",
            raw=b"id\ne\nf\n",
            content_type="text/csv",
        )
        assert added.status == 200, added.body
        assert call("GET", base + "/v1/savedGroups/vip").json()["savedGroup"]["size"] == "5"


class TestBadInput:
    """HTTP gets what gRPC gets, in HTTP's words; nothing a client sends is a 500."""

    def test_malformed_json_unknown_fields_wrong_types_and_bad_values(self, base: str) -> None:
        broken = call("POST", base + "/v1/experiments", raw=b'{"id": ')
        assert (broken.status, broken.json()["code"]) == (400, 3) and violations(broken.json()) == ["body"]
        unknown = call("POST", base + "/v1/experiments", {"id": "x", "colour": "red"})
        assert unknown.status == 400 and "colour" in unknown.json()["message"]
        wrong = call("POST", base + "/v1/experiments", {"id": "x", "arms": TWO_ARMS, "coverage": "lots"})
        assert wrong.status == 400 and violations(wrong.json()) == ["experiment"]
        bad = call(
            "POST",
            base + "/v1/experiments",
            {"id": "x", "arms": [{"id": "a", "weight": 0.2}, {"id": "b", "weight": 0.2}]},
        )
        assert bad.status == 400 and "experiment.arms" in violations(bad.json())
        assert call("GET", base + "/v1/experiments?pageSize=lots").status == 400
        assert call("GET", base + "/v1/experiments?colour=red").status == 400
        assert (
            call("POST", base + "/v1/experiments/x:rerandomize?x=1", {"blockPreviousParticipants": "yes"}).status == 400
        )

    def test_not_found_conflict_method_media_type_and_size(self, base: str) -> None:
        create(base, "dup")
        assert call("GET", base + "/v1/experiments/none").json()["details"][0]["reason"] == "EXPERIMENT_NOT_FOUND"
        again = call("POST", base + "/v1/experiments", {"id": "dup", "arms": TWO_ARMS})
        assert (again.status, again.json()["code"]) == (409, 6)
        wrong_method = call("PUT", base + "/v1/experiments/dup", {})
        assert wrong_method.status == 405 and set(wrong_method.headers["allow"].split(",")) == {
            "GET",
            "PATCH",
            "DELETE",
        }
        text = call("POST", base + "/v1/experiments", raw=b"id=x", content_type="text/plain")
        assert text.status == 415
        huge = call("POST", base + "/v1/experiments", raw=b'{"id": "' + b"x" * (2 * 1024 * 1024) + b'"}')
        assert huge.status == 413
        assert call("GET", base + "/v2/nothing").status == 404
        bad_line = call(
            "POST", base + "/v1/assignments:streamAssign", raw=b"{nope\n", content_type="application/x-ndjson"
        )
        assert bad_line.status == 400 and violations(bad_line.json()) == ["body"]

    def test_drain_and_in_flight_limit_answer_503_with_retry_after(self, base: str, server: ServerThread) -> None:
        assert server.running is not None and server.running.http is not None
        edge = server.running.http
        edge.max_in_flight, edge.in_flight = 1, 1  # as if one request were being answered
        try:
            busy = call("GET", base + "/v1/experiments")
        finally:
            edge.max_in_flight, edge.in_flight = 1000, 0
        assert (busy.status, busy.headers["retry-after"]) == (503, "1")
        edge.draining = True
        draining = call("GET", base + "/v1/experiments")
        ready = call("GET", base + "/readyz")
        edge.draining = False
        assert draining.status == 503 and draining.headers["retry-after"] == "1"
        assert ready.status == 503


def test_per_route_latency_histograms(base: str, client: Client) -> None:
    labels = {"route": "/v1/experiments/{experiment_id}", "status": "404"}
    before = REGISTRY.get_sample_value("assignsvc_http_duration_seconds_count", labels) or 0.0
    call("GET", base + "/v1/experiments/nothing-here")
    assert REGISTRY.get_sample_value("assignsvc_http_duration_seconds_count", labels) == before + 1
