"""Arm values end to end over gRPC and the CLI: stored with the experiment, in every Assignment."""

from __future__ import annotations

import json
from typing import Any, cast

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Cli, Client, assign, bad_request_fields


def _value(python: Any) -> struct_pb2.Value:
    return json_format.ParseDict(python, struct_pb2.Value())


def test_assign_returns_the_arm_value_and_the_arm_id_by_default(client: Client) -> None:
    created = client.create("colors")
    assert [cast(object, json_format.MessageToDict(a.value)) for a in created.arms] == ["a0", "a1"]
    answer = assign(client, "colors", "p1")
    assert cast(object, json_format.MessageToDict(answer.arm.value)) == answer.arm.id


def test_object_values_reach_assign_batch_and_get(client: Client) -> None:
    arms = [
        epb.Arm(id="blue", weight=0.5, value=_value({"color": "#00f", "size": 2})),
        epb.Arm(id="green", weight=0.5, value=_value({"color": "#0f0", "size": 3})),
    ]
    client.experiments.CreateExperiment(
        espb.CreateExperimentRequest(experiment=epb.Experiment(id="v", arms=arms, status=epb.EXPERIMENT_STATUS_RUNNING))
    )
    expected = {"blue": {"color": "#00f", "size": 2}, "green": {"color": "#0f0", "size": 3}}
    first = assign(client, "v", "p1")
    assert json_format.MessageToDict(first.arm.value) == expected[first.arm.id]
    stored = client.assignments.GetAssignment(apb.GetAssignmentRequest(experiment_id="v", participant_id="p1"))
    assert stored.assignment.arm.value == first.arm.value
    batch = client.assignments.BatchAssign(
        apb.BatchAssignRequest(
            requests=[apb.AssignRequest(experiment_id="v", participant_id=f"q{i}") for i in range(20)]
        )
    )
    for result in batch.results:
        arm = result.assignment.arm
        assert json_format.MessageToDict(arm.value) == expected[arm.id]


def test_mixed_kinds_are_invalid_argument(client: Client) -> None:
    arms = [epb.Arm(id="a", weight=0.5, value=_value(1)), epb.Arm(id="b", weight=0.5, value=_value("x"))]
    with pytest.raises(grpc.RpcError) as err:
        client.experiments.CreateExperiment(
            espb.CreateExperimentRequest(experiment=epb.Experiment(id="mixed", arms=arms))
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "experiment.arms" in bad_request_fields(err.value)


def test_the_cli_sets_values_and_update_keeps_them(cli: Cli, client: Client) -> None:
    ran = cli(
        "experiments",
        "create",
        "c",
        "--arms",
        "a,b",
        "--status",
        "running",
        "--value",
        'a={"n": 1}',
        "--value",
        'b={"n": 2}',
    )
    assert ran.code == 0, ran.err
    assert json_format.MessageToDict(assign(client, "c", "p").arm.value)["n"] in (1, 2)
    ran = cli("experiments", "update", "c", "--value", 'b={"n": 5}')
    assert ran.code == 0, ran.err
    got = client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id="c")).experiment
    assert [json_format.MessageToDict(a.value) for a in got.arms] == [{"n": 1}, {"n": 5}]
    ran = cli("experiments", "get", "c", "-o", "json")
    assert ran.code == 0, ran.err
    assert {"n": 5} in [arm.get("value") for arm in json.loads(ran.out)["arms"]]
