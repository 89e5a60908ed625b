"""Arm values: stored beside the arms, of one kind, read from files and GrowthBook, never hashed."""

from __future__ import annotations

import json

import pytest

from assignsvc.core.bucketing import BucketPlan
from assignsvc.core.model import Arm, Experiment
from assignsvc.core.validation import experiment_violations
from assignsvc.documents.experiment_file import dump_experiment, read_experiments
from assignsvc.documents.growthbook import from_growthbook
from assignsvc.errors import InvalidArgumentError
from assignsvc.store.codec import experiment_from_json, experiment_to_json


def _experiment(*values: str) -> Experiment:
    return Experiment(id="e", name="e", arms=tuple(Arm(f"a{i}", f"a{i}", 0.5, v) for i, v in enumerate(values)))


def test_an_experiment_without_values_is_stored_byte_for_byte_as_before() -> None:
    stored = experiment_to_json(_experiment("", ""))
    assert '"value"' not in stored
    old = json.loads(stored)
    assert old["arms"] == [{"id": "a0", "name": "a0", "weight": 0.5}, {"id": "a1", "name": "a1", "weight": 0.5}]
    assert experiment_from_json(stored).arms[0].resolved_value == "a0"


def test_values_round_trip_through_the_stored_form() -> None:
    experiment = _experiment('{"color":"green"}', '{"color":"blue"}')
    back = experiment_from_json(experiment_to_json(experiment))
    assert [a.resolved_value for a in back.arms] == [{"color": "green"}, {"color": "blue"}]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (("1", '"x"'), "arms"),  # a number and a string
        (("1", ""), "arms"),  # a number and the default (the arm id, a string)
        (("[1]", "[2]"), "arms[0].value"),  # lists are not a kind
        (("null", "null"), "arms[0].value"),
        (("not json", '"x"'), "arms[0].value"),
    ],
)
def test_values_of_mixed_or_unsupported_kinds_are_refused(values: tuple[str, str], field: str) -> None:
    fields = [v.field for v in experiment_violations(_experiment(*values))]
    assert field in fields


@pytest.mark.parametrize("values", [("1", "2.5"), ("true", "false"), ('{"a":1}', "{}"), ('"x"', "")])
def test_values_of_one_kind_are_accepted(values: tuple[str, str]) -> None:
    assert experiment_violations(_experiment(*values)) == []


def test_a_value_moves_no_participant() -> None:
    plain, valued = BucketPlan.compile(_experiment("", "")), BucketPlan.compile(_experiment('{"k":1}', '{"k":2}'))
    assert [plain.decide(f"p{i}") for i in range(500)] == [valued.decide(f"p{i}") for i in range(500)]


def test_experiment_files_read_and_write_values() -> None:
    text = """
id: e
arms:
  - {id: control, weight: 0.5, value: {color: blue}}
  - {id: treatment, weight: 0.5, value: {color: green}}
"""
    (entry,) = read_experiments(text)
    assert [a.resolved_value for a in entry.experiment.arms] == [{"color": "blue"}, {"color": "green"}]
    (again,) = read_experiments(dump_experiment(entry.experiment))
    assert again.experiment.arms == entry.experiment.arms


def test_an_experiment_file_value_of_the_wrong_kind_names_its_field() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        read_experiments("id: e\narms:\n  - {id: a, weight: 0.5, value: 1}\n  - {id: b, weight: 0.5, value: x}\n")
    assert any(v.field.endswith("arms") for v in err.value.violations)


def test_growthbook_sdk_variations_become_the_arm_values() -> None:
    imported = from_growthbook({"key": "gb", "variations": [{"size": 1}, {"size": 2}], "meta": [{"key": "s"}, {}]})
    assert [a.resolved_value for a in imported.experiment.arms] == [{"size": 1}, {"size": 2}]


def test_a_growthbook_rest_variation_value_is_kept_and_its_absence_is_the_arm_id() -> None:
    source = {
        "trackingKey": "gb",
        "variations": [{"key": "c", "variationId": "v0", "value": "blue"}, {"key": "t", "variationId": "v1"}],
        "phases": [
            {
                "coverage": 1,
                "trafficSplit": [{"variationId": "v0", "weight": 0.5}, {"variationId": "v1", "weight": 0.5}],
            }
        ],
    }
    imported = from_growthbook(source)
    assert [a.resolved_value for a in imported.experiment.arms] == ["blue", "t"]
