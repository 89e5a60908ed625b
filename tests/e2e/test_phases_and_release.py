"""Phases and released arms on a live server over real Redis: per-phase counts stay exact
under concurrent first assigns across a phase change, and a stopped experiment's released
arm is every participant's answer over gRPC, HTTP/JSON, OFREP and the Evidential routes,
with bad releases refused precisely on both edges."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from assignsvc.config import ServerConfig
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, assign, assign_all, bad_request_fields, error_reason, free_port, stats
from tests.support.http import call

ARMS = [
    {"id": "control", "weight": 0.5, "value": "#00f"},
    {"id": "winner", "weight": 0.5, "value": "#0f0"},
]


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, http_port=free_port())


def set_weights(client: Client, experiment_id: str, *weights: float) -> epb.Experiment:
    arms = [epb.Arm(id=f"a{i}", weight=w) for i, w in enumerate(weights)]
    request = espb.UpdateExperimentRequest(
        experiment=epb.Experiment(id=experiment_id, arms=arms), update_mask=field_mask_pb2.FieldMask(paths=["arms"])
    )
    return client.experiments.UpdateExperiment(request).experiment


def stop(client: Client, experiment_id: str, released_arm_id: str = "") -> epb.Experiment:
    request = espb.StopExperimentRequest(experiment_id=experiment_id, released_arm_id=released_arm_id)
    return client.experiments.StopExperiment(request).experiment


def refusal(call_it: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call_it()
    return raised.value


class TestPhaseCounts:
    def test_counts_per_phase_are_exact_under_concurrent_first_assigns_across_a_phase_change(
        self, client: Client
    ) -> None:
        client.create("race")
        ids = [f"user-{i}" for i in range(1200)]
        answers: list[dict[str, apb.Assignment]] = []
        started = threading.Event()

        def hammer(part: int) -> dict[str, apb.Assignment]:
            mine = ids[part::4] + ids[(part + 1) % 4 :: 4]  # overlapping callers
            first = assign_all(client, "race", mine[:5])
            started.set()  # a row is stored: the weight change below starts a phase
            return {**first, **assign_all(client, "race", mine[5:])}

        with ThreadPoolExecutor(5) as pool:
            running = [pool.submit(hammer, part) for part in range(4)]
            started.wait(10)
            moved = pool.submit(set_weights, client, "race", 0.8, 0.2).result(timeout=30)  # while assigning
            answers = [future.result(timeout=60) for future in running]
        late = assign_all(client, "race", [f"late-{i}" for i in range(300)])  # surely phase 1
        assert moved.phase == 1
        held: dict[str, int] = {}
        for answer in [*answers, late]:
            for participant, assignment in answer.items():
                assert held.setdefault(participant, assignment.arm.index) == assignment.arm.index  # one arm each
        counted = stats(client, "race")
        per_arm = [sum(arm == i for arm in held.values()) for i in range(2)]
        by_phase = [[a.assignments for a in p.arms] for p in counted.phases]
        assert counted.total_assignments == len(held) == 1500  # one row per participant
        assert [sum(col) for col in zip(*by_phase, strict=True)] == per_arm  # phases sum to the stored rows
        assert [p.phase for p in counted.phases] == [0, 1] and counted.phases[1].total_assignments >= 300
        assert sum(p.total_assignments for p in counted.phases) == 1500


class TestRelease:
    def test_every_participant_gets_the_released_arm_on_every_edge(self, client: Client, base: str) -> None:
        assert call("POST", base + "/v1/experiments", {"id": "ship", "arms": ARMS, "status": 2}).status == 200
        holders = assign_all(client, "ship", [f"h{i}" for i in range(40)])
        assert {a.arm.id for a in holders.values()} == {"control", "winner"}
        before = stats(client, "ship").total_assignments
        reply = call("POST", base + "/v1/experiments/ship:stop", {"releasedArmId": "winner"})
        assert reply.status == 200, reply.body
        assert reply.json()["experiment"]["releasedArmId"] == "winner"
        got = client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id="ship")).experiment
        assert (got.status, got.released_arm_id) == (epb.EXPERIMENT_STATUS_STOPPED, "winner")
        for participant in ["h0", "h1", "h2", "newcomer"]:
            answer = assign(client, "ship", participant)
            assert (answer.reason, answer.arm.id, answer.in_experiment) == (
                apb.ASSIGNMENT_REASON_RELEASED,
                "winner",
                False,
            )
            assert answer.arm.value.string_value == "#0f0" and not answer.persisted
            over_http = call("POST", f"{base}/v1/experiments/ship/participants/{participant}:assign", {}).json()
            assert over_http["assignment"]["arm"]["id"] == "winner"
            assert over_http["assignment"]["reason"] == "ASSIGNMENT_REASON_RELEASED"
            assert "inExperiment" not in over_http["assignment"]  # false
            flag = call("POST", f"{base}/ofrep/v1/evaluate/flags/ship", {"context": {"targetingKey": participant}})
            assert (flag.status, flag.json()["value"], flag.json()["variant"]) == (200, "#0f0", "winner")
            assert flag.json()["reason"] == "STATIC"
            evidential = call("GET", f"{base}/evidential/v1/experiments/ship/assignments/{participant}").json()
            assert evidential["assignment"]["arm_id"] == "winner"
        counted = stats(client, "ship")
        assert counted.total_assignments == before == 40  # nothing stored or counted since the release
        lookup = client.assignments.GetAssignment(
            apb.GetAssignmentRequest(experiment_id="ship", participant_id="newcomer")
        ).assignment
        assert lookup.reason == apb.ASSIGNMENT_REASON_RELEASED

    def test_the_released_arm_changes_while_stopped(self, client: Client) -> None:
        client.create("flip")
        assign_all(client, "flip", ["p"])
        assert stop(client, "flip", "a0").released_arm_id == "a0"
        assert stop(client, "flip", "a1").released_arm_id == "a1"
        assert assign(client, "flip", "p").arm.id == "a1"
        withdraw = espb.UpdateExperimentRequest(
            experiment=epb.Experiment(id="flip"), update_mask=field_mask_pb2.FieldMask(paths=["released_arm_id"])
        )
        assert client.experiments.UpdateExperiment(withdraw).experiment.released_arm_id == ""
        assert assign(client, "flip", "p").reason == apb.ASSIGNMENT_REASON_STICKY  # the stored arm again

    def test_bad_releases_are_refused_precisely(self, client: Client, base: str) -> None:
        client.create("bad")
        not_an_arm = refusal(lambda: stop(client, "bad", "nope"))
        assert not_an_arm.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(not_an_arm) == ["released_arm_id"]
        assert "arms: a0, a1" in str(not_an_arm.details())
        running = espb.UpdateExperimentRequest(
            experiment=epb.Experiment(id="bad", released_arm_id="a0"),
            update_mask=field_mask_pb2.FieldMask(paths=["released_arm_id"]),
        )
        while_running = refusal(lambda: client.experiments.UpdateExperiment(running))
        assert while_running.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(while_running) == "RELEASE_NEEDS_STOP"
        client.create("draft", status=epb.EXPERIMENT_STATUS_DRAFT)
        assert refusal(lambda: stop(client, "draft", "a0")).code() is grpc.StatusCode.FAILED_PRECONDITION
        over_http = call("POST", base + "/v1/experiments/bad:stop", {"releasedArmId": "nope"})
        assert (over_http.status, over_http.json()["code"]) == (400, 3)
        http_running = call(
            "PATCH", base + "/v1/experiments/bad?updateMask=releasedArmId", {"id": "bad", "releasedArmId": "a0"}
        )
        assert (http_running.status, http_running.json()["code"]) == (400, 9)  # FAILED_PRECONDITION
        assert assign(client, "bad", "x").reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT  # still running
