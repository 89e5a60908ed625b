"""The gRPC auth tests' matrix replayed over HTTP: every transcoded route refuses every kind of
bad credential (401) and a key without the scope (403), serves a key that has it, and a key
of another datasource never reaches this one's objects; header names are case-insensitive."""

from __future__ import annotations

import dataclasses

import pytest

from assignsvc.api.access_policy import required_scope
from assignsvc.api.http.routes import Route, all_routes
from assignsvc.config import ServerConfig
from assignsvc.core.access import Scope, new_key
from tests.e2e.test_auth import (  # the gRPC matrix's fixtures and requests, reused as they are
    Tenants,
    _unauthorized_key,
    auth_config,
    requests,
    tenants,
)
from tests.support import free_port
from tests.support.http import Reply, call, http_request

__all__ = ["auth_config", "tenants"]  # fixtures, imported for pytest


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """The shared test config with the HTTP edge on."""
    return dataclasses.replace(server_config, http_port=free_port())


def _base(t: Tenants) -> str:
    assert t.server.running is not None and t.server.running.http is not None
    return f"http://127.0.0.1:{t.server.running.http.port}"


def _send(t: Tenants, route: Route, headers: dict[str, str]) -> Reply:
    _, message = requests(t)[route.method.name]
    verb, path, body, content_type = http_request(route, message)
    return call(verb, _base(t) + path, headers=headers, raw=body, content_type=content_type)


def _headers(t: Tenants, key: str, datasource: str | None = None) -> dict[str, str]:
    owner = datasource if datasource is not None else key.split("-", maxsplit=1)[0]
    return {"X-API-Key": t.keys[key], "Datasource-ID": owner}


def test_every_route_refuses_bad_credentials_and_missing_scopes(tenants: Tenants) -> None:
    t = tenants
    valid = t.keys["alpha-admin"]
    bad_checksum = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    cases: dict[str, dict[str, str]] = {
        "no credentials": {},
        "datasource only": {"Datasource-ID": "alpha"},
        "malformed key": {"X-API-Key": "hello", "Datasource-ID": "alpha"},
        "bad checksum": {"X-API-Key": bad_checksum, "Datasource-ID": "alpha"},
        "well-formed unknown key": {"X-API-Key": new_key(), "Datasource-ID": "alpha"},
        "revoked key": _headers(t, "alpha-revoked", "alpha"),
        "another datasource's key": _headers(t, "beta-admin", "alpha"),
        "no datasource-id": {"X-API-Key": valid},
    }
    failures = []
    for route in all_routes():
        for case, headers in cases.items():
            reply = _send(t, route, headers)
            if reply.status != 401 or reply.json()["code"] != 16:
                failures.append(f"{route.verb} {route.template} with {case}: {reply.status}")
        scope, _ = required_scope(route.full_method)
        reply = _send(t, route, _headers(t, _unauthorized_key(scope)))
        if reply.status != 403:
            failures.append(f"{route.verb} {route.template} without scope {scope.value}: {reply.status}")
    assert failures == []


def _authorized(t: Tenants, scope: Scope) -> dict[str, str]:
    if scope is Scope.OPERATOR:
        from tests.e2e.test_auth import OPERATOR_KEY  # noqa: PLC0415

        return {"X-API-Key": OPERATOR_KEY}
    return _headers(t, "alpha-admin")


def test_every_route_serves_a_key_with_its_scope(tenants: Tenants) -> None:
    """Every RPC called once over HTTP with the right key: an answer, never a refusal or a 500."""
    answers: dict[str, int] = {}
    deletes = []
    for route in all_routes():
        if route.verb == "DELETE":  # last: the other calls name what they delete
            deletes.append(route)
            continue
        answers[f"{route.verb} {route.template}"] = _send(
            tenants, route, _authorized(tenants, required_scope(route.full_method)[0])
        ).status
    for route in deletes:
        answers[f"{route.verb} {route.template}"] = _send(tenants, route, _headers(tenants, "alpha-admin")).status
    refused = {name: status for name, status in answers.items() if status in (401, 403, 405, 415) or status >= 500}
    assert refused == {}
    # Domain answers, as over gRPC: "exp" is running (start: FAILED_PRECONDITION), stopped by
    # the time it is assigned (so p1 holds no arm: NOT_FOUND), and online (not preassignable).
    assert {name: status for name, status in answers.items() if status != 200} == {
        "POST /v1/experiments/{experiment_id}:start": 400,
        "POST /v1/experiments/{experiment_id}/participants/{participant_id}:getAssignment": 404,
        "GET /v1/experiments/{experiment_id}/participants/{participant_id}/assignment": 404,
        "POST /v1/experiments/{experiment_id}/assignments:preassign": 400,
    }


def test_header_names_are_case_insensitive(tenants: Tenants) -> None:
    headers = {"x-api-key": tenants.keys["alpha-read"], "DATASOURCE-ID": "alpha"}
    reply = call("GET", _base(tenants) + "/v1/experiments/exp", headers=headers)
    assert reply.status == 200 and reply.json()["experiment"]["id"] == "exp"


def test_another_datasources_key_finds_none_of_its_objects(tenants: Tenants) -> None:
    beta = _headers(tenants, "beta-admin")
    assert call("GET", _base(tenants) + "/v1/experiments/exp", headers=beta).status == 404
    listed = call("GET", _base(tenants) + "/v1/experiments", headers=beta).json()
    assert listed.get("experiments", []) == []
    evidential = call(
        "GET", _base(tenants) + "/evidential/v1/experiments/exp", headers={"X-API-Key": tenants.keys["beta-admin"]}
    )
    assert (evidential.status, evidential.json()) == (404, {"detail": "Experiment not found or not authorized."})
    ofrep = call(
        "POST",
        _base(tenants) + "/ofrep/v1/evaluate/flags/exp",
        {"context": {"targetingKey": "p1"}},
        headers={"X-API-Key": tenants.keys["beta-admin"]},
    )
    assert (ofrep.status, ofrep.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")


def test_a_key_alone_names_its_datasource_on_evidential_and_ofrep_routes(tenants: Tenants) -> None:
    key = {"X-API-Key": tenants.keys["alpha-admin"]}
    reply = call("GET", _base(tenants) + "/evidential/v1/experiments/exp/assignments/p9", headers=key)
    assert reply.status == 200 and reply.json()["assignment"]["arm_id"] in ("a0", "a1")
    reply = call(
        "POST", _base(tenants) + "/ofrep/v1/evaluate/flags/exp", {"context": {"targetingKey": "p9"}}, headers=key
    )
    assert reply.status == 200 and reply.json()["variant"] in ("a0", "a1")
    other = {**key, "Datasource-ID": "beta"}  # ignored there, as Evidential ignores it
    reply = call("GET", _base(tenants) + "/evidential/v1/experiments/exp/assignments/p9", headers=other)
    assert reply.status == 200 and reply.json()["assignment"]["arm_id"] in ("a0", "a1")


def test_scopes_and_refusals_on_evidential_and_ofrep_routes(tenants: Tenants) -> None:
    base = _base(tenants)
    read_only = {"X-API-Key": tenants.keys["alpha-read"]}
    ofrep = call("POST", base + "/ofrep/v1/evaluate/flags/exp", {"context": {"targetingKey": "p"}}, headers=read_only)
    assert ofrep.status == 403
    unknown = call(
        "POST",
        base + "/ofrep/v1/evaluate/flags/exp",
        {"context": {"targetingKey": "p"}},
        headers={"X-API-Key": new_key()},
    )
    assert unknown.status == 401
    missing = call("GET", base + "/evidential/v1/experiments/exp/assignments/p")
    assert (missing.status, missing.json()) == (400, {"message": "X-API-Key request header is required."})
    listed = call("GET", base + "/evidential/v1/experiments", headers={"X-API-Key": tenants.keys["alpha-read"]})
    assert listed.status == 422 and listed.json()["detail"][0]["loc"] == ["header", "Datasource-ID"]
    listed = call("GET", base + "/evidential/v1/experiments", headers=_headers(tenants, "alpha-read"))
    assert [item["experiment_id"] for item in listed.json()["items"]] == ["exp"]
    foreign = call(
        "GET", base + "/evidential/v1/experiments", headers={**_headers(tenants, "beta-read"), "Datasource-ID": "alpha"}
    )
    assert foreign.status == 403


def test_a_refused_client_stream_is_a_refusal_every_time(tenants: Tenants) -> None:
    """A streamed body the key may not send is 401 each time, never a 500: refused before the
    stream opens (a server ending a client stream mid-body left the client INTERNAL)."""
    body = b'{"experiment_id": "x", "participant_id": "p"}\n' * 3
    statuses = {
        call(
            "POST",
            _base(tenants) + "/v1/assignments:streamAssign",
            headers={"X-API-Key": "hello", "Datasource-ID": "alpha"},
            raw=body,
            content_type="application/x-ndjson",
        ).status
        for _ in range(40)
    }
    assert statuses == {401}
