"""Fuzzing every RPC of a live server with generated requests: no call may end in
UNKNOWN or INTERNAL (both mean an unhandled bug), and the server stays healthy.

`make test` runs a ~10^4-request round; `make test-long` (also run by .ci/run) runs
the >= 10^5-request one. Most of the count comes from BatchAssign and StreamAssign
items built from a seeded generator; every RPC also gets hypothesis-built messages.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assignsvc.config import ServerConfig
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import (
    bulk_assignment_service_pb2,
    experiment_service_pb2,
    saved_group_service_pb2,
    webhook_service_pb2,
)
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import saved_group_service_pb2 as gpb
from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import Client, assign, bad_request_fields, running_server, struct
from tests.support.proto_fuzz import bulk_items, messages

SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in [
        (apb, "AssignmentService"),
        (bulk_assignment_service_pb2, "BulkAssignmentService"),
        (experiment_service_pb2, "ExperimentService"),
        (saved_group_service_pb2, "SavedGroupService"),
        (webhook_service_pb2, "WebhookService"),
    ]
]
METHODS = [method for service in SERVICES for method in service.methods]
BUGS = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
BATCH_ITEMS, STREAM_ITEMS = 500, 100


class Fuzzer:
    """Sends generated calls on one channel and keeps every UNKNOWN / INTERNAL answer."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.sent = 0
        self.bugs: list[str] = []
        self.codes: Counter[str] = Counter()  # calls by final status, to see what the run reached
        self._calls = {}
        for method in METHODS:
            path = f"/{method.containing_service.full_name}/{method.name}"
            kind = (
                ("stream" if method.client_streaming else "unary")
                + "_"
                + ("stream" if method.server_streaming else "unary")
            )
            self._calls[method.name] = (
                getattr(channel, kind)(
                    path,
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=lambda b: b,  # answers are not checked here: only their status
                ),
                method,
            )

    def call(self, name: str, requests: list[Message]) -> None:
        """One call of method name (all requests in one stream if it is client-streaming)."""
        stub, method = self._calls[name]
        self.sent += len(requests) if method.client_streaming else 1
        argument: Any = iter(requests) if method.client_streaming else requests[0]
        try:
            answer = stub(argument, timeout=20)
            if method.server_streaming:
                for _ in answer:
                    pass
            self.codes["OK"] += 1
        except grpc.RpcError as error:
            self.codes[error.code().name] += 1
            if error.code() in BUGS:
                self.bugs.append(f"{name}: {error.code()} {error.details()} <- {requests!r:.400}")

    def bulk(self, seed: int) -> None:
        """A BatchAssign of BATCH_ITEMS and a StreamAssign of STREAM_ITEMS generated items."""
        items = [_assign_request(apb.AssignRequest, *item) for item in bulk_items(seed, BATCH_ITEMS)]
        self.call("BatchAssign", [apb.BatchAssignRequest(requests=items)])
        self.sent += len(items) - 1
        stream = [_assign_request(apb.StreamAssignRequest, *item) for item in bulk_items(seed + 1, STREAM_ITEMS)]
        self.call("StreamAssign", stream)


def _assign_request(cls: Any, experiment: str, participant: str, attributes: dict[str, Any] | None) -> Any:
    request = cls(experiment_id=experiment, participant_id=participant)
    if attributes is not None:
        request.attributes.CopyFrom(struct(attributes))
    return request


CALLS = st.tuples(*[st.lists(messages(m.input_type), min_size=1, max_size=3) for m in METHODS])


@pytest.fixture
def fuzz_client(server_config: ServerConfig) -> Iterator[Client]:
    """A live server (webhooks may reach loopback) with experiments, a group and a webhook to hit."""
    config = dataclasses.replace(server_config, webhook_allow_networks=("127.0.0.0/8",))
    with running_server(config) as server:
        client = Client.connect(server.target)
        client.create("fz0")
        client.create("fz1", weights=(0.2, 0.3, 0.5), condition='{"country": "US"}')
        client.create("fz2", status=0)
        client.create("fzpre", type=2)
        client.groups.CreateSavedGroup(
            gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="grp0"), ids=["p1", "p2"]), timeout=10
        )
        yield client
        client.channel.close()


def run_fuzz(client: Client, examples: int) -> int:
    """Run `examples` rounds (every RPC, plus the bulk items); the number of requests sent."""
    fuzzer = Fuzzer(client.channel)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(calls=CALLS, seed=st.integers(0, 2**32 - 1))
    def round_(calls: tuple[list[Message], ...], seed: int) -> None:
        for method, requests in zip(METHODS, calls, strict=True):
            fuzzer.call(method.name, requests)
        fuzzer.bulk(seed)

    round_()
    print("fuzz: calls by status", dict(fuzzer.codes), "requests", fuzzer.sent)  # shown with -s
    assert fuzzer.bugs == []
    assert fuzzer.codes["OK"] > 0 and fuzzer.codes["INVALID_ARGUMENT"] > 0  # both paths were reached
    health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    client.create("after-fuzz")
    assert assign(client, "after-fuzz", "still-works").arm.id
    return fuzzer.sent


class TestFuzz:
    """Generated requests to every RPC never get UNKNOWN or INTERNAL; the server stays healthy."""

    def test_every_rpc_ten_thousand_requests(self, fuzz_client: Client) -> None:
        assert run_fuzz(fuzz_client, 16) >= 10_000

    @pytest.mark.long
    def test_every_rpc_a_hundred_thousand_requests(self, fuzz_client: Client) -> None:
        assert run_fuzz(fuzz_client, 160) >= 100_000


class TestFoundByFuzzing:
    """Requests the fuzzer once turned into INTERNAL now get INVALID_ARGUMENT."""

    def test_out_of_range_timestamps_and_durations(self, fuzz_client: Client) -> None:
        experiment = epb.Experiment(id="late", arms=[epb.Arm(id="a", weight=0.5), epb.Arm(id="b", weight=0.5)])
        experiment.start_time.nanos = -1
        with pytest.raises(grpc.RpcError) as bad_time:
            fuzz_client.experiments.CreateExperiment(espb.CreateExperimentRequest(experiment=experiment), timeout=10)
        assert bad_time.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(bad_time.value) == ["experiment.start_time"]
        rotate = wpb.RotateWebhookSecretRequest(webhook_id="wh_x")
        rotate.grace_period.seconds, rotate.grace_period.nanos = 5, -1
        with pytest.raises(grpc.RpcError) as bad_duration:
            wgrpc.WebhookServiceStub(fuzz_client.channel).RotateWebhookSecret(rotate, timeout=10)
        assert bad_duration.value.code() is grpc.StatusCode.INVALID_ARGUMENT
