"""Fuzzing every RPC of a live server (auth on) with raw request bytes, below the protobuf
layer: random bytes, mutated valid messages (bits flipped, cut short, wire types changed),
invalid UTF-8, Structs nested 1-500 levels and 1-16 MiB bodies, on unary, client, server
and bidirectional streams, with and without credentials. No call may end in UNKNOWN or
INTERNAL or run into its deadline, calls without credentials are all UNAUTHENTICATED, the
server logs no traceback and is SERVING afterwards.

`make test` sends ~10^4 bodies; `make test-long` >= 10^5 (the `long` marker).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from assignsvc.config import ServerConfig
from assignsvc.core.access import new_key
from assignsvc.v1 import access_service_pb2 as xpb
from assignsvc.v1 import access_service_pb2_grpc as xgrpc
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import saved_group_service_pb2 as gpb
from assignsvc.v1 import webhook_service_pb2 as wpb
from tests.support import Client, assign, running_server
from tests.support.raw_fuzz import Records, body, huge_bodies

METHODS = [
    method
    for module in (apb, bpb, espb, gpb, wpb, xpb)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
BUGS = {"UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED"}  # DEADLINE_EXCEEDED: a call left hanging
DEADLINE_S = 30
STREAM_ITEMS = {True: 40, False: 1}  # bodies per call, by client_streaming
OPERATOR_KEY = new_key()
DATASOURCE = "fuzzds"  # never among the fuzzed strings: a fuzzed DeleteDatasource cannot hit it


@dataclasses.dataclass
class Target:
    """A live server with auth on, a datasource key for every scope, and objects to hit."""

    channel: grpc.Channel
    key: str
    records: Records

    def metadata(self, method: Any) -> list[tuple[str, str]]:
        if method.containing_service.name == "DatasourceService":
            return [("x-api-key", OPERATOR_KEY)]
        return [("x-api-key", self.key), ("datasource-id", DATASOURCE)]


@pytest.fixture
def target(server_config: ServerConfig) -> Iterator[Target]:
    config = dataclasses.replace(server_config, auth=True, operator_key=OPERATOR_KEY)
    with running_server(config) as server:
        channel = grpc.insecure_channel(server.target, options=[("grpc.max_receive_message_length", 32 << 20)])
        operator = [("x-api-key", OPERATOR_KEY)]
        xgrpc.DatasourceServiceStub(channel).CreateDatasource(
            xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id=DATASOURCE)), metadata=operator, timeout=10
        )
        scopes = [xpb.API_KEY_SCOPE_ADMIN, xpb.API_KEY_SCOPE_ASSIGN, xpb.API_KEY_SCOPE_READ]
        secret = (
            xgrpc.ApiKeyServiceStub(channel)
            .CreateApiKey(
                xpb.CreateApiKeyRequest(api_key=xpb.ApiKey(name="fuzz", scopes=scopes)),
                metadata=[*operator, ("datasource-id", DATASOURCE)],
                timeout=10,
            )
            .secret
        )
        t = Target(channel, secret, Records())
        client = Client.on(_with_key(channel, t.metadata(METHODS[0])))
        client.create("fz0")
        client.create("fz1", weights=(0.2, 0.3, 0.5), condition='{"country": "US"}')
        client.create("fzpre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        client.groups.CreateSavedGroup(
            gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="grp0"), ids=["p1", "p2"]), timeout=10
        )
        t.records.attach()
        try:
            yield t
        finally:
            t.records.detach()
            channel.close()


def _with_key(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> grpc.Channel:
    class Add(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(details._replace(metadata=[*(details.metadata or ()), *metadata]), request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(details._replace(metadata=[*(details.metadata or ()), *metadata]), request)

    return grpc.intercept_channel(channel, Add())


class RawFuzzer:
    """Sends raw bodies to every RPC and counts the final status of each call."""

    def __init__(self, target: Target, seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.sent = 0
        self.codes: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}  # by credentials
        self.bugs: list[str] = []
        self._stubs = {}
        for method in METHODS:
            path = f"/{method.containing_service.full_name}/{method.name}"
            kind = ("stream" if method.client_streaming else "unary") + "_"
            kind += "stream" if method.server_streaming else "unary"
            self._stubs[method.full_name] = getattr(target.channel, kind)(path)  # bytes in, bytes out

    def call(self, method: Any, bodies: list[bytes], credentials: bool) -> None:
        stub = self._stubs[method.full_name]
        metadata = self.target.metadata(method) if credentials else None
        self.sent += len(bodies)
        try:
            answer = stub(iter(bodies) if method.client_streaming else bodies[0], timeout=DEADLINE_S, metadata=metadata)
            if method.server_streaming:
                for _ in answer:
                    pass
            code = "OK"
        except grpc.RpcError as error:
            code = error.code().name
            if code in BUGS or not (credentials or code == "UNAUTHENTICATED"):
                sizes = [len(b) for b in bodies]
                self.bugs.append(f"{method.name} {code} {error.details()!r:.300} <- sizes {sizes} {bodies[:3]!r:.300}")
        self.codes[credentials][code] += 1

    def round(self, credentials: bool) -> None:
        """Every RPC once, with fresh bodies."""
        for method in METHODS:
            items = STREAM_ITEMS[method.client_streaming]
            self.call(method, [body(method.input_type, self.rng) for _ in range(items)], credentials)

    def huge(self, megabytes: list[int], credentials: bool) -> None:
        """Bodies of 1-16 MiB to a unary, a client-streaming and a bidirectional RPC."""
        for method in METHODS:
            if method.name in ("Assign", "UploadSavedGroupIds", "StreamAssign", "CreateExperiment"):
                self.call(method, huge_bodies(method.input_type, self.rng, megabytes), credentials)


def run_raw_fuzz(target: Target, bodies: int, seed: int) -> RawFuzzer:
    fuzzer = RawFuzzer(target, seed)
    fuzzer.huge([1, 16], credentials=False)
    fuzzer.huge([1, 4, 16], credentials=True)
    while fuzzer.sent < bodies:
        fuzzer.round(credentials=True)
        if fuzzer.rng.random() < 0.2:
            fuzzer.round(credentials=False)
    print("raw fuzz: bodies", fuzzer.sent, "calls by status", {k: dict(v) for k, v in fuzzer.codes.items()})
    assert fuzzer.bugs == []
    assert set(fuzzer.codes[False]) == {"UNAUTHENTICATED"}
    with_key = fuzzer.codes[True]
    assert with_key["OK"] > 0 and with_key["INVALID_ARGUMENT"] > 0  # decoded and undecodable bodies both
    assert target.records.malformed(), "no malformed request was logged"
    assert target.records.noisy() == []  # no traceback, nothing above INFO
    health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    client = Client.on(_with_key(target.channel, target.metadata(METHODS[0])))
    client.create("after-raw-fuzz")
    assert assign(client, "after-raw-fuzz", "still-works").arm.id
    return fuzzer


class TestRawFuzz:
    """Raw bodies to every RPC never get UNKNOWN, INTERNAL or a hang; the server stays healthy."""

    def test_every_rpc_ten_thousand_bodies(self, target: Target) -> None:
        assert run_raw_fuzz(target, 10_000, seed=1).sent >= 10_000

    @pytest.mark.long
    def test_every_rpc_a_hundred_thousand_bodies(self, target: Target) -> None:
        assert run_raw_fuzz(target, 100_000, seed=2).sent >= 100_000
