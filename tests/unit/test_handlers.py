"""api.handlers without a server: every servicer method gets a bytes-in handler of its
method's kind, and the error for an undecodable body names the field at fault."""

from __future__ import annotations

import inspect
from typing import Any, cast

import pytest
from google.protobuf import descriptor, struct_pb2
from google.protobuf.message import DecodeError

from assignsvc.api import (
    AssignmentServicer,
    BulkAssignmentServicer,
    ExperimentServicer,
    SavedGroupServicer,
    WebhookServicer,
)
from assignsvc.api.access_servicer import ApiKeyServicer, DatasourceServicer
from assignsvc.api.handlers import _implemented, locate, malformed, method_handler, service_of
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import saved_group_service_pb2 as gpb

SERVICERS = [
    ExperimentServicer,
    AssignmentServicer,
    BulkAssignmentServicer,
    WebhookServicer,
    SavedGroupServicer,
    DatasourceServicer,
    ApiKeyServicer,
]


def _decode_error(message: type, raw: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as error:
        message.FromString(raw)  # type: ignore[attr-defined]
    return error.value


class TestRegistration:
    """Each servicer's service is found from its class; each method gets a raw-bytes handler."""

    def test_every_method_of_every_service_is_implemented_and_handled_raw(self) -> None:
        names = set()
        for servicer in SERVICERS:
            service = service_of(servicer)
            for method in service.methods:
                behavior = getattr(servicer, method.name)
                assert _implemented(servicer, method.name), method.name
                handler = method_handler(method, behavior)
                names.add(f"{service.full_name}/{method.name}")
                assert handler.request_deserializer is None  # decoded inside, after authentication
                assert handler.request_streaming is method.client_streaming
                assert handler.response_streaming is method.server_streaming
                decoded = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
                streams_out = inspect.isasyncgenfunction(decoded)
                assert streams_out is method.server_streaming or inspect.iscoroutinefunction(decoded)
        assert len(names) == 37

    def test_a_class_without_a_generated_base_is_refused(self) -> None:
        with pytest.raises(TypeError, match="no generated servicer"):
            service_of(dict)


class TestLocate:
    """The path of the field whose own bytes do not decode."""

    def test_a_string_with_bad_utf8(self) -> None:
        raw = apb.AssignRequest(experiment_id="e", participant_id="@@").SerializeToString().replace(b"@@", b"\xc3(")
        assert locate(_descriptor(apb.AssignRequest), raw) == "participant_id"

    def test_an_item_of_a_repeated_message(self) -> None:
        batch = apb.BatchAssignRequest(requests=[apb.AssignRequest(participant_id=p) for p in ("a", "b", "@@")])
        raw = batch.SerializeToString().replace(b"@@", b"\xc3(")
        assert locate(_descriptor(apb.BatchAssignRequest), raw) == "requests[2].participant_id"

    def test_a_repeated_string_and_a_map(self) -> None:
        ids = gpb.UploadSavedGroupIdsRequest(ids=["a", "@@"]).SerializeToString().replace(b"@@", b"\xc3(")
        assert locate(_descriptor(gpb.UploadSavedGroupIdsRequest), ids) == "ids[1]"
        group = bpb.PreassignParticipantsRequest(groups=[bpb.ParticipantGroup(strata={"k": "@@"})])
        raw = group.SerializeToString().replace(b"@@", b"\xc3(")
        assert locate(_descriptor(bpb.PreassignParticipantsRequest), raw) == "groups[0].strata"

    def test_a_struct_past_the_depth_limit_is_named_not_entered(self) -> None:
        inner = struct_pb2.Struct()
        for _ in range(60):
            outer = struct_pb2.Struct()
            outer.fields["a"].struct_value.CopyFrom(inner)
            inner = outer
        request = apb.AssignRequest(experiment_id="e")
        request.attributes.CopyFrom(inner)
        assert locate(_descriptor(apb.AssignRequest), request.SerializeToString()) == "attributes"

    def test_a_field_cut_short(self) -> None:
        assert locate(_descriptor(espb.GetExperimentRequest), b"\x0a\x05ab") == "experiment_id"

    @pytest.mark.parametrize("raw", [b"\xff", b"\x0f", b"\x80" * 12, b""])
    def test_broken_framing_names_no_field(self, raw: bytes) -> None:
        assert locate(_descriptor(espb.GetExperimentRequest), raw) == ""


class TestMalformed:
    """The error's field and description, in the caller's terms."""

    def test_a_field_found(self) -> None:
        raw = bytes.fromhex("0a02c328")
        error = malformed(_descriptor(apb.AssignRequest), raw, _decode_error(apb.AssignRequest, raw))
        assert error.reason == "MALFORMED_REQUEST"
        assert [(v.field, v.description) for v in error.violations] == [
            ("experiment_id", "is not valid UTF-8 (does not decode as assignsvc.v1.AssignRequest)")
        ]

    def test_no_field_found(self) -> None:
        error = malformed(_descriptor(apb.AssignRequest), b"\xff", _decode_error(apb.AssignRequest, b"\xff"))
        assert error.violations == []
        assert error.message == (
            "malformed request: is not valid protobuf wire format (does not decode as assignsvc.v1.AssignRequest)"
        )

    def test_a_stream_message(self) -> None:
        raw = b"\xff"
        error = malformed(_descriptor(apb.AssignRequest), raw, _decode_error(apb.AssignRequest, raw), "messages[3]")
        assert [v.field for v in error.violations] == ["messages[3]"]


def _descriptor(message_type: Any) -> descriptor.Descriptor:
    """A message type's descriptor as the stubs type it (they also allow upb's class)."""
    return cast(descriptor.Descriptor, message_type.DESCRIPTOR)
