"""ExportAssignments through a live server on a real Redis: chunks, resumption, filters,
bad tokens, flow control, and a million rows checked row by row."""

from __future__ import annotations

import random
import time
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, bad_request_fields, wait_until

Row = tuple[str, str, int, int]  # participant, arm id, bucket version, first_seen ms


def batch_assign(client: Client, experiment: str, participants: list[str]) -> dict[str, apb.Assignment]:
    """Assign every participant (BatchAssign, 1000 per call); participant -> assignment."""
    result = {}
    for start in range(0, len(participants), 1000):
        requests = [
            apb.AssignRequest(experiment_id=experiment, participant_id=p) for p in participants[start : start + 1000]
        ]
        reply = client.assignments.BatchAssign(apb.BatchAssignRequest(requests=requests), timeout=30)
        for item in reply.results:
            result[item.assignment.participant_id] = item.assignment
    return result


def row_of(message: bpb.ExportedAssignment) -> Row:
    ms = message.first_seen_time.seconds * 1000 + message.first_seen_time.nanos // 1_000_000
    return message.participant_id, message.arm_id, message.bucket_version, ms


def export(client: Client, experiment: str, **fields: Any) -> tuple[list[Row], list[bpb.ExportAssignmentsResponse]]:
    chunks = list(
        client.bulk.ExportAssignments(bpb.ExportAssignmentsRequest(experiment_id=experiment, **fields), timeout=60)
    )
    return [row_of(r) for c in chunks for r in c.assignments], chunks


def expected_rows(assigned: dict[str, apb.Assignment]) -> set[Row]:
    return {
        (p, a.arm.id, a.bucket_version, a.first_seen_time.seconds * 1000 + a.first_seen_time.nanos // 1_000_000)
        for p, a in assigned.items()
        if a.in_experiment
    }


@pytest.fixture
def assigned(client: Client) -> dict[str, apb.Assignment]:
    client.create("exp", weights=(0.2, 0.3, 0.5), coverage=0.9)
    return batch_assign(client, "exp", [f"user-{i}" for i in range(5000)])


class TestExport:
    def test_every_row_once_in_chunks(self, client: Client, assigned: dict[str, apb.Assignment]) -> None:
        rows, chunks = export(client, "exp", chunk_size=700)
        assert len(rows) == len(set(rows))
        assert set(rows) == expected_rows(assigned)
        assert 4000 < len(rows) < 5000  # coverage 0.9: the excluded are never stored
        assert all(len(c.assignments) <= 700 for c in chunks) and len(chunks) >= len(rows) // 700
        assert all(c.resume_token for c in chunks)

    def test_resume_after_dropped_streams(self, client: Client, assigned: dict[str, apb.Assignment]) -> None:
        rng = random.Random(7)
        rows: list[Row] = []
        token = ""
        for _ in range(50):  # drop the stream after a random number of chunks, resume, repeat
            stream = client.bulk.ExportAssignments(
                bpb.ExportAssignmentsRequest(experiment_id="exp", chunk_size=97, resume_token=token), timeout=30
            )
            finished = True
            for i, chunk in enumerate(stream):
                rows += [row_of(r) for r in chunk.assignments]
                token = chunk.resume_token
                if i == rng.randrange(1, 8):
                    stream.cancel()
                    finished = False
                    break
            if finished:
                break
        assert finished, "export did not finish in 50 resumptions"
        assert len(rows) == len(set(rows)), "a row was delivered twice"
        assert set(rows) == expected_rows(assigned)

    def test_resuming_a_finished_export_gives_only_rows_stored_since(
        self, client: Client, assigned: dict[str, apb.Assignment]
    ) -> None:
        _, chunks = export(client, "exp")
        rows, _ = export(client, "exp", resume_token=chunks[-1].resume_token)
        assert rows == []

    def test_filters(self, client: Client, assigned: dict[str, apb.Assignment]) -> None:
        everything = expected_rows(assigned)
        rows, _ = export(client, "exp", arm_id="a1")
        assert set(rows) == {r for r in everything if r[1] == "a1"} and rows
        times = sorted(r[3] for r in everything)
        middle = times[len(times) // 2]
        since = Timestamp(seconds=middle // 1000, nanos=middle % 1000 * 1_000_000)
        rows, _ = export(client, "exp", first_seen_since=since)
        assert set(rows) == {r for r in everything if r[3] >= middle}
        rows, _ = export(client, "exp", first_seen_until=since)
        assert set(rows) == {r for r in everything if r[3] < middle}

    def test_bucket_versions(self, client: Client, assigned: dict[str, apb.Assignment]) -> None:
        client.experiments.RerandomizeExperiment(espb.RerandomizeExperimentRequest(experiment_id="exp"))
        wait_until(
            lambda: (
                client.experiments.GetExperiment(
                    espb.GetExperimentRequest(experiment_id="exp")
                ).experiment.bucket_version
                == 1
            )
        )
        again = batch_assign(client, "exp", [f"user-{i}" for i in range(300)])
        assert {a.bucket_version for a in again.values()} == {1}
        rows, _ = export(client, "exp")
        assert set(rows) == expected_rows(assigned) | expected_rows(again)
        assert [r[2] for r in rows] == sorted(r[2] for r in rows), "versions come oldest first"
        only_new, _ = export(client, "exp", bucket_version=1)
        assert set(only_new) == expected_rows(again)

    def test_deleted_experiments_can_still_be_exported(
        self, client: Client, assigned: dict[str, apb.Assignment]
    ) -> None:
        client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="exp"))
        rows, _ = export(client, "exp")
        assert set(rows) == expected_rows(assigned)


class TestBadRequests:
    def test_unknown_experiment(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            export(client, "nope")
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

    def test_bad_filters(self, client: Client) -> None:
        client.create("exp")
        with pytest.raises(grpc.RpcError) as err:
            export(client, "exp", arm_id="zzz", bucket_version=3, chunk_size=10_001)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert sorted(bad_request_fields(err.value)) == ["arm_id", "bucket_version", "chunk_size"]

    @pytest.mark.parametrize("case", ["tampered", "other_experiment", "other_filters", "garbage"])
    def test_bad_tokens_are_refused(self, client: Client, case: str) -> None:
        client.create("exp")
        client.create("other")
        batch_assign(client, "exp", [f"u{i}" for i in range(50)])
        _, chunks = export(client, "exp", chunk_size=10)
        token = chunks[1].resume_token
        experiment, fields = "exp", {}
        if case == "tampered":
            token = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
        elif case == "other_experiment":
            experiment = "other"
        elif case == "other_filters":
            fields = {"arm_id": "a0"}
        else:
            token = "!!!"
        with pytest.raises(grpc.RpcError) as err:
            export(client, experiment, resume_token=token, **fields)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(err.value) == ["resume_token"]


def hgetall_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


def test_a_slow_reader_holds_the_export_back_and_a_cancel_stops_it(client: Client, redis_url: str) -> None:
    """Flow control: the server reads shards only as fast as the client takes chunks."""
    client.create("big", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
    participants = [f"user-{i:07d}" for i in range(200_000)]
    client.bulk.PreassignParticipants(
        iter(
            [
                bpb.PreassignParticipantsRequest(
                    experiment_id="big" if i == 0 else "",
                    groups=[bpb.ParticipantGroup(participant_ids=participants[i : i + 20_000])],
                )
                for i in range(0, len(participants), 20_000)
            ]
        ),
        timeout=120,
    )
    before = hgetall_calls(redis_url)
    stream = client.bulk.ExportAssignments(bpb.ExportAssignmentsRequest(experiment_id="big", chunk_size=10), timeout=60)
    next(stream)
    time.sleep(1.0)  # the client reads nothing more
    read_while_paused = hgetall_calls(redis_url) - before
    # 4096 shards of ~49 rows: the whole export would be 4096 HGETALL; gRPC buffers let
    # some run ahead, but the server must stop far short of the end.
    assert 0 < read_while_paused < 2048, read_while_paused
    stream.cancel()
    time.sleep(0.5)
    after_cancel = hgetall_calls(redis_url)
    time.sleep(0.5)
    assert hgetall_calls(redis_url) == after_cancel, "the export kept reading Redis after the cancel"
