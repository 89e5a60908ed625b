"""BatchAssign and StreamAssign through a live server: per-item errors, order, the same
sticky arm as unary Assign, the batch size limit and stream flow control."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from tests.support import Client, ServerThread, bad_request_fields


def batch(client: Client, *pairs: tuple[str, str]) -> list[apb.AssignResult]:
    requests = [apb.AssignRequest(experiment_id=e, participant_id=p) for e, p in pairs]
    return list(client.assignments.BatchAssign(apb.BatchAssignRequest(requests=requests)).results)


def violations(result: apb.AssignResult) -> list[str]:
    fields = []
    for detail in result.error.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


class TestBatchAssign:
    def test_items_succeed_or_fail_alone(self, client: Client) -> None:
        client.create("b1")
        client.create("b2", weights=(0.2, 0.3, 0.5))
        results = batch(client, ("b1", "alice"), ("b1", ""), ("nope", "alice"), ("b2", "alice"), ("b1", "alice"))
        kinds = [r.WhichOneof("result") for r in results]
        assert kinds == ["assignment", "error", "error", "assignment", "assignment"]
        assert results[0].assignment.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT
        assert results[4].assignment.reason == apb.ASSIGNMENT_REASON_STICKY  # same pair later in the batch
        assert results[4].assignment.arm == results[0].assignment.arm
        assert results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert violations(results[1]) == ["participant_id"]
        assert results[2].error.code == grpc.StatusCode.NOT_FOUND.value[0]
        assert results[3].assignment.experiment_id == "b2"

    def test_same_arm_as_unary_assign_and_stream(self, client: Client) -> None:
        client.create("same", weights=(0.25, 0.25, 0.5))
        ids = [f"u{i}" for i in range(300)]
        unary = {p: client.assignments.Assign(apb.AssignRequest(experiment_id="same", participant_id=p))
                 for p in ids[:100]}
        batched = batch(client, *[("same", p) for p in ids])
        streamed = list(client.assignments.StreamAssign(
            iter([apb.StreamAssignRequest(experiment_id="same", participant_id=p) for p in ids])))
        for p, b, s in zip(ids, batched, streamed, strict=True):
            assert b.assignment.arm == s.result.assignment.arm
            if p in unary:
                assert unary[p].assignment.arm == b.assignment.arm
                assert b.assignment.reason == apb.ASSIGNMENT_REASON_STICKY
        assert all(s.result.assignment.reason == apb.ASSIGNMENT_REASON_STICKY for s in streamed)

    @pytest.mark.parametrize("size", [0, 1001])
    def test_size_limit(self, client: Client, size: int) -> None:
        client.create("big")
        requests = [apb.AssignRequest(experiment_id="big", participant_id=f"p{i}") for i in range(size)]
        with pytest.raises(grpc.RpcError) as err:
            client.assignments.BatchAssign(apb.BatchAssignRequest(requests=requests))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(err.value) == ["requests"]
        stats = batch(client, ("big", "p0"))[0].assignment
        assert stats.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT  # the refused batch stored nothing

    def test_a_full_batch_of_1000(self, client: Client) -> None:
        client.create("full")
        results = batch(client, *[("full", f"p{i}") for i in range(1000)])
        assert [r.assignment.participant_id for r in results] == [f"p{i}" for i in range(1000)]
        assert {r.assignment.reason for r in results} == {apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT}


class TestStreamAssign:
    def test_in_order_with_per_item_errors(self, client: Client) -> None:
        client.create("s")
        pids = [f"p{i}" if i % 97 else "" for i in range(1000)]
        requests = [apb.StreamAssignRequest(experiment_id="s", participant_id=p) for p in pids]
        responses = list(client.assignments.StreamAssign(iter(requests)))
        assert len(responses) == 1000
        for pid, response in zip(pids, responses, strict=True):
            if pid:
                assert response.result.assignment.participant_id == pid
            else:
                assert response.result.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    @pytest.mark.slow
    def test_a_caller_that_stops_reading_is_not_read(self, server: ServerThread, client: Client) -> None:
        """Never read a response: the server stops taking requests (the pull count freezes)."""
        client.create("slow")
        pulled = 0
        done = threading.Event()

        async def scenario() -> tuple[int, int]:
            nonlocal pulled

            async def endless() -> AsyncIterator[apb.StreamAssignRequest]:
                nonlocal pulled
                while not done.is_set():
                    pulled += 1
                    yield apb.StreamAssignRequest(experiment_id="slow", participant_id=f"{pulled:0>200}")

            async with grpc.aio.insecure_channel(server.target) as channel:
                call = agrpc.AssignmentServiceStub(channel).StreamAssign(endless())
                samples = [-1]
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:  # until the pull count stops moving
                    await asyncio.sleep(1.0)
                    samples.append(pulled)
                    if samples[-1] == samples[-2]:
                        break
                done.set()
                call.cancel()
                return samples[-2], samples[-1]

        early, late = asyncio.run(scenario())
        assert early == late, f"requests kept being pulled without responses being read: {early} -> {late}"
        assert late < 200_000  # bounded by the window plus HTTP/2 buffers (a few MB), not by time
        # the server is still healthy and the rows it did store are sticky
        answer = client.assignments.Assign(apb.AssignRequest(experiment_id="slow", participant_id=f"{1:0>200}"))
        assert answer.assignment.reason == apb.ASSIGNMENT_REASON_STICKY
