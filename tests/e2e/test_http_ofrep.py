"""OFREP on a live server: single and bulk evaluation (ETag / If-None-Match), every error code
of the spec, and the stock OpenFeature Python SDK with the stock OFREP provider from PyPI
resolving string and object flags, targeting and errors included."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from assignsvc.config import ServerConfig
from tests.support import free_port
from tests.support.http import call

COLORS = [{"id": "blue", "weight": 0.5, "value": "#00f"}, {"id": "green", "weight": 0.5, "value": "#0f0"}]
LAYOUTS = [{"id": "a", "weight": 0.5, "value": {"columns": 2}}, {"id": "b", "weight": 0.5, "value": {"columns": 3}}]


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, http_port=free_port())


def create(base: str, experiment_id: str, arms: list[dict[str, object]], **fields: object) -> None:
    body = {"id": experiment_id, "arms": arms, "status": "EXPERIMENT_STATUS_RUNNING", **fields}
    assert call("POST", base + "/v1/experiments", body).status == 200


def evaluate(base: str, key: str, body: object, **kwargs: object) -> tuple[int, dict[str, Any]]:
    reply = call("POST", f"{base}/ofrep/v1/evaluate/flags/{key}", body, **kwargs)  # type: ignore[arg-type]
    return reply.status, reply.json() if reply.body else {}


class TestSingle:
    def test_value_variant_reason_and_metadata(self, base: str) -> None:
        create(base, "color", COLORS)
        status, first = evaluate(base, "color", {"context": {"targetingKey": "u1"}})
        assert status == 200 and first["reason"] == "SPLIT"
        assert first["value"] == {"blue": "#00f", "green": "#0f0"}[str(first["variant"])]
        assert first["metadata"] == {"bucketVersion": 0, "persisted": True, "assignsvcReason": "NEW_ASSIGNMENT"}
        _, again = evaluate(base, "color", {"context": {"targetingKey": "u1"}})
        assert again["variant"] == first["variant"] and again["metadata"]["assignsvcReason"] == "STICKY"
        stored = call("GET", base + "/v1/experiments/color/participants/u1/assignment").json()["assignment"]
        assert stored["arm"]["id"] == first["variant"]  # an evaluation is an Assign: stored

    def test_context_attributes_drive_conditions_and_not_in_experiment_is_default(self, base: str) -> None:
        create(base, "us-only", COLORS, condition='{"country": "US"}')
        _, us = evaluate(base, "us-only", {"context": {"targetingKey": "u", "country": "US"}})
        assert us["reason"] == "SPLIT"
        _, fr = evaluate(base, "us-only", {"context": {"targetingKey": "v", "country": "FR"}})
        assert (fr["reason"], fr["variant"], "value" in fr) == ("DEFAULT", None, False)
        call("POST", base + "/v1/experiments/us-only:stop", {})
        _, stopped = evaluate(base, "us-only", {"context": {"targetingKey": "w", "country": "US"}})
        assert stopped["reason"] == "DISABLED"

    def test_every_error_code(self, base: str) -> None:
        create(base, "f", COLORS)
        assert evaluate(base, "missing", {"context": {"targetingKey": "u"}}) == (
            404,
            {"key": "missing", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "no flag 'missing'"},
        )
        status, body = evaluate(base, "f", {"context": {"country": "US"}})
        assert (status, body["errorCode"]) == (400, "TARGETING_KEY_MISSING")
        status, body = evaluate(base, "f", {"context": {"targetingKey": 12}})
        assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
        status, body = evaluate(base, "f", {"context": "nope"})
        assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
        status, body = evaluate(
            base,
            "f",
            {
                "context": {
                    "targetingKey": "u",
                    "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}},
                }
            },
        )
        assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
        reply = call("POST", base + "/ofrep/v1/evaluate/flags/f", raw=b"{not json")
        assert (reply.status, reply.json()["errorCode"]) == (400, "PARSE_ERROR")


class TestBulk:
    def test_every_flag_with_an_etag(self, base: str) -> None:
        create(base, "color", COLORS)
        create(base, "layout", LAYOUTS)
        url = base + "/ofrep/v1/evaluate/flags"
        first = call("POST", url, {"context": {"targetingKey": "u1"}})
        flags = {f["key"]: f for f in first.json()["flags"]}
        assert set(flags) == {"color", "layout"} and flags["layout"]["value"] in ({"columns": 2}, {"columns": 3})
        etag = first.headers["etag"]
        unchanged = call("POST", url, {"context": {"targetingKey": "u1"}}, headers={"If-None-Match": etag})
        assert (unchanged.status, unchanged.body, unchanged.headers["etag"]) == (304, b"", etag)
        other = call("POST", url, {"context": {"targetingKey": "someone-else"}}, headers={"If-None-Match": etag})
        assert other.status == 200 or other.headers["etag"] == etag  # same arms by chance: same etag
        missing = call("POST", url, {"context": {}})
        assert (missing.status, missing.json()["errorCode"]) == (400, "TARGETING_KEY_MISSING")


@pytest.fixture
def openfeature(base: str) -> Iterator[None]:
    api.set_provider(OFREPProvider(base))
    yield
    api.clear_providers()


@pytest.mark.usefixtures("openfeature")
class TestStockOpenFeatureSdk:
    def test_string_and_object_flags_with_targeting(self, base: str) -> None:
        create(base, "color", COLORS)
        create(base, "layout", LAYOUTS, condition='{"plan": "pro"}')
        client = api.get_client()
        color = client.get_string_details("color", "default", EvaluationContext("user-1"))
        assert color.value in ("#00f", "#0f0") and color.reason == Reason.SPLIT and color.error_code is None
        assert client.get_string_value("color", "default", EvaluationContext("user-1")) == color.value
        pro = client.get_object_details("layout", {"columns": 1}, EvaluationContext("user-1", {"plan": "pro"}))
        assert pro.value in ({"columns": 2}, {"columns": 3}) and pro.variant in ("a", "b")
        free = client.get_object_details("layout", {"columns": 1}, EvaluationContext("user-2", {"plan": "free"}))
        assert (free.value, free.reason) == ({"columns": 1}, Reason.DEFAULT)

    def test_errors_reach_the_sdk_as_its_error_codes(self, base: str) -> None:
        create(base, "color", COLORS)
        client = api.get_client()
        unknown = client.get_string_details("nope", "fallback", EvaluationContext("u"))
        assert (unknown.value, unknown.error_code) == ("fallback", ErrorCode.FLAG_NOT_FOUND)
        no_key = client.get_string_details("color", "fallback", EvaluationContext(None, {"plan": "pro"}))
        assert (no_key.value, no_key.error_code) == ("fallback", ErrorCode.TARGETING_KEY_MISSING)
        wrong_type = client.get_boolean_details("color", False, EvaluationContext("u"))
        assert (wrong_type.value, wrong_type.error_code) == (False, ErrorCode.TYPE_MISMATCH)
