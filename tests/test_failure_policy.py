"""The Redis failure policy as a field: stored, converted, validated, updatable, in files."""

from __future__ import annotations

import dataclasses
import json

import pytest

from assignsvc.core import lifecycle
from assignsvc.core.model import Arm, Experiment, ExperimentStatus, RedisFailurePolicy
from assignsvc.documents.experiment_file import dump_experiment, read_experiments
from assignsvc.errors import InvalidArgumentError
from assignsvc.service.convert import experiment_from_pb, experiment_to_pb
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.v1 import experiment_pb2 as epb

EXPERIMENT = Experiment(
    id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.RUNNING,
)
OPEN = dataclasses.replace(EXPERIMENT, redis_failure_policy=RedisFailurePolicy.FAIL_OPEN)


class TestStoredForm:
    """Old stored JSON reads as FAIL_CLOSED; the field round-trips."""

    def test_json_written_before_the_policy_reads_as_fail_closed(self) -> None:
        doc = json.loads(experiment_to_json(EXPERIMENT))
        del doc["redis_failure_policy"]
        assert experiment_from_json(json.dumps(doc)) == EXPERIMENT
        assert experiment_from_json(json.dumps(doc)).redis_failure_policy is RedisFailurePolicy.FAIL_CLOSED

    def test_round_trip(self) -> None:
        assert experiment_from_json(experiment_to_json(OPEN)) == OPEN


class TestProto:
    """UNSPECIFIED is FAIL_CLOSED; an unknown value is INVALID_ARGUMENT naming the field."""

    def test_unspecified_means_fail_closed(self) -> None:
        msg = experiment_to_pb(EXPERIMENT)
        msg.redis_failure_policy = epb.REDIS_FAILURE_POLICY_UNSPECIFIED
        assert experiment_from_pb(msg).redis_failure_policy is RedisFailurePolicy.FAIL_CLOSED

    def test_round_trip(self) -> None:
        msg = experiment_to_pb(OPEN)
        assert msg.redis_failure_policy == epb.REDIS_FAILURE_POLICY_FAIL_OPEN
        assert experiment_from_pb(msg).redis_failure_policy is RedisFailurePolicy.FAIL_OPEN

    def test_unknown_value_is_a_field_violation(self) -> None:
        msg = experiment_to_pb(EXPERIMENT)
        msg.redis_failure_policy = 7  # type: ignore[assignment]
        with pytest.raises(InvalidArgumentError) as caught:
            experiment_from_pb(msg)
        assert [v.field for v in caught.value.violations] == ["experiment.redis_failure_policy"]


class TestUpdate:
    """The policy may change at any time through the update mask; it shows in the diff."""

    def test_mask_names_it(self) -> None:
        updated = lifecycle.apply_mask(EXPERIMENT, OPEN, ["redis_failure_policy"])
        lifecycle.check_update(EXPERIMENT, updated, has_assignments=True)
        assert updated.redis_failure_policy is RedisFailurePolicy.FAIL_OPEN
        assert ("redis_failure_policy", "FAIL_CLOSED", "FAIL_OPEN") in lifecycle.diff(EXPERIMENT, updated)

    def test_star_includes_it(self) -> None:
        assert lifecycle.apply_mask(EXPERIMENT, OPEN, ["*"]).redis_failure_policy is RedisFailurePolicy.FAIL_OPEN


class TestFile:
    """Experiment files: absent means fail_closed (left out when dumped); a typo is a violation."""

    def test_dump_then_read(self) -> None:
        text = dump_experiment(OPEN)
        assert "redis_failure_policy: fail_open" in text
        assert read_experiments(text)[0].experiment.redis_failure_policy is RedisFailurePolicy.FAIL_OPEN
        assert "redis_failure_policy" not in dump_experiment(EXPERIMENT)

    def test_absent_is_fail_closed(self) -> None:
        text = "id: exp\narms: [{id: a, weight: 0.5}, {id: b, weight: 0.5}]\n"
        assert read_experiments(text)[0].experiment.redis_failure_policy is RedisFailurePolicy.FAIL_CLOSED

    def test_bad_value(self) -> None:
        text = "id: exp\narms: [{id: a, weight: 0.5}, {id: b, weight: 0.5}]\nredis_failure_policy: fail_opn\n"
        with pytest.raises(InvalidArgumentError) as caught:
            read_experiments(text)
        (violation,) = caught.value.violations
        assert violation.field == "redis_failure_policy"
        assert "did you mean 'fail_open'" in violation.description
