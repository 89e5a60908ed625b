"""api.local_calls: a registered unary handler (the interceptor's checks, the bytes-in
decoding, the servicer) called in process, as the HTTP edge's transcoded routes call it,
ends as a gRPC call would: the reply's bytes, or the status with its rich details."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from assignsvc.api import AssignmentServicer
from assignsvc.api.handlers import method_handler, service_of
from assignsvc.api.interceptors import ServerInterceptor
from assignsvc.api.local_calls import LocalAbort, LocalUnary, local_unaries
from assignsvc.app.access import KeyRing
from assignsvc.app.assign import Assigner
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.store.memory import MemoryStores
from assignsvc.v1 import assignment_service_pb2 as apb

ASSIGN = "/assignsvc.v1.AssignmentService/Assign"
EXPERIMENT = Experiment(
    id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.RUNNING
)


async def _assign(raw: bytes, metadata: tuple[tuple[str, str], ...] = (), key_ring: KeyRing | None = None) -> bytes:
    stores = MemoryStores.create()
    registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
    registry.put(EXPERIMENT)
    servicer = AssignmentServicer(Assigner(registry, stores.assignments))
    service = service_of(type(servicer))
    interceptor = ServerInterceptor(0, record_metrics=False, key_ring=key_ring)
    handlers = {
        f"/{service.full_name}/{m.name}": interceptor.wrap(
            f"/{service.full_name}/{m.name}", method_handler(m, getattr(servicer, m.name))
        )
        for m in service.methods
    }
    local = local_unaries(handlers)
    assert set(local) == {name for name, h in handlers.items() if h.unary_unary is not None}
    return await local[ASSIGN](raw, metadata, 5.0)


def _refusal(raw: bytes, **options: Any) -> LocalAbort:
    with pytest.raises(LocalAbort) as ended:
        asyncio.run(_assign(raw, **options))
    return ended.value


def test_a_reply_is_the_bytes_grpc_would_send() -> None:
    request = apb.AssignRequest(experiment_id="exp", participant_id="p1").SerializeToString()
    reply = apb.AssignResponse.FromString(asyncio.run(_assign(request)))
    assert reply.assignment.arm.id in {"a", "b"} and reply.assignment.in_experiment


def test_a_domain_error_ends_with_its_status_and_details() -> None:
    ended = _refusal(apb.AssignRequest(experiment_id="nope", participant_id="p1").SerializeToString())
    assert ended.code is grpc.StatusCode.NOT_FOUND and "nope" in ended.details
    [(_, value)] = [pair for pair in ended.trailing_metadata if pair[0] == "grpc-status-details-bin"]
    assert status_pb2.Status.FromString(value).code == grpc.StatusCode.NOT_FOUND.value[0]


def test_undecodable_bytes_name_the_field() -> None:
    ended = _refusal(b"\x0a\x02\xc3\x28")  # experiment_id with bad UTF-8
    assert ended.code is grpc.StatusCode.INVALID_ARGUMENT
    details = dict(ended.trailing_metadata)["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert [v.field for v in bad.field_violations] == ["experiment_id"]


def test_the_interceptors_checks_run_first() -> None:
    ended = _refusal(b"\xff", key_ring=KeyRing(MemoryStores.create().access))  # no key: refused before decoding
    assert ended.code is grpc.StatusCode.UNAUTHENTICATED


def test_a_handler_past_its_time_is_deadline_exceeded() -> None:
    async def never(raw: bytes, context: Any) -> bytes:
        await asyncio.sleep(10)
        return b""

    handler = grpc.unary_unary_rpc_method_handler(never, None, bytes)
    with pytest.raises(LocalAbort) as ended:
        asyncio.run(LocalUnary(handler)(b"", (), 0.05))
    assert ended.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
