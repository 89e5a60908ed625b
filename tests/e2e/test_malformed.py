"""Request bodies that do not decode, through a live server: INVALID_ARGUMENT with reason
MALFORMED_REQUEST (and the field at fault where one is found) on every RPC, one INFO line
per call and no traceback; StreamAssign answers such an item as its own result and goes on;
client streams end naming the message and write nothing; without credentials the body is
never read (UNAUTHENTICATED)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

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
from tests.support import Client, ServerThread, bad_request, bad_request_fields, error_reason, running_server
from tests.support.raw_fuzz import MARK, Records, nested_struct

METHODS = [
    method
    for module in (apb, bpb, espb, gpb, wpb, xpb)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
CALLS = [m for m in METHODS if not (m.client_streaming and m.server_streaming)]  # StreamAssign: per item
BAD_UTF8 = b"\xc3\x28"


def path(method: Any) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def with_bad_utf8(message: Any) -> bytes:
    """message's bytes with its MARK string(s) made invalid UTF-8 (the framing stays valid)."""
    raw = message.SerializeToString()
    assert MARK.encode() in raw
    return raw.replace(MARK.encode(), BAD_UTF8)


def raw_call(channel: grpc.Channel, method: Any, bodies: list[bytes], metadata: Any = None) -> list[bytes]:
    """Call method with raw request bytes (one body, or a stream of them); the raw answers."""
    kind = (method.client_streaming, method.server_streaming)
    if kind == (True, True):
        return list(channel.stream_stream(path(method))(iter(bodies), timeout=10, metadata=metadata))
    if kind == (True, False):
        return [channel.stream_unary(path(method))(iter(bodies), timeout=10, metadata=metadata)]
    if kind == (False, True):
        return list(channel.unary_stream(path(method))(bodies[0], timeout=10, metadata=metadata))
    return [channel.unary_unary(path(method))(bodies[0], timeout=10, metadata=metadata)]


def refused(channel: grpc.Channel, method: Any, bodies: list[bytes], metadata: Any = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        raw_call(channel, method, bodies, metadata)
    return error.value


@pytest.fixture
def server_log() -> Iterator[Records]:
    """What the server logs during the test (after its fixtures' setup)."""
    records = Records().attach()
    yield records
    records.detach()


def assert_no_traceback(records: Records) -> None:
    assert records.noisy() == []


@pytest.fixture
def live(server: ServerThread) -> Iterator[tuple[grpc.Channel, Client]]:
    channel = grpc.insecure_channel(server.target)
    client = Client.on(channel)
    client.create("e1")
    client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
    client.groups.CreateSavedGroup(gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id="g"), ids=["u1"]))
    yield channel, client
    channel.close()


class TestUndecodableBodies:
    """A body that is not the method's message gets INVALID_ARGUMENT / MALFORMED_REQUEST."""

    @pytest.mark.parametrize("method", CALLS, ids=lambda m: m.name)
    def test_every_rpc_refuses_a_corrupt_body(
        self, live: tuple[grpc.Channel, Client], server_log: Records, method: Any
    ) -> None:
        error = refused(live[0], method, [b"\xff"])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "MALFORMED_REQUEST"
        assert method.input_type.full_name in (error.details() or "")
        assert len(server_log.malformed()) == 1  # once per call
        assert_no_traceback(server_log)

    def test_bad_utf8_names_its_field(self, live: tuple[grpc.Channel, Client], server_log: Records) -> None:
        assign = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["Assign"]
        error = refused(live[0], assign, [bytes.fromhex("0a02c328")])  # experiment_id = c3 28
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "MALFORMED_REQUEST"
        assert bad_request(error) == {
            "experiment_id": "is not valid UTF-8 (does not decode as assignsvc.v1.AssignRequest)"
        }
        batch = apb.BatchAssignRequest(
            requests=[apb.AssignRequest(experiment_id="e1", participant_id=p) for p in ("ok", "ok2", MARK)]
        )
        method = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["BatchAssign"]
        error = refused(live[0], method, [with_bad_utf8(batch)])
        assert bad_request_fields(error) == ["requests[2].participant_id"]
        assert len(server_log.malformed()) == 2
        assert_no_traceback(server_log)

    def test_the_server_answers_well_formed_calls_after(self, live: tuple[grpc.Channel, Client]) -> None:
        assign = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["Assign"]
        for _ in range(3):
            refused(live[0], assign, [b"\x0a\x05ab"])  # a string cut off
        good = apb.AssignRequest(experiment_id="e1", participant_id="p").SerializeToString()
        (answer,) = raw_call(live[0], assign, [good])
        assert apb.AssignResponse.FromString(answer).assignment.arm.id in ("a0", "a1")


class TestNesting:
    """Attributes nested past 10 levels are refused; past protobuf's own limit too, never UNKNOWN."""

    @pytest.mark.parametrize("depth", [11, 20, 33, 34, 40, 100, 500])
    def test_deep_attributes(self, live: tuple[grpc.Channel, Client], server_log: Records, depth: int) -> None:
        request = apb.AssignRequest(experiment_id="e1", participant_id="p")
        request.attributes.CopyFrom(nested_struct(depth))
        assign = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["Assign"]
        error = refused(live[0], assign, [request.SerializeToString()])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error)[0].startswith("attributes")
        if depth >= 40:  # 3 messages per level (Struct, map entry, Value): past protobuf's 100
            assert error_reason(error) == "MALFORMED_REQUEST"
            assert bad_request_fields(error) == ["attributes"]
        assert_no_traceback(server_log)

    def test_a_deep_item_of_a_batch_is_named(self, live: tuple[grpc.Channel, Client]) -> None:
        request = apb.BatchAssignRequest()
        for i in range(3):
            request.requests.add(experiment_id="e1", participant_id=f"p{i}")
        request.requests[1].attributes.CopyFrom(nested_struct(200))
        batch = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["BatchAssign"]
        error = refused(live[0], batch, [request.SerializeToString()])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error) == ["requests[1].attributes"]


class TestStreams:
    """StreamAssign answers an undecodable item as its own result; client streams end, naming it."""

    def test_stream_assign_answers_each_undecodable_item_and_goes_on(
        self, live: tuple[grpc.Channel, Client], server_log: Records
    ) -> None:
        good = apb.StreamAssignRequest(experiment_id="e1", participant_id="p").SerializeToString()
        bad_utf8 = with_bad_utf8(apb.StreamAssignRequest(experiment_id="e1", participant_id=MARK))
        deep = apb.StreamAssignRequest(experiment_id="e1", participant_id="q")
        deep.attributes.CopyFrom(nested_struct(60))
        bodies = [b"\xff", good, bad_utf8, good, deep.SerializeToString(), b"\x0a\x09cut", good]
        method = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["StreamAssign"]
        results = [apb.StreamAssignResponse.FromString(raw).result for raw in raw_call(live[0], method, bodies)]
        assert [r.WhichOneof("result") for r in results] == [
            "error",
            "assignment",
            "error",
            "assignment",
            "error",
            "error",
            "assignment",
        ]
        assert {r.error.code for r in results if r.HasField("error")} == {grpc.StatusCode.INVALID_ARGUMENT.value[0]}
        assert "participant_id" in results[2].error.message and "attributes" in results[4].error.message
        assert len(server_log.malformed()) == 1  # once per call, however many items
        assert_no_traceback(server_log)

    def test_upload_ends_naming_the_message_and_changes_nothing(
        self, live: tuple[grpc.Channel, Client], server_log: Records
    ) -> None:
        channel, client = live
        etag = client.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="g")).saved_group.etag
        first = gpb.UploadSavedGroupIdsRequest(saved_group_id="g", etag=etag, mode=gpb.UPLOAD_MODE_ADD, ids=["u2"])
        bad = with_bad_utf8(gpb.UploadSavedGroupIdsRequest(ids=["u3", MARK]))
        method = gpb.DESCRIPTOR.services_by_name["SavedGroupService"].methods_by_name["UploadSavedGroupIds"]
        error = refused(channel, method, [first.SerializeToString(), first.SerializeToString(), bad])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "MALFORMED_REQUEST"
        assert bad_request_fields(error) == ["messages[2].ids[1]"]
        group = client.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="g")).saved_group
        assert (group.size, group.etag) == (1, etag)  # nothing half-written
        error = refused(channel, method, [b"\xff"])
        assert bad_request_fields(error) == ["messages[0]"]
        assert_no_traceback(server_log)

    def test_preassign_ends_naming_the_message_and_writes_nothing(
        self, live: tuple[grpc.Channel, Client], server_log: Records
    ) -> None:
        channel, client = live
        first = bpb.PreassignParticipantsRequest(
            experiment_id="pre", groups=[bpb.ParticipantGroup(participant_ids=["u1", "u2"])]
        )
        more = bpb.PreassignParticipantsRequest(groups=[bpb.ParticipantGroup(participant_ids=["u3"])])
        method = bpb.DESCRIPTOR.services_by_name["BulkAssignmentService"].methods_by_name["PreassignParticipants"]
        error = refused(channel, method, [first.SerializeToString(), more.SerializeToString(), b"\xff"])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "MALFORMED_REQUEST"
        assert bad_request_fields(error) == ["messages[2]"]
        export = bpb.ExportAssignmentsRequest(experiment_id="pre")
        chunks = list(client.bulk.ExportAssignments(export, timeout=10))
        assert sum(len(chunk.assignments) for chunk in chunks) == 0  # nothing half-written
        assert_no_traceback(server_log)


OPERATOR_KEY = new_key()


@pytest.fixture
def auth_server(server_config: ServerConfig) -> Iterator[tuple[grpc.Channel, str]]:
    """A live server with authentication on, and an ADMIN + ASSIGN key of datasource `ds`."""
    config = dataclasses.replace(server_config, auth=True, operator_key=OPERATOR_KEY)
    with running_server(config) as server:
        channel = grpc.insecure_channel(server.target)
        operator = [("x-api-key", OPERATOR_KEY)]
        xgrpc.DatasourceServiceStub(channel).CreateDatasource(
            xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id="ds")), metadata=operator, timeout=10
        )
        scopes = [xpb.API_KEY_SCOPE_ADMIN, xpb.API_KEY_SCOPE_ASSIGN, xpb.API_KEY_SCOPE_READ]
        key = xgrpc.ApiKeyServiceStub(channel).CreateApiKey(
            xpb.CreateApiKeyRequest(api_key=xpb.ApiKey(name="k", scopes=scopes)),
            metadata=[*operator, ("datasource-id", "ds")],
            timeout=10,
        )
        yield channel, key.secret
        channel.close()


class TestAuthenticationFirst:
    """The body is decoded only after the call's credentials held."""

    @pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
    def test_garbage_without_a_key_is_unauthenticated(
        self, auth_server: tuple[grpc.Channel, str], server_log: Records, method: Any
    ) -> None:
        error = refused(auth_server[0], method, [b"\xff", b"\x0a\x02\xc3\x28"])
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert server_log.malformed() == []  # never decoded
        assert_no_traceback(server_log)

    def test_garbage_with_a_key_is_malformed(self, auth_server: tuple[grpc.Channel, str]) -> None:
        channel, secret = auth_server
        assign = apb.DESCRIPTOR.services_by_name["AssignmentService"].methods_by_name["Assign"]
        error = refused(channel, assign, [b"\xff"], [("x-api-key", secret), ("datasource-id", "ds")])
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "MALFORMED_REQUEST"
