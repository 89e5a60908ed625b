"""PreassignParticipants through a live server: balance per stratum, reproducibility,
idempotent re-upload, Assign on preassigned experiments, bad input, and a million rows
exported and checked row by row against an independent recomputation."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence

import grpc
import pytest

from assignsvc.core.balance import assign_balanced, counts_to_add, stratum_key, stratum_seed
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, assign, bad_request_fields, error_reason

Upload = Sequence[tuple[str, Mapping[str, str]]]
WEIGHTS = (0.5, 0.3, 0.2)


def messages(
    experiment: str, participants: Upload, per_message: int = 5000
) -> Iterator[bpb.PreassignParticipantsRequest]:
    """The upload in messages of per_message participants; consecutive participants of one
    stratum share a group, so the order sent is the upload's order."""
    for start in range(0, len(participants), per_message):
        message = bpb.PreassignParticipantsRequest(experiment_id=experiment if start == 0 else "")
        for _, run in itertools.groupby(participants[start : start + per_message], key=lambda row: row[1]):
            rows = list(run)
            message.groups.add(strata=rows[0][1], participant_ids=[participant for participant, _ in rows])
        yield message


def preassign(client: Client, experiment: str, participants: Upload) -> bpb.PreassignParticipantsResponse:
    return client.bulk.PreassignParticipants(messages(experiment, participants), timeout=300)


def create(client: Client, experiment: str, weights: tuple[float, ...] = WEIGHTS, **fields: object) -> None:
    client.create(experiment, weights=weights, type=epb.EXPERIMENT_TYPE_PREASSIGNED, **fields)


def export_arms(client: Client, experiment: str) -> dict[str, tuple[str, dict[str, str]]]:
    """participant -> (arm id, strata) of every exported row."""
    rows = {}
    for chunk in client.bulk.ExportAssignments(
        bpb.ExportAssignmentsRequest(experiment_id=experiment, chunk_size=10_000), timeout=300
    ):
        for row in chunk.assignments:
            assert row.participant_id not in rows
            rows[row.participant_id] = (row.arm_id, dict(row.strata))
    return rows


def stratified(n: int, prefix: str = "user") -> list[tuple[str, dict[str, str]]]:
    countries, plans = ["FR", "US", "JP", "BR"], ["free", "pro", "team"]
    return [
        (f"{prefix}-{i}", {"country": countries[i % 4], "plan": plans[(i * 7) % 3 if i % 11 else 2]}) for i in range(n)
    ]


def assert_balanced(client: Client, experiment: str, weights: tuple[float, ...] = WEIGHTS) -> int:
    """Every stratum's arm counts are within 1 of weight x n; returns the number of strata."""
    stats = client.experiments.GetExperimentStats(espb.GetExperimentStatsRequest(experiment_id=experiment))
    assert stats.strata
    for stratum in stats.strata:
        n = stratum.total_assignments
        for arm, weight in zip(stratum.arms, weights, strict=True):
            assert abs(arm.assignments - weight * n) <= 1, (dict(stratum.attributes), arm.arm_id, arm.assignments, n)
    return len(stats.strata)


class TestBalance:
    def test_every_stratum_within_one_of_its_share(self, client: Client) -> None:
        create(client, "exp")
        upload = stratified(10_007)
        reply = preassign(client, "exp", upload)
        assert (reply.received_count, reply.created_count, reply.already_assigned_count) == (10_007, 10_007, 0)
        assert assert_balanced(client, "exp") == len({stratum_key(s) for _, s in upload}) == 12
        exported = export_arms(client, "exp")
        assert {p: s for p, (_, s) in exported.items()} == dict(upload)
        # The reply's per-stratum counts are the stored ones.
        per_stratum = Counter((stratum_key(s), arm) for _, (arm, s) in exported.items())
        for stratum in reply.strata:
            for arm in stratum.arms:
                assert per_stratum[(stratum_key(dict(stratum.attributes)), arm.arm_id)] == arm.assignments

    def test_small_strata_and_uneven_weights(self, client: Client) -> None:
        create(client, "exp", weights=(1 / 3, 1 / 3, 1 / 3))
        upload = [(f"u{i}", {"cohort": str(i % 7)}) for i in range(40)]  # strata of 5 or 6
        preassign(client, "exp", upload)
        assert assert_balanced(client, "exp", (1 / 3, 1 / 3, 1 / 3)) == 7

    def test_without_strata(self, client: Client) -> None:
        create(client, "exp", weights=(0.5, 0.5))
        reply = preassign(client, "exp", [(f"u{i}", {}) for i in range(1001)])
        [stratum] = reply.strata
        assert dict(stratum.attributes) == {} and sorted(a.assignments for a in stratum.arms) == [500, 501]

    def test_reproducible_from_the_seed_whatever_the_upload_order(self, client: Client) -> None:
        upload = stratified(3000)
        create(client, "one", seed="fixed-seed")
        create(client, "two", seed="fixed-seed")
        create(client, "three", seed="another-seed")
        preassign(client, "one", upload)
        preassign(client, "two", list(reversed(upload)))
        preassign(client, "three", upload)
        one, two, three = (export_arms(client, e) for e in ("one", "two", "three"))
        assert one == two
        assert one != three


class TestFirstSeenSemantics:
    def test_uploading_twice_changes_nothing(self, client: Client) -> None:
        create(client, "exp")
        upload = stratified(2000)
        preassign(client, "exp", upload)
        before = export_arms(client, "exp")
        reply = preassign(client, "exp", upload)
        assert (reply.created_count, reply.already_assigned_count) == (0, 2000)
        assert export_arms(client, "exp") == before

    def test_a_larger_second_upload_keeps_arms_and_stays_balanced(self, client: Client) -> None:
        create(client, "exp")
        preassign(client, "exp", stratified(1000))
        before = export_arms(client, "exp")
        reply = preassign(client, "exp", stratified(2500))
        assert (reply.created_count, reply.already_assigned_count) == (1500, 1000)
        after = export_arms(client, "exp")
        assert all(after[p] == arm for p, arm in before.items())
        assert_balanced(client, "exp")

    def test_assign_returns_the_stored_arm_and_never_creates_one(self, client: Client) -> None:
        create(client, "exp")
        preassign(client, "exp", stratified(100))
        stored = export_arms(client, "exp")
        for participant, (arm, _) in list(stored.items())[:20]:
            answer = assign(client, "exp", participant)
            assert answer.in_experiment and answer.arm.id == arm
        stranger = assign(client, "exp", "never-uploaded")
        assert not stranger.in_experiment
        assert stranger.reason == epb_reason("NOT_PREASSIGNED")
        assert len(export_arms(client, "exp")) == 100


def epb_reason(name: str) -> int:
    from assignsvc.v1 import assignment_service_pb2 as apb  # noqa: PLC0415

    return int(apb.AssignmentReason.Value(f"ASSIGNMENT_REASON_{name}"))


class TestBadInput:
    def test_online_experiment_is_a_failed_precondition(self, client: Client) -> None:
        client.create("online")
        with pytest.raises(grpc.RpcError) as err:
            preassign(client, "online", [("u1", {})])
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(err.value) == "NOT_A_PREASSIGNED_EXPERIMENT"

    def test_unknown_experiment(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            preassign(client, "nope", [("u1", {})])
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

    def test_one_bad_row_and_nothing_is_stored(self, client: Client) -> None:
        create(client, "exp")
        upload: list[tuple[str, Mapping[str, str]]] = list(stratified(12_000))
        upload[11_000] = ("", {"country": "FR"})
        upload[11_500] = ("user-3", {"country": "XX"})  # same id, other stratum
        with pytest.raises(grpc.RpcError) as err:
            preassign(client, "exp", upload)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(err.value) == ["participants[11000].participant_id", "participants[11500].strata"]
        assert export_arms(client, "exp") == {}

    def test_experiment_id_must_come_first_and_stay_the_same(self, client: Client) -> None:
        create(client, "exp")
        create(client, "other")
        requests = [
            bpb.PreassignParticipantsRequest(experiment_id="exp", groups=[bpb.ParticipantGroup(participant_ids=["a"])]),
            bpb.PreassignParticipantsRequest(
                experiment_id="other", groups=[bpb.ParticipantGroup(participant_ids=["b"])]
            ),
        ]
        with pytest.raises(grpc.RpcError) as err:
            client.bulk.PreassignParticipants(iter(requests), timeout=30)
        assert bad_request_fields(err.value) == ["experiment_id"]
        with pytest.raises(grpc.RpcError) as err:
            client.bulk.PreassignParticipants(iter([bpb.PreassignParticipantsRequest()]), timeout=30)
        assert bad_request_fields(err.value) == ["experiment_id"]
        assert export_arms(client, "exp") == {}


def test_a_million_rows_exported_match_an_independent_recomputation(client: Client) -> None:
    """1M preassigned participants in 8 strata; the export, row by row, equals the arms
    recomputed here from the seed alone (core.balance), and every row is there once."""
    create(client, "million", seed="million-seed")
    upload = [(f"participant-{i:08d}", {"segment": str(i % 8)}) for i in range(1_000_000)]
    upload.sort(key=lambda row: row[1]["segment"])  # one group per stratum per message
    reply = preassign(client, "million", upload)
    assert reply.created_count == 1_000_000
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for participant, strata in upload:
        by_stratum[stratum_key(strata)].append(participant)
    expected: dict[str, str] = {}
    for key, participants in by_stratum.items():
        counts = counts_to_add(WEIGHTS, [0, 0, 0], len(participants))
        drawn = assign_balanced(participants, counts, stratum_seed("million-seed", 0, key, [0, 0, 0]))
        expected.update((p, f"a{arm}") for p, arm in drawn.items())
    exported = export_arms(client, "million")
    assert len(exported) == 1_000_000
    mismatches = [p for p, (arm, _) in exported.items() if expected[p] != arm]
    assert mismatches == []
