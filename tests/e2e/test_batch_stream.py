"""BatchAssign and StreamAssign through a live server: per-item errors, order, the same
sticky arm as unary Assign, the batch size limit and stream flow control."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, ServerThread, bad_request_fields, struct


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
        unary = {
            p: client.assignments.Assign(apb.AssignRequest(experiment_id="same", participant_id=p)) for p in ids[:100]
        }
        batched = batch(client, *[("same", p) for p in ids])
        streamed = list(
            client.assignments.StreamAssign(
                iter([apb.StreamAssignRequest(experiment_id="same", participant_id=p) for p in ids])
            )
        )
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


# Each kind of experiment twice, identical but for the id (an explicit seed, so both hash alike):
# BatchAssign runs on the `_a` copies, one unary Assign per item on the `_b` copies.
PARITY_KINDS: dict[str, dict[str, object]] = {
    "plain": {"weights": (0.2, 0.3, 0.5)},
    "forced": {"forced_arms": {"f1": "a1", "f2": "a0"}},
    "hashattr": {"hash_attribute": "company", "fallback_attribute": "device"},
    "cond": {"condition": json.dumps({"country": {"$in": ["US", "CA"]}})},
    "cov": {"coverage": 0.5},
    "ns": {"namespace": epb.Namespace(id="ns1", range_start=0.2, range_end=0.7)},
    "paused": {"forced_arms": {"f1": "a0"}},  # paused once a few participants are stored
    "blocked": {},  # rerandomized with block_previous_participants once a few are stored
    "ended": {},  # its end_time set in the past once a few are stored
    "released": {},  # stopped with arm a1 released once a few are stored
}


def parity_setup(client: Client) -> list[str]:
    """Create both copies of every kind and give them the same history; the participants stored."""
    old = [f"old{k}" for k in range(20)]
    for kind, fields in PARITY_KINDS.items():
        for copy in ("a", "b"):
            name = f"{kind}_{copy}"
            client.create(name, seed=kind, **fields)  # type: ignore[arg-type]
            for p in old:
                client.assignments.Assign(
                    apb.AssignRequest(
                        experiment_id=name, participant_id=p, attributes=struct({"country": "US", "company": p})
                    )
                )
            if kind == "paused":
                client.experiments.PauseExperiment(espb.PauseExperimentRequest(experiment_id=name))
            elif kind == "blocked":
                client.experiments.RerandomizeExperiment(
                    espb.RerandomizeExperimentRequest(
                        experiment_id=name, seed="blocked2", block_previous_participants=True
                    )
                )
            elif kind == "ended":
                update(client, epb.Experiment(id=name, end_time=Timestamp(seconds=int(time.time()) - 60)), "end_time")
            elif kind == "released":
                client.experiments.StopExperiment(espb.StopExperimentRequest(experiment_id=name, released_arm_id="a1"))
    return old


def update(client: Client, experiment: epb.Experiment, *paths: str) -> None:
    client.experiments.UpdateExperiment(
        espb.UpdateExperimentRequest(experiment=experiment, update_mask=FieldMask(paths=list(paths)))
    )


def random_items(rng: random.Random, old: list[str], count: int) -> list[tuple[str, apb.AssignRequest]]:
    """(kind, request naming the `_a` copy): every branch of Assign, duplicates included."""
    kinds = [*PARITY_KINDS, "unknown", "bad id!"]
    items = []
    for _ in range(count):
        kind = rng.choice(kinds)
        participant = rng.choice(
            [
                f"p{rng.randrange(300)}",
                f"p{rng.randrange(300)}",
                rng.choice(old),
                rng.choice(["f1", "f2"]),
                "",
                "x" * 300,
                "\u00e9" * 100,
                f"long{'y' * 60}{rng.randrange(5)}",
            ]
        )
        request = apb.AssignRequest(
            experiment_id=kind if kind in ("unknown", "bad id!") else f"{kind}_a", participant_id=participant
        )
        attributes = rng.choice(
            [
                None,
                {},
                {"country": "US"},
                {"country": "FR"},
                {"company": f"c{rng.randrange(40)}"},
                {"device": f"d{rng.randrange(40)}", "country": "CA"},
                {"company": 7.0},
                {"company": "z" * 300},
            ]
        )
        if attributes is not None:
            request.attributes.CopyFrom(struct(attributes))
        items.append((kind, request))
    return items


class TestBatchAssignParity:
    """BatchAssign answers each item exactly as one Assign per item, in order, would."""

    def test_randomized_batch_matches_unary_assign(self, client: Client) -> None:
        old = parity_setup(client)
        rng = random.Random(20261123)
        for _ in range(2):  # the second batch meets the rows (and cache entries) the first stored
            items = random_items(rng, old, 1000)
            batched = client.assignments.BatchAssign(
                apb.BatchAssignRequest(requests=[r for _, r in items]), timeout=30
            ).results
            for (kind, request), got in zip(items, batched, strict=True):
                twin = apb.AssignRequest()
                twin.CopyFrom(request)
                if request.experiment_id.endswith("_a"):
                    twin.experiment_id = request.experiment_id[:-2] + "_b"
                try:
                    want: apb.AssignResult = apb.AssignResult(
                        assignment=client.assignments.Assign(twin, timeout=10).assignment
                    )
                except grpc.RpcError as error:
                    status = rpc_status.from_call(error)
                    assert status is not None
                    want = apb.AssignResult(error=status)
                assert_same_answer(kind, request, got, want)

    def test_each_branch_was_exercised(self, client: Client) -> None:
        """The randomized batch above reaches every reason (else it proves less than it claims)."""
        old = parity_setup(client)
        items = random_items(random.Random(20261123), old, 1000)
        batched = client.assignments.BatchAssign(apb.BatchAssignRequest(requests=[r for _, r in items])).results
        reasons = {r.assignment.reason for r in batched if r.WhichOneof("result") == "assignment"}
        codes = {r.error.code for r in batched if r.WhichOneof("result") == "error"}
        assert reasons >= {
            apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT,
            apb.ASSIGNMENT_REASON_STICKY,
            apb.ASSIGNMENT_REASON_FORCED,
            apb.ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE,
            apb.ASSIGNMENT_REASON_NOT_ELIGIBLE,
            apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE,
            apb.ASSIGNMENT_REASON_EXCLUDED_BY_NAMESPACE,
            apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING,
            apb.ASSIGNMENT_REASON_EXPERIMENT_ENDED,
            apb.ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION,
            apb.ASSIGNMENT_REASON_RELEASED,
        }
        assert codes >= {grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.NOT_FOUND.value[0]}


def assert_same_answer(kind: str, request: apb.AssignRequest, got: apb.AssignResult, want: apb.AssignResult) -> None:
    """Field by field; the experiment id is the copy's, first_seen_time is when each was stored."""
    where = f"{kind} {request.participant_id!r} {dict(request.attributes) if request.HasField('attributes') else None}"
    assert got.WhichOneof("result") == want.WhichOneof("result"), where
    if got.WhichOneof("result") == "error":  # the same status, details and all, naming the other copy
        assert got.error.SerializeToString() == want.error.SerializeToString().replace(b"_b", b"_a"), where
        return
    a, b = got.assignment, want.assignment
    assert a.experiment_id == request.experiment_id, where
    assert a.HasField("first_seen_time") == b.HasField("first_seen_time"), where
    assert abs(a.first_seen_time.seconds - b.first_seen_time.seconds) < 120, where
    a.ClearField("first_seen_time")
    b.ClearField("first_seen_time")
    b.experiment_id = a.experiment_id
    assert a == b, where
