"""The live server over gRPC, against a real Redis: API behaviour and error statuses."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import (
    Client,
    assign,
    bad_request_fields,
    error_reason,
    free_port,
    running_server,
    wait_until,
)


class TestExperimentService:
    """Create, get and list, with defaults, validation and pagination."""

    def test_create_fills_defaults_and_get_returns_it(self, client: Client) -> None:
        created = client.experiments.CreateExperiment(
            espb.CreateExperimentRequest(
                experiment=epb.Experiment(
                    id="checkout", arms=[epb.Arm(id="c", weight=0.5), epb.Arm(id="t", weight=0.5)]
                )
            )
        ).experiment
        assert (created.name, created.seed, created.coverage) == ("checkout", "checkout", 1.0)
        assert created.status == epb.EXPERIMENT_STATUS_DRAFT
        assert created.hash_algorithm == epb.HASH_ALGORITHM_MURMUR3
        assert created.type == epb.EXPERIMENT_TYPE_ONLINE
        assert [a.name for a in created.arms] == ["c", "t"]
        assert created.create_time.seconds > 0 and created.update_time == created.create_time
        fetched = client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id="checkout"))
        assert fetched.experiment == created

    def test_duplicate_id_is_already_exists(self, client: Client) -> None:
        client.create("dup")
        with pytest.raises(grpc.RpcError) as err:
            client.create("dup")
        assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(err.value) == "EXPERIMENT_ALREADY_EXISTS"

    def test_invalid_experiment_names_every_bad_field(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create(
                "bad id",
                weights=(0.5, 0.6),
                coverage=1.5,
                namespace=epb.Namespace(id="ns", range_start=0.6, range_end=0.2),
            )
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert sorted(bad_request_fields(err.value)) == [
            "experiment.arms",
            "experiment.coverage",
            "experiment.id",
            "experiment.namespace.range_end",
        ]
        with pytest.raises(grpc.RpcError) as err:
            client.experiments.CreateExperiment(espb.CreateExperimentRequest())
        assert bad_request_fields(err.value) == ["experiment"]

    def test_unknown_enum_value_is_invalid_argument(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create("enum", hash_algorithm=42)
        assert bad_request_fields(err.value) == ["experiment.hash_algorithm"]

    def test_unknown_experiment_is_not_found(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id="nope"))
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert error_reason(err.value) == "EXPERIMENT_NOT_FOUND"

    def test_list_pages_through_everything_in_id_order(self, client: Client) -> None:
        ids = [f"exp-{i:02d}" for i in range(7)]
        for experiment_id in reversed(ids):
            client.create(experiment_id)
        seen, token = [], ""
        while True:
            page = client.experiments.ListExperiments(espb.ListExperimentsRequest(page_size=3, page_token=token))
            seen += [e.id for e in page.experiments]
            token = page.next_page_token
            if not token:
                break
        assert seen == ids

    def test_bad_page_token_and_size(self, client: Client) -> None:
        for request, field in [
            (espb.ListExperimentsRequest(page_token="not-a-token!"), "page_token"),
            (espb.ListExperimentsRequest(page_size=-1), "page_size"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                client.experiments.ListExperiments(request)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_fields(err.value) == [field]


class TestAssign:
    """Assign creates once and then returns the stored arm; GetAssignment never creates."""

    def test_new_then_sticky(self, client: Client) -> None:
        client.create("e1")
        first = assign(client, "e1", "alice")
        assert first.in_experiment and first.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT
        assert first.arm.id == f"a{first.arm.index}" and first.arm.name == first.arm.id
        again = assign(client, "e1", "alice")
        assert again.reason == apb.ASSIGNMENT_REASON_STICKY
        assert (again.arm, again.first_seen_time) == (first.arm, first.first_seen_time)
        looked = client.assignments.GetAssignment(apb.GetAssignmentRequest(experiment_id="e1", participant_id="alice"))
        assert looked.assignment.arm == first.arm

    def test_get_assignment_never_creates(self, client: Client) -> None:
        client.create("e2")
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                client.assignments.GetAssignment(apb.GetAssignmentRequest(experiment_id="e2", participant_id="bob"))
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert assign(client, "e2", "bob").reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT

    def test_excluded_participants_are_not_stored(self, client: Client) -> None:
        client.create("half", coverage=0.5, namespace=epb.Namespace(id="ns", range_start=0.0, range_end=0.5))
        reasons: dict[int, list[str]] = {}
        for i in range(300):
            result = assign(client, "half", f"p{i}")
            reasons.setdefault(result.reason, []).append(f"p{i}")
            if not result.in_experiment:
                assert not result.HasField("arm") and not result.HasField("first_seen_time")
        assert set(reasons) == {
            apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT,
            apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE,
            apb.ASSIGNMENT_REASON_EXCLUDED_BY_NAMESPACE,
        }
        for pid in reasons[apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE][:20]:
            with pytest.raises(grpc.RpcError):
                client.assignments.GetAssignment(apb.GetAssignmentRequest(experiment_id="half", participant_id=pid))

    def test_draft_and_preassigned_create_nothing(self, client: Client) -> None:
        client.create("draft", status=epb.EXPERIMENT_STATUS_DRAFT)
        client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        assert assign(client, "draft", "x").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING
        assert assign(client, "pre", "x").reason == apb.ASSIGNMENT_REASON_NOT_PREASSIGNED
        assert not assign(client, "draft", "x").in_experiment

    def test_outside_the_schedule_window_creates_nothing(self, client: Client) -> None:
        future = Timestamp(seconds=int(time.time()) + 3600)
        past_start, past_end = Timestamp(seconds=1_000), Timestamp(seconds=2_000)
        client.create("later", start_time=future)
        client.create("over", start_time=past_start, end_time=past_end)
        assert assign(client, "later", "x").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_STARTED
        assert assign(client, "over", "x").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_ENDED

    @pytest.mark.parametrize(
        ("experiment_id", "participant_id", "code", "field"),
        [
            ("e", "", grpc.StatusCode.INVALID_ARGUMENT, "participant_id"),
            ("e", "x" * 257, grpc.StatusCode.INVALID_ARGUMENT, "participant_id"),
            ("", "x", grpc.StatusCode.INVALID_ARGUMENT, "experiment_id"),
            ("bad id", "x", grpc.StatusCode.INVALID_ARGUMENT, "experiment_id"),
            ("missing", "x", grpc.StatusCode.NOT_FOUND, None),
        ],
    )
    def test_bad_input(
        self, client: Client, experiment_id: str, participant_id: str, code: grpc.StatusCode, field: str | None
    ) -> None:
        client.create("e")
        ids: dict[str, Any] = {"experiment_id": experiment_id, "participant_id": participant_id}
        for call, request in [
            (client.assignments.Assign, apb.AssignRequest(**ids)),
            (client.assignments.GetAssignment, apb.GetAssignmentRequest(**ids)),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                call(request)
            assert err.value.code() is code
            if field:
                assert bad_request_fields(err.value) == [field]

    def test_non_ascii_and_astral_ids(self, client: Client) -> None:
        client.create("uni", hash_algorithm=epb.HASH_ALGORITHM_GROWTHBOOK_V2)
        for pid in ["José", "用户-42", "\U0001f600\U0001f680", "a" * 256]:
            first = assign(client, "uni", pid)
            assert first.participant_id == pid
            assert assign(client, "uni", pid).arm == first.arm


class TestStandardServices:
    """grpc.health.v1 and server reflection are on."""

    def test_health_serving(self, client: Client) -> None:
        stub = health_pb2_grpc.HealthStub(client.channel)
        for service in (
            "",
            "assignsvc.v1.AssignmentService",
            "assignsvc.v1.ExperimentService",
            "assignsvc.v1.WebhookService",
        ):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    def test_reflection_lists_services(self, client: Client) -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert {
            "assignsvc.v1.AssignmentService",
            "assignsvc.v1.ExperimentService",
            "assignsvc.v1.WebhookService",
            "grpc.health.v1.Health",
        } <= names

    def test_reflection_v1_is_served_beside_v1alpha(self, client: Client) -> None:
        """grpcurl and current clients ask v1 first; its messages are v1alpha's on the wire."""
        info = client.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="assignsvc.v1.AssignmentService")
        replies = list(info(iter([reflection_pb2.ServerReflectionRequest(list_services=""), request]), timeout=10))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"assignsvc.v1.AssignmentService", "grpc.reflection.v1.ServerReflection"} <= names
        assert replies[1].file_descriptor_response.file_descriptor_proto


class TestRedisFailure:
    """Redis down: UNAVAILABLE with RetryInfo, nothing half-written; back when Redis is."""

    def test_unavailable_then_recovers(self, tmp_path: object) -> None:
        port = free_port()
        redis_proc = RedisServerProcess(tmp_path / "r", port=port, appendonly=True)  # type: ignore[operator]
        redis_proc.start()
        config = ServerConfig(
            port=0, redis_url=redis_proc.url, redis_timeout_s=0.5, refresh_interval_s=0.2, cache_size=0
        )  # every call must reach Redis here
        try:
            with running_server(config) as server:
                client = Client.connect(server.target)
                client.create("fragile")
                alice = assign(client, "fragile", "alice")
                redis_proc.stop()
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as err:
                    assign(client, "fragile", "bob")
                assert err.value.code() is grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 3
                status = rpc_status.from_call(err.value)
                assert status is not None
                assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
                redis_proc.start()
                wait_until(lambda: _assign_ok(client, "fragile", "alice"), timeout_s=10)
                # every pooled connection is usable again, not just the one that recovered
                futures = [
                    client.assignments.Assign.future(apb.AssignRequest(experiment_id="fragile", participant_id="alice"))
                    for _ in range(32)
                ]
                assert {f.result(timeout=10).assignment.arm.id for f in futures} == {alice.arm.id}
                client.channel.close()
        finally:
            redis_proc.stop()


def _assign_ok(client: Client, experiment: str, participant: str) -> bool:
    try:
        assign(client, experiment, participant)
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        return False
    return True
