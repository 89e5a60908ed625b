"""Datasources and API keys through the live server: every RPC refused for every kind of bad
credential, tenants isolated, revocation on another process within 1 s, rate limits, and no
raw key ever written to Redis."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
import redis
import trustme
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assignsvc.api.access_policy import covered_services, required_scope
from assignsvc.cli.main import main
from assignsvc.config import ConfigError, ServerConfig
from assignsvc.core.access import Scope, new_key
from assignsvc.v1 import access_service_pb2 as xpb
from assignsvc.v1 import access_service_pb2_grpc as xgrpc
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import saved_group_service_pb2 as gpb
from assignsvc.v1 import webhook_service_pb2 as wpb
from tests.support import Client, ServerThread, error_reason, running_server, wait_until
from tests.support.processes import serve

OPERATOR_KEY = new_key()
SERVICE_FILES = (apb, bpb, espb, gpb, wpb, xpb)
METHODS = [
    (service, method)
    for module in SERVICE_FILES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _path(service: Any, method: Any) -> str:
    return f"/{service.full_name}/{method.name}"


def call(channel: grpc.Channel, service: Any, method: Any, request: Any, metadata: list[tuple[str, str]]) -> Any:
    """Any RPC by its descriptors: the response (a list for a response stream)."""
    path = _path(service, method)
    serialize = message_factory.GetMessageClass(method.input_type).SerializeToString
    parse = message_factory.GetMessageClass(method.output_type).FromString
    kind = (method.client_streaming, method.server_streaming)
    if kind == (True, True):
        return list(channel.stream_stream(path, serialize, parse)(iter([request]), metadata=metadata, timeout=10))
    if kind == (True, False):
        return channel.stream_unary(path, serialize, parse)(iter([request]), metadata=metadata, timeout=10)
    if kind == (False, True):
        return list(channel.unary_stream(path, serialize, parse)(request, metadata=metadata, timeout=10))
    return channel.unary_unary(path, serialize, parse)(request, metadata=metadata, timeout=10)


def code_of(channel: grpc.Channel, service: Any, method: Any, request: Any, metadata: list[tuple[str, str]]) -> Any:
    try:
        call(channel, service, method, request, metadata)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@dataclasses.dataclass
class Tenants:
    """A live server with auth on; datasources alpha and beta and their keys; alpha's objects."""

    server: ServerThread
    channel: grpc.Channel
    keys: dict[str, str]  # name -> secret
    webhook_id: str
    alpha_key_id: str
    redis_url: str

    def metadata(self, key: str, datasource: str | None = None) -> list[tuple[str, str]]:
        owner = datasource if datasource is not None else key.split("-", maxsplit=1)[0]
        return [("x-api-key", self.keys[key]), ("datasource-id", owner)]

    def client(self, key: str, datasource: str | None = None) -> Client:
        """Stubs that send the key (and its datasource, unless another is named)."""
        metadata = self.metadata(key, datasource)

        class Add(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
            def _with(self, details: Any) -> Any:
                return details._replace(metadata=[*(details.metadata or ()), *metadata])

            def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
                return continuation(self._with(details), request)

            def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
                return continuation(self._with(details), request)

        return Client.on(grpc.intercept_channel(self.channel, Add()))


def _create_key(
    channel: grpc.Channel, datasource: str, scopes: list[xpb.ApiKeyScope], as_key: str, **fields: Any
) -> xpb.CreateApiKeyResponse:
    stub = xgrpc.ApiKeyServiceStub(channel)
    request = xpb.CreateApiKeyRequest(api_key=xpb.ApiKey(name="t", scopes=scopes, **fields))
    return stub.CreateApiKey(request, metadata=[("x-api-key", as_key), ("datasource-id", datasource)], timeout=10)


@pytest.fixture
def auth_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(
        server_config,
        auth=True,
        operator_key=OPERATOR_KEY,
        webhook_allow_networks=("127.0.0.0/8",),
        webhook_poll_interval_s=0.05,
    )


@pytest.fixture
def tenants(auth_config: ServerConfig, redis_url: str) -> Iterator[Tenants]:
    with running_server(auth_config) as server:
        channel = grpc.insecure_channel(server.target)
        operator = [("x-api-key", OPERATOR_KEY)]
        datasources = xgrpc.DatasourceServiceStub(channel)
        for ds in ("alpha", "beta", "default"):
            datasources.CreateDatasource(
                xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id=ds)), metadata=operator, timeout=10
            )
        keys: dict[str, str] = {}
        scopes = {
            "admin": [xpb.API_KEY_SCOPE_ADMIN],
            "read": [xpb.API_KEY_SCOPE_READ],
            "assign": [xpb.API_KEY_SCOPE_ASSIGN],
        }
        alpha_key_id = ""
        for ds in ("alpha", "beta"):
            for name, scope in scopes.items():
                created = _create_key(channel, ds, scope, OPERATOR_KEY)
                keys[f"{ds}-{name}"] = created.secret
                if (ds, name) == ("alpha", "read"):
                    alpha_key_id = created.api_key.id
        keys["default-admin"] = _create_key(channel, "default", scopes["admin"], OPERATOR_KEY).secret
        revoked = _create_key(channel, "alpha", scopes["admin"], OPERATOR_KEY)
        xgrpc.ApiKeyServiceStub(channel).RevokeApiKey(
            xpb.RevokeApiKeyRequest(api_key_id=revoked.api_key.id),
            metadata=[*operator, ("datasource-id", "alpha")],
            timeout=10,
        )
        keys["alpha-revoked"] = revoked.secret
        t = Tenants(server, channel, keys, "", alpha_key_id, redis_url)
        alpha = t.client("alpha-admin")
        alpha.create("exp")
        alpha.groups.CreateSavedGroup(gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="vip"), ids=["u1"]))
        default = t.client("default-admin")  # bare ids: what existed before datasources
        default.create("internal-exp")
        default.groups.CreateSavedGroup(gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="internal-vip")))
        call(
            channel,
            *_method("WebhookService", "CreateWebhook"),
            wpb.CreateWebhookRequest(webhook=wpb.Webhook(url="http://127.0.0.1:9/internal-hook")),
            t.metadata("default-admin"),
        )
        hook = wpb.Webhook(url="http://127.0.0.1:9/hook")
        t.webhook_id = call(
            channel,
            *_method("WebhookService", "CreateWebhook"),
            wpb.CreateWebhookRequest(webhook=hook),
            t.metadata("alpha-admin"),
        ).webhook.id
        yield t
        channel.close()


def _method(service_name: str, method_name: str) -> tuple[Any, Any]:
    for service, method in METHODS:
        if service.name == service_name and method.name == method_name:
            return service, method
    raise KeyError(method_name)


# One request per RPC naming alpha's objects: "exp", group "vip", its webhook and its read key.
def requests(t: Tenants) -> dict[str, tuple[str, Any]]:
    """RPC name -> (what a valid key of another datasource must get, request)."""
    exp = "exp"
    new_exp = epb.Experiment(id="made-by-caller", arms=[epb.Arm(id="a", weight=0.5), epb.Arm(id="b", weight=0.5)])
    return {
        "Assign": ("item", apb.AssignRequest(experiment_id=exp, participant_id="p1")),
        "GetAssignment": ("item", apb.GetAssignmentRequest(experiment_id=exp, participant_id="p1")),
        "BatchAssign": (
            "item",
            apb.BatchAssignRequest(requests=[apb.AssignRequest(experiment_id=exp, participant_id="p1")]),
        ),
        "StreamAssign": ("item", apb.StreamAssignRequest(experiment_id=exp, participant_id="p1")),
        "CreateExperiment": ("creates", espb.CreateExperimentRequest(experiment=new_exp)),
        "GetExperiment": ("names", espb.GetExperimentRequest(experiment_id=exp)),
        "ListExperiments": ("lists", espb.ListExperimentsRequest()),
        "UpdateExperiment": (
            "names",
            espb.UpdateExperimentRequest(
                experiment=epb.Experiment(id=exp, name="renamed"), update_mask={"paths": ["name"]}
            ),
        ),
        "DeleteExperiment": ("names", espb.DeleteExperimentRequest(experiment_id=exp)),
        "StartExperiment": ("names", espb.StartExperimentRequest(experiment_id=exp)),
        "PauseExperiment": ("names", espb.PauseExperimentRequest(experiment_id=exp)),
        "ResumeExperiment": ("names", espb.ResumeExperimentRequest(experiment_id=exp)),
        "StopExperiment": ("names", espb.StopExperimentRequest(experiment_id=exp)),
        "RerandomizeExperiment": ("names", espb.RerandomizeExperimentRequest(experiment_id=exp)),
        "GetExperimentStats": ("names", espb.GetExperimentStatsRequest(experiment_id=exp)),
        "ApplyExperiments": ("creates", espb.ApplyExperimentsRequest(experiments=[new_exp], dry_run=True)),
        "ExportAssignments": ("names", bpb.ExportAssignmentsRequest(experiment_id=exp)),
        "PreassignParticipants": (
            "names",
            bpb.PreassignParticipantsRequest(experiment_id=exp, groups=[bpb.ParticipantGroup(participant_ids=["p1"])]),
        ),
        "CreateSavedGroup": ("creates", gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="made-by-caller"))),
        "GetSavedGroup": ("names", gpb.GetSavedGroupRequest(saved_group_id="vip")),
        "ListSavedGroups": ("lists", gpb.ListSavedGroupsRequest()),
        "UpdateSavedGroup": ("names", gpb.UpdateSavedGroupRequest(saved_group_id="vip", add_ids=["u2"])),
        "UploadSavedGroupIds": ("names", gpb.UploadSavedGroupIdsRequest(saved_group_id="vip", ids=["u3"])),
        "DeleteSavedGroup": ("names", gpb.DeleteSavedGroupRequest(saved_group_id="vip")),
        "CreateWebhook": ("creates", wpb.CreateWebhookRequest(webhook=wpb.Webhook(url="http://127.0.0.1:9/b"))),
        "GetWebhook": ("names", wpb.GetWebhookRequest(webhook_id=t.webhook_id)),
        "ListWebhooks": ("lists", wpb.ListWebhooksRequest()),
        "UpdateWebhook": (
            "names",
            wpb.UpdateWebhookRequest(
                webhook=wpb.Webhook(id=t.webhook_id, description="x"), update_mask={"paths": ["description"]}
            ),
        ),
        "DeleteWebhook": ("names", wpb.DeleteWebhookRequest(webhook_id=t.webhook_id)),
        "RotateWebhookSecret": ("names", wpb.RotateWebhookSecretRequest(webhook_id=t.webhook_id)),
        "SendTestEvent": ("names", wpb.SendTestEventRequest(webhook_id=t.webhook_id)),
        "ListDeliveries": ("names", wpb.ListDeliveriesRequest(webhook_id=t.webhook_id)),
        "CreateDatasource": ("operator", xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id="gamma"))),
        "ListDatasources": ("operator", xpb.ListDatasourcesRequest()),
        "CreateApiKey": ("creates", xpb.CreateApiKeyRequest(api_key=xpb.ApiKey(scopes=[xpb.API_KEY_SCOPE_READ]))),
        "ListApiKeys": ("lists", xpb.ListApiKeysRequest()),
        "RevokeApiKey": ("names", xpb.RevokeApiKeyRequest(api_key_id=t.alpha_key_id)),
    }


class TestPolicy:
    def test_every_rpc_of_every_service_has_a_scope_and_a_request_in_this_matrix(self) -> None:
        services = {service.full_name for service, _ in METHODS}
        assert services == set(covered_services())
        names = {method.name for _, method in METHODS}
        fake = Tenants(None, None, {}, "wh_0", "key_0", "")  # type: ignore[arg-type]
        assert names == set(requests(fake))

    @pytest.mark.parametrize(
        ("method", "scope"),
        [
            ("/assignsvc.v1.AssignmentService/StreamAssign", Scope.ASSIGN),
            ("/assignsvc.v1.ExperimentService/GetExperimentStats", Scope.READ),
            ("/assignsvc.v1.ExperimentService/UpdateExperiment", Scope.ADMIN),
            ("/assignsvc.v1.BulkAssignmentService/ExportAssignments", Scope.READ),
            ("/assignsvc.v1.BulkAssignmentService/PreassignParticipants", Scope.ADMIN),
            ("/assignsvc.v1.WebhookService/ListWebhooks", Scope.ADMIN),
            ("/assignsvc.v1.DatasourceService/ListDatasources", Scope.OPERATOR),
            ("/assignsvc.v1.Unknown/Anything", Scope.ADMIN),
            ("/other.v1.AssignmentService/Assign", Scope.ADMIN),
        ],
    )
    def test_scopes(self, method: str, scope: Scope) -> None:
        assert required_scope(method)[0] is scope


def _unauthorized_key(scope: Scope) -> str:
    """A valid alpha key (or beta's admin for operator calls) that lacks `scope`."""
    return {
        Scope.ASSIGN: "alpha-read",
        Scope.READ: "alpha-assign",
        Scope.ADMIN: "alpha-read",
        Scope.OPERATOR: "alpha-admin",
    }[scope]


class TestEveryRpcRefusesBadCredentials:
    def test_the_matrix(self, tenants: Tenants) -> None:
        t = tenants
        valid = t.keys["alpha-admin"]
        bad_checksum = valid[:-1] + ("A" if valid[-1] != "A" else "B")
        cases: dict[str, list[tuple[str, str]]] = {
            "no credentials": [],
            "datasource only": [("datasource-id", "alpha")],
            "malformed key": [("x-api-key", "hello"), ("datasource-id", "alpha")],
            "bad checksum": [("x-api-key", bad_checksum), ("datasource-id", "alpha")],
            "well-formed unknown key": [("x-api-key", new_key()), ("datasource-id", "alpha")],
            "revoked key": t.metadata("alpha-revoked", "alpha"),
            "another datasource's key": t.metadata("beta-admin", "alpha"),
            "no datasource-id": [("x-api-key", valid)],
        }
        failures = []
        for service, method in METHODS:
            _, request = requests(t)[method.name]
            for case, metadata in cases.items():
                code = code_of(t.channel, service, method, request, metadata)
                if code != grpc.StatusCode.UNAUTHENTICATED:
                    failures.append(f"{method.name} with {case}: {code}")
            scope, _ = required_scope(_path(service, method))
            code = code_of(t.channel, service, method, request, t.metadata(_unauthorized_key(scope)))
            if code != grpc.StatusCode.PERMISSION_DENIED:
                failures.append(f"{method.name} without scope {scope.value}: {code}")
        assert failures == []
        self._alpha_untouched(t)

    def test_a_valid_key_of_another_datasource_finds_none_of_its_objects(self, tenants: Tenants) -> None:
        t = tenants
        metadata = t.metadata("beta-admin")
        failures = []
        for service, method in METHODS:
            expected, request = requests(t)[method.name]
            try:
                reply = call(t.channel, service, method, request, metadata)
            except grpc.RpcError as error:
                wanted = {
                    "names": grpc.StatusCode.NOT_FOUND,
                    "item": grpc.StatusCode.NOT_FOUND,
                    "operator": grpc.StatusCode.PERMISSION_DENIED,
                }
                if error.code() != wanted.get(expected) or "beta/" in (error.details() or ""):
                    failures.append(f"{method.name}: {error.code()} {error.details()}")
                continue
            text = str(reply)
            if expected == "item":  # a per-item NOT_FOUND, never an arm
                assert "NOT_FOUND" in text or "code: 5" in text, f"{method.name}: {text}"
                assert "arm" not in text.replace("arm_index", ""), text
            elif expected == "lists":
                assert '"exp"' not in text and "vip" not in text and t.webhook_id not in text, text
                assert "internal-" not in text, text  # nor the default datasource's
                assert t.alpha_key_id not in text, text
            elif expected != "creates":
                failures.append(f"{method.name} answered {text[:200]}")
        assert failures == []
        self._alpha_untouched(t)

    @staticmethod
    def _alpha_untouched(t: Tenants) -> None:
        alpha = t.client("alpha-admin")
        exp = alpha.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id="exp")).experiment
        assert (exp.name, exp.status, exp.etag) == ("exp", epb.EXPERIMENT_STATUS_RUNNING, "1")
        assert alpha.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="vip")).saved_group.size == 1
        keys = call(
            t.channel, *_method("ApiKeyService", "ListApiKeys"), xpb.ListApiKeysRequest(), t.metadata("alpha-admin")
        ).api_keys
        assert not next(k for k in keys if k.id == t.alpha_key_id).HasField("revoke_time")
        hooks = call(
            t.channel, *_method("WebhookService", "ListWebhooks"), wpb.ListWebhooksRequest(), t.metadata("alpha-admin")
        ).webhooks
        assert [h.id for h in hooks] == [t.webhook_id]


class TestOpenServices:
    def test_health_and_reflection_need_no_key(self, tenants: Tenants) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: PLC0415

        health = health_pb2_grpc.HealthStub(tenants.channel)
        for service in ("", "assignsvc.v1.AssignmentService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(tenants.channel)
        replies = list(
            stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        )
        names = {s.name for s in replies[0].list_services_response.service}
        assert "assignsvc.v1.ApiKeyService" in names and "assignsvc.v1.AssignmentService" in names


class TestTenants:
    def test_two_datasources_use_one_experiment_id_without_a_clash(self, tenants: Tenants) -> None:
        beta = tenants.client("beta-admin")
        beta.create("exp", weights=(0.0, 1.0))  # alpha's "exp" exists: no ALREADY_EXISTS
        alpha_assign, beta_assign = tenants.client("alpha-assign"), tenants.client("beta-assign")
        for i in range(20):
            request = apb.AssignRequest(experiment_id="exp", participant_id=f"p{i}")
            assert beta_assign.assignments.Assign(request).assignment.arm.id == "a1"
            got = alpha_assign.assignments.Assign(request).assignment
            assert got.experiment_id == "exp"
        stats = beta.experiments.GetExperimentStats(espb.GetExperimentStatsRequest(experiment_id="exp"))
        assert stats.total_assignments == 20 and stats.experiment_id == "exp"
        alpha_stats = tenants.client("alpha-read").experiments.GetExperimentStats(
            espb.GetExperimentStatsRequest(experiment_id="exp")
        )
        assert alpha_stats.total_assignments == 20
        assert [e.id for e in beta.experiments.ListExperiments(espb.ListExperimentsRequest()).experiments] == ["exp"]

    def test_the_default_seed_is_the_id_the_caller_knows(self, tenants: Tenants) -> None:
        """GrowthBook's seed defaults to the experiment key: a datasource's experiment hashes as
        GrowthBook would, whichever datasource holds it."""
        created = tenants.client("beta-admin").create("checkout")
        assert created.seed == "checkout" and created.id == "checkout"

    def test_an_id_naming_another_datasource_is_refused(self, tenants: Tenants) -> None:
        beta = tenants.client("beta-admin")
        for name in ("alpha/exp", "default/exp", "../exp"):
            with pytest.raises(grpc.RpcError) as caught:
                beta.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id=name))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_conditions_name_the_datasources_own_saved_groups(self, tenants: Tenants) -> None:
        beta = tenants.client("beta-admin")
        with pytest.raises(grpc.RpcError) as caught:  # alpha's "vip" is not beta's
            beta.create("targeted", condition='{"id": {"$inGroup": "vip"}}')
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        beta.groups.CreateSavedGroup(gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="vip"), ids=["b1"]))
        beta.create("targeted", condition='{"id": {"$inGroup": "vip"}}')
        assign = tenants.client("beta-assign").assignments
        inside = assign.Assign(apb.AssignRequest(experiment_id="targeted", participant_id="b1")).assignment
        outside = assign.Assign(apb.AssignRequest(experiment_id="targeted", participant_id="u1")).assignment
        assert inside.arm.id and not outside.arm.id  # u1 is in alpha's vip, not beta's

    def test_webhooks_hear_only_their_datasources_events(self, tenants: Tenants) -> None:
        t = tenants
        beta_hook = call(
            t.channel,
            *_method("WebhookService", "CreateWebhook"),
            wpb.CreateWebhookRequest(webhook=wpb.Webhook(url="http://127.0.0.1:9/beta")),
            t.metadata("beta-admin"),
        ).webhook.id
        t.client("alpha-admin").create("after-hooks")

        def deliveries(hook: str, key: str) -> list[Any]:
            reply = call(
                t.channel,
                *_method("WebhookService", "ListDeliveries"),
                wpb.ListDeliveriesRequest(webhook_id=hook),
                t.metadata(key),
            )
            return list(reply.deliveries)

        wait_until(lambda: any("after-hooks" in d.payload for d in deliveries(t.webhook_id, "alpha-admin")), 10)
        assert deliveries(beta_hook, "beta-admin") == []
        alpha_payload = next(d.payload for d in deliveries(t.webhook_id, "alpha-admin") if "after-hooks" in d.payload)
        assert "alpha/" not in alpha_payload  # callers see their own ids only


class TestKeys:
    def test_a_revoked_key_fails_on_another_server_process_within_a_second(
        self, tenants: Tenants, redis_url: str
    ) -> None:
        doomed = _create_key(tenants.channel, "alpha", [xpb.API_KEY_SCOPE_READ], tenants.keys["alpha-admin"])
        with serve("--redis-url", redis_url, "--auth", "on", refresh_interval="1") as other:
            channel = grpc.insecure_channel(other.target)
            stub = xgrpc.ApiKeyServiceStub(channel)
            get = Client.on(channel).experiments.GetExperiment
            metadata = [("x-api-key", doomed.secret), ("datasource-id", "alpha")]
            assert get(espb.GetExperimentRequest(experiment_id="exp"), metadata=metadata).experiment.id == "exp"
            stub.RevokeApiKey(
                xpb.RevokeApiKeyRequest(api_key_id=doomed.api_key.id),
                metadata=tenants.metadata("alpha-admin"),
                timeout=10,
            )
            revoked_at = time.monotonic()
            while True:
                try:
                    get(espb.GetExperimentRequest(experiment_id="exp"), metadata=metadata, timeout=5)
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                    break
                assert time.monotonic() - revoked_at < 1.0, "still accepted 1 s after revocation"
                time.sleep(0.01)
            elapsed = time.monotonic() - revoked_at
            channel.close()
        assert elapsed < 1.0

    def test_a_rate_limited_key_is_refused_while_another_is_served(self, tenants: Tenants) -> None:
        limited = _create_key(
            tenants.channel,
            "alpha",
            [xpb.API_KEY_SCOPE_ASSIGN],
            tenants.keys["alpha-admin"],
            requests_per_second=0.5,
            burst=2,
        ).secret
        assign = Client.on(tenants.channel).assignments.Assign
        request = apb.AssignRequest(experiment_id="exp", participant_id="p1")
        metadata = [("x-api-key", limited), ("datasource-id", "alpha")]
        assign(request, metadata=metadata)
        assign(request, metadata=metadata)
        with pytest.raises(grpc.RpcError) as caught:
            assign(request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "RATE_LIMITED"
        status = rpc_status.from_call(caught.value)
        assert status is not None
        info = error_details_pb2.RetryInfo()
        assert any(d.Unpack(info) for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR))
        assert 0 < info.retry_delay.ToTimedelta().total_seconds() <= 2.0
        for _ in range(10):  # the other key is untouched
            assign(request, metadata=tenants.metadata("alpha-assign"))

    def test_keys_are_listed_with_last_use_and_never_shown_again(self, tenants: Tenants) -> None:
        keys = call(
            tenants.channel,
            *_method("ApiKeyService", "ListApiKeys"),
            xpb.ListApiKeysRequest(),
            tenants.metadata("alpha-admin"),
        ).api_keys
        assert len(keys) == 4 and all(k.hint.startswith("asv_") and len(k.hint) == 8 for k in keys)
        assert all(secret not in str(keys) for secret in tenants.keys.values())
        tenants.server.call(tenants.server.running.key_ring.flush_use())  # type: ignore[union-attr]
        keys = call(
            tenants.channel,
            *_method("ApiKeyService", "ListApiKeys"),
            xpb.ListApiKeysRequest(),
            tenants.metadata("alpha-admin"),
        ).api_keys
        admin = next(k for k in keys if k.scopes == [xpb.API_KEY_SCOPE_ADMIN] and not k.HasField("revoke_time"))
        assert admin.HasField("last_used_time")

    def test_bad_key_requests_get_field_violations(self, tenants: Tenants) -> None:
        for key, field in [
            (xpb.ApiKey(), "api_key.scopes"),
            (xpb.ApiKey(scopes=[cast("xpb.ApiKeyScope", 7)]), "api_key.scopes[0]"),  # no such scope
            (xpb.ApiKey(scopes=[xpb.API_KEY_SCOPE_READ], requests_per_second=5), "api_key.burst"),
            (
                xpb.ApiKey(scopes=[xpb.API_KEY_SCOPE_READ], requests_per_second=-1, burst=1),
                "api_key.requests_per_second",
            ),
            (
                xpb.ApiKey(scopes=[xpb.API_KEY_SCOPE_READ], requests_per_second=1e-300, burst=1),
                "api_key.requests_per_second",
            ),  # its retry delay would overflow a Duration
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                xgrpc.ApiKeyServiceStub(tenants.channel).CreateApiKey(
                    xpb.CreateApiKeyRequest(api_key=key), metadata=tenants.metadata("alpha-admin")
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, key
            assert field in caught.value.details()
        with pytest.raises(grpc.RpcError) as caught:
            xgrpc.DatasourceServiceStub(tenants.channel).CreateDatasource(
                xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id="Bad/Id")),
                metadata=[("x-api-key", OPERATOR_KEY)],
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_redis_holds_no_raw_key(self, tenants: Tenants) -> None:
        """Every value of every key in Redis, read by type, and each key's DUMP, searched for every secret."""
        # Any: redis-py types every reply as bytes | str whatever the client decodes; this one gives bytes.
        client: Any = redis.Redis.from_url(tenants.redis_url)
        secrets = [s.encode() for s in (*tenants.keys.values(), OPERATOR_KEY)]
        seen = 0
        for name in client.scan_iter(count=1000):
            kind = client.type(name).decode()
            if kind == "string":
                values = [client.get(name)]
            elif kind == "hash":
                values = [b for pair in client.hgetall(name).items() for b in pair]
            elif kind == "set":
                values = list(client.smembers(name))
            elif kind == "zset":
                values = list(client.zrange(name, 0, -1))
            elif kind == "stream":
                values = [b for _, fields in client.xrange(name) for pair in fields.items() for b in pair]
            else:
                values = []
            values += [name, client.dump(name) or b""]
            seen += 1
            for value in values:
                assert not any(s in (value or b"") for s in secrets), name
        assert seen > 5
        client.close()


class TestStartup:
    def test_auth_off_is_refused_on_a_public_bind(self) -> None:
        with pytest.raises(ConfigError, match="loopback"):
            ServerConfig.load({}, host="0.0.0.0", auth="off")

    def test_auto_turns_auth_on_off_loopback(self) -> None:
        assert ServerConfig.load({}, host="0.0.0.0").auth
        assert not ServerConfig.load({}, host="127.0.0.1").auth
        assert ServerConfig.load({"ASSIGNSVC_AUTH": "on"}, host="127.0.0.1").auth
        with pytest.raises(ConfigError, match="ASSIGNSVC_AUTH"):
            ServerConfig.load({"ASSIGNSVC_AUTH": "maybe"})

    def test_serve_exits_2_on_a_public_bind_without_auth(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["serve", "--host", "0.0.0.0", "--auth", "off"]) == 2
        assert "loopback" in capsys.readouterr().err

    def test_a_malformed_operator_key_stops_the_server(self, server_config: ServerConfig) -> None:
        config = dataclasses.replace(server_config, auth=True, operator_key="asv_nope")
        with pytest.raises(ConfigError, match="ASSIGNSVC_OPERATOR_KEY"), running_server(config):
            pass

    def test_without_auth_the_server_warns_and_serves_the_default_datasource(
        self, server: ServerThread, caplog: pytest.LogCaptureFixture
    ) -> None:
        warnings = [r.getMessage() for r in caplog.get_records("setup") if r.levelname == "WARNING"]
        assert any("AUTHENTICATION IS OFF" in w for w in warnings)
        client = Client.connect(server.target)
        client.create("plain")
        reply = client.assignments.Assign(apb.AssignRequest(experiment_id="plain", participant_id="p"))
        assert reply.assignment.experiment_id == "plain"
        client.channel.close()


class TestCli:
    def test_bootstrap_then_datasources_and_keys_from_the_cli(
        self,
        auth_config: ServerConfig,
        redis_url: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        assert main(["bootstrap", "--redis-url", redis_url, "--datasource", "team-a"]) == 0
        printed = capsys.readouterr().out
        operator = printed.split("operator key (shown only now): ")[1].split()[0]
        admin = printed.split("(shown only now): ")[2].split()[0]
        with running_server(dataclasses.replace(auth_config, operator_key="")) as server:
            target = ["--target", server.target]
            monkeypatch.setenv("ASSIGNSVC_API_KEY", operator)
            assert main(["datasources", "create", "team-b", *target]) == 0
            assert main(["datasources", "list", "-o", "json", *target]) == 0
            assert '"team-b"' in capsys.readouterr().out
            monkeypatch.setenv("ASSIGNSVC_API_KEY", admin)
            monkeypatch.setenv("ASSIGNSVC_DATASOURCE", "team-a")
            assert main(["keys", "create", "--scopes", "assign,read", "--name", "app", *target]) == 0
            created = capsys.readouterr().out
            assert "key (shown only now" in created
            assert main(["keys", "list", "-o", "json", *target]) == 0
            listed = capsys.readouterr().out
            key_id = next(k["id"] for k in json.loads(listed) if k["name"] == "app")
            assert main(["keys", "revoke", key_id, *target]) == 0
            assert main(["experiments", "create", "e1", "--arms", "a:0.5,b:0.5", *target]) == 0
            monkeypatch.setenv("ASSIGNSVC_DATASOURCE", "team-b")
            assert main(["experiments", "list", *target]) == 1  # team-a's key is not team-b's
            assert "UNAUTHENTICATED" in capsys.readouterr().err

    def test_keygen_prints_a_well_formed_key(self, capsys: pytest.CaptureFixture[str]) -> None:
        from assignsvc.core.access import well_formed  # noqa: PLC0415

        assert main(["keygen"]) == 0
        assert well_formed(capsys.readouterr().out.strip())

    def test_bootstrap_without_a_running_embedded_redis_says_so(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["bootstrap", "--data-dir", str(tmp_path)]) == 2
        assert "no embedded Redis" in capsys.readouterr().err


class TestOperatorKeys:
    def test_an_operator_lists_and_revokes_bootstrapped_operator_keys(
        self, tenants: Tenants, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["bootstrap", "--redis-url", tenants.redis_url]) == 0
        stored = capsys.readouterr().out.split("(shown only now): ")[1].split()[0]
        stub = xgrpc.ApiKeyServiceStub(tenants.channel)
        as_stored = [("x-api-key", stored)]
        wait_until(
            lambda: (
                code_of(
                    tenants.channel,
                    *_method("DatasourceService", "ListDatasources"),
                    xpb.ListDatasourcesRequest(),
                    as_stored,
                )
                == grpc.StatusCode.OK
            )
        )
        listed = stub.ListApiKeys(xpb.ListApiKeysRequest(), metadata=[("x-api-key", OPERATOR_KEY)]).api_keys
        assert [k.name for k in listed] == ["bootstrap"]  # operator keys only, no datasource's
        stub.RevokeApiKey(xpb.RevokeApiKeyRequest(api_key_id=listed[0].id), metadata=[("x-api-key", OPERATOR_KEY)])
        assert (
            code_of(
                tenants.channel,
                *_method("DatasourceService", "ListDatasources"),
                xpb.ListDatasourcesRequest(),
                as_stored,
            )
            == grpc.StatusCode.UNAUTHENTICATED
        )
        with pytest.raises(grpc.RpcError) as caught:  # keys are made in a datasource, never here
            stub.CreateApiKey(
                xpb.CreateApiKeyRequest(api_key=xpb.ApiKey(scopes=[xpb.API_KEY_SCOPE_READ])),
                metadata=[("x-api-key", OPERATOR_KEY)],
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_an_admin_cannot_see_or_revoke_operator_keys(self, tenants: Tenants) -> None:
        stub = xgrpc.ApiKeyServiceStub(tenants.channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListApiKeys(xpb.ListApiKeysRequest(), metadata=[("x-api-key", tenants.keys["alpha-admin"])])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


class TestOpenCalls:
    """Streams and batches check their key as they go, not only when they start."""

    def test_a_revoked_key_ends_its_open_stream(self, tenants: Tenants) -> None:
        doomed = _create_key(tenants.channel, "alpha", [xpb.API_KEY_SCOPE_ASSIGN], tenants.keys["alpha-admin"])
        sent = threading.Event()

        def requests_out() -> Iterator[apb.StreamAssignRequest]:
            for i in range(200):
                if i == 5:
                    sent.set()
                    time.sleep(1.0)  # revoked meanwhile (below)
                yield apb.StreamAssignRequest(experiment_id="exp", participant_id=f"s{i}")

        stream = Client.on(tenants.channel).assignments.StreamAssign(
            requests_out(), metadata=[("x-api-key", doomed.secret), ("datasource-id", "alpha")], timeout=20
        )
        answers = []
        with pytest.raises(grpc.RpcError) as caught:
            for response in stream:
                answers.append(response)
                if len(answers) == 5:
                    assert sent.wait(5)
                    xgrpc.ApiKeyServiceStub(tenants.channel).RevokeApiKey(
                        xpb.RevokeApiKeyRequest(api_key_id=doomed.api_key.id), metadata=tenants.metadata("alpha-admin")
                    )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert 5 <= len(answers) < 200

    def test_stream_items_and_batch_items_count_against_the_rate_limit(self, tenants: Tenants) -> None:
        limited = _create_key(
            tenants.channel,
            "alpha",
            [xpb.API_KEY_SCOPE_ASSIGN],
            tenants.keys["alpha-admin"],
            requests_per_second=0.01,
            burst=3,
        ).secret
        metadata = [("x-api-key", limited), ("datasource-id", "alpha")]
        assignments = Client.on(tenants.channel).assignments
        stream = assignments.StreamAssign(
            iter([apb.StreamAssignRequest(experiment_id="exp", participant_id=f"r{i}") for i in range(6)]),
            metadata=metadata,
            timeout=10,
        )
        results = [r.result for r in stream]
        assert [r.HasField("assignment") for r in results] == [True, True, True, False, False, False]
        assert {r.error.code for r in results[3:]} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
        fresh = _create_key(
            tenants.channel,
            "alpha",
            [xpb.API_KEY_SCOPE_ASSIGN],
            tenants.keys["alpha-admin"],
            requests_per_second=0.01,
            burst=3,
        ).secret
        batch = apb.BatchAssignRequest(
            requests=[apb.AssignRequest(experiment_id="exp", participant_id=f"b{i}") for i in range(50)]
        )
        metadata = [("x-api-key", fresh), ("datasource-id", "alpha")]
        assert len(assignments.BatchAssign(batch, metadata=metadata).results) == 50  # admitted, then billed
        with pytest.raises(grpc.RpcError) as caught:
            assignments.Assign(apb.AssignRequest(experiment_id="exp", participant_id="p"), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestTls:
    def test_keys_travel_inside_tls_and_a_plaintext_client_gets_nothing(
        self,
        auth_config: ServerConfig,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
        cert.private_key_pem.write_to_path(str(key_file))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        ca.cert_pem.write_to_path(str(ca_file))
        config = dataclasses.replace(auth_config, tls_cert=cert_file, tls_key=key_file)
        with running_server(config) as server:
            secure = grpc.secure_channel(server.target, grpc.ssl_channel_credentials(ca_file.read_bytes()))
            operator = [("x-api-key", OPERATOR_KEY)]
            reply = xgrpc.DatasourceServiceStub(secure).ListDatasources(
                xpb.ListDatasourcesRequest(), metadata=operator, timeout=10
            )
            assert list(reply.datasources) == []
            plain = grpc.insecure_channel(server.target)
            with pytest.raises(grpc.RpcError) as caught:
                xgrpc.DatasourceServiceStub(plain).ListDatasources(
                    xpb.ListDatasourcesRequest(), metadata=operator, timeout=3
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            monkeypatch.setenv("ASSIGNSVC_API_KEY", OPERATOR_KEY)
            assert main(["datasources", "create", "over-tls", "--target", server.target, "--tls-ca", str(ca_file)]) == 0
            assert "over-tls" in capsys.readouterr().out
            secure.close()
            plain.close()

    def test_a_certificate_without_its_key_is_refused(self, tmp_path: Path) -> None:
        pem = tmp_path / "cert.pem"
        pem.write_text("x")
        with pytest.raises(ConfigError, match="go together"):
            ServerConfig.load({"ASSIGNSVC_TLS_CERT": str(pem)})
        with pytest.raises(ConfigError, match="no such file"):
            ServerConfig.load({"ASSIGNSVC_TLS_CERT": str(pem), "ASSIGNSVC_TLS_KEY": str(tmp_path / "missing")})
