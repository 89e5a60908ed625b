"""Targeting through the live server and a real Redis: eligibility, stickiness, hash attributes, bad input."""

from __future__ import annotations

import json
import random
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from assignsvc.api.convert import experiment_to_pb
from assignsvc.config import ServerConfig
from assignsvc.core.bucketing import BucketPlan
from assignsvc.core.model import Arm, Experiment
from assignsvc.documents.growthbook import from_growthbook
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, assign, bad_request, error_reason, running_server, struct

US_OR_CA = json.dumps({"country": {"$in": ["US", "CA"]}})


def _arm_of(unit_id: str, experiment_id: str) -> str:
    """The arm the bucketing core gives an id in a 50/50 experiment with arms a0, a1."""
    experiment = Experiment(id=experiment_id, name=experiment_id, arms=(Arm("a0", "a0", 0.5), Arm("a1", "a1", 0.5)))
    return f"a{BucketPlan.compile(experiment).decide(unit_id).arm_index}"


def _lookup(
    client: Client, experiment: str, participant: str, attributes: dict[str, object] | None = None
) -> apb.Assignment | None:
    request = apb.GetAssignmentRequest(experiment_id=experiment, participant_id=participant)
    if attributes is not None:
        request.attributes.CopyFrom(struct(attributes))
    try:
        return client.assignments.GetAssignment(request, timeout=10).assignment
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.NOT_FOUND
        return None


def _update(client: Client, experiment: epb.Experiment, *paths: str) -> epb.Experiment:
    request = espb.UpdateExperimentRequest(experiment=experiment, update_mask=field_mask_pb2.FieldMask(paths=paths))
    return client.experiments.UpdateExperiment(request, timeout=10).experiment


class TestEligibility:
    """Only participants matching the condition are assigned; the others are not stored."""

    def test_matching_and_not_matching(self, client: Client) -> None:
        created = client.create("geo", condition=US_OR_CA)
        assert created.condition == '{"country":{"$in":["US","CA"]}}'  # stored compact
        us = assign(client, "geo", "u1", {"country": "US"})
        assert us.in_experiment and us.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT
        assert us.arm.id == _arm_of("u1", "geo")  # eligibility never changes the hash's answer
        fr = assign(client, "geo", "u2", {"country": "FR"})
        assert (fr.in_experiment, fr.reason) == (False, apb.ASSIGNMENT_REASON_NOT_ELIGIBLE)
        none = assign(client, "geo", "u3")
        assert none.reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE
        assert _lookup(client, "geo", "u2") is None and _lookup(client, "geo", "u3") is None
        stats = client.experiments.GetExperimentStats(espb.GetExperimentStatsRequest(experiment_id="geo"))
        assert stats.total_assignments == 1

    def test_no_condition_changes_nothing(self, client: Client) -> None:
        client.create("plain")
        for i in range(50):
            got = assign(client, "plain", f"p{i}", {"country": "FR"})
            assert got.arm.id == _arm_of(f"p{i}", "plain")

    def test_sticky_over_eligibility(self, client: Client, server_config: ServerConfig) -> None:
        client.create("sticky", condition=US_OR_CA)
        first = assign(client, "sticky", "u1", {"country": "US"})
        moved = assign(client, "sticky", "u1", {"country": "FR"})  # from this replica's cache
        assert (moved.arm.id, moved.reason) == (first.arm.id, apb.ASSIGNMENT_REASON_STICKY)
        with running_server(server_config) as other:  # a fresh replica: the answer comes from Redis
            second = Client.connect(other.target)
            again = assign(second, "sticky", "u1", {"country": "FR"})
            assert (again.arm.id, again.reason) == (first.arm.id, apb.ASSIGNMENT_REASON_STICKY)
            assert again.first_seen_time == first.first_seen_time
            second.channel.close()

    def test_condition_update_applies_to_new_participants_only(self, client: Client) -> None:
        created = client.create("change", condition=US_OR_CA)
        kept = assign(client, "change", "u1", {"country": "US"})
        patch = epb.Experiment(id="change", etag=created.etag, condition=json.dumps({"country": "FR"}))
        updated = _update(client, patch, "condition")
        assert updated.condition == '{"country":"FR"}'
        assert assign(client, "change", "u2", {"country": "US"}).reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE
        assert assign(client, "change", "u3", {"country": "FR"}).in_experiment
        assert assign(client, "change", "u1", {"country": "US"}).arm.id == kept.arm.id
        cleared = _update(client, epb.Experiment(id="change"), "condition")
        assert cleared.condition == ""
        assert assign(client, "change", "u4").in_experiment

    def test_nested_attributes_and_numbers(self, client: Client) -> None:
        condition = {
            "$and": [
                {"account.plan": {"$in": ["pro", "team"]}},
                {"age": {"$gte": 18}},
                {"app": {"$vgte": "2.10.0"}},
                {"tags": {"$elemMatch": {"$eq": "beta"}}},
            ]
        }
        client.create("nested", condition=json.dumps(condition))
        good = {"account": {"plan": "pro"}, "age": 30, "app": "2.10.1", "tags": ["x", "beta"]}
        assert assign(client, "nested", "n1", good).in_experiment
        for change in ({"age": 17}, {"app": "2.9.9"}, {"tags": ["x"]}, {"account": {"plan": "free"}}):
            assert assign(client, "nested", "n2", {**good, **change}).reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE

    def test_batch_and_stream(self, client: Client) -> None:
        client.create("many", condition=US_OR_CA)
        requests = [
            apb.AssignRequest(experiment_id="many", participant_id="b1", attributes=struct({"country": "CA"})),
            apb.AssignRequest(experiment_id="many", participant_id="b2", attributes=struct({"country": "DE"})),
            apb.AssignRequest(experiment_id="many", participant_id="b3", attributes=struct({"blob": "x" * 20_000})),
        ]
        results = client.assignments.BatchAssign(apb.BatchAssignRequest(requests=requests), timeout=10).results
        assert results[0].assignment.in_experiment
        assert results[1].assignment.reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE
        assert results[2].WhichOneof("result") == "error"
        assert results[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        stream = [
            apb.StreamAssignRequest(
                experiment_id=r.experiment_id, participant_id=r.participant_id, attributes=r.attributes
            )
            for r in requests
        ]
        answers = [r.result for r in client.assignments.StreamAssign(iter(stream), timeout=10)]
        assert answers[0].assignment.arm.id == results[0].assignment.arm.id
        assert answers[1].assignment.reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE
        assert answers[2].WhichOneof("result") == "error"


class TestHashAttribute:
    """The hash attribute's value is hashed and stored; the fallback stands in when it is missing."""

    def test_attribute_value_is_the_identity(self, client: Client) -> None:
        client.create("device", hash_attribute="deviceId", fallback_attribute="userId")
        first = assign(client, "device", "p1", {"deviceId": "d-42"})
        assert first.arm.id == _arm_of("d-42", "device")
        assert first.participant_id == "p1"  # answered as sent
        other = assign(client, "device", "p2", {"deviceId": "d-42"})  # same device, same stored row
        assert (other.arm.id, other.reason) == (first.arm.id, apb.ASSIGNMENT_REASON_STICKY)
        found = _lookup(client, "device", "anyone", {"deviceId": "d-42"})
        assert found is not None and found.arm.id == first.arm.id
        missing = _lookup(client, "device", "d-42")  # no attributes: no identity, answered as Assign does
        assert missing is not None
        assert (missing.in_experiment, missing.reason) == (False, apb.ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE)

    def test_fallback_and_missing(self, client: Client) -> None:
        client.create("fallback", hash_attribute="deviceId", fallback_attribute="userId")
        used = assign(client, "fallback", "p1", {"deviceId": "", "userId": "u-7"})
        assert used.arm.id == _arm_of("u-7", "fallback")
        number = assign(client, "fallback", "p2", {"deviceId": 123})  # hashed as JS String(123)
        assert number.arm.id == _arm_of("123", "fallback")
        for attributes in (None, {}, {"deviceId": True}, {"deviceId": 0, "userId": None}):
            missing = assign(client, "fallback", "p3", attributes)
            assert (missing.in_experiment, missing.reason) == (False, apb.ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE)

    def test_locked_while_running(self, client: Client) -> None:
        created = client.create("locked", hash_attribute="deviceId")
        with pytest.raises(grpc.RpcError) as err:
            _update(client, epb.Experiment(id="locked", etag=created.etag, hash_attribute="userId"), "hash_attribute")
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(err.value) == "HASH_ATTRIBUTE_LOCKED"


class TestBadInput:
    """Bad conditions are refused at create and update, naming the path inside; big attributes too."""

    def test_condition_path_in_violation(self, client: Client) -> None:
        condition = {"$and": [{"plan": "pro"}, {"country": {"$regex": "(US"}}]}
        with pytest.raises(grpc.RpcError) as err:
            client.create("badregex", condition=json.dumps(condition))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        described = bad_request(err.value)
        assert list(described) == ["experiment.condition"]
        assert described["experiment.condition"].startswith("$and[1].country.$regex: invalid regex '(US'")

    @pytest.mark.parametrize(
        ("condition", "start"),
        [
            ("{country: US}", "is not valid JSON"),
            ('{"a": {"$bogus": 1}}', "a.$bogus: unknown operator"),
            ('{"a": {"$regex": "(x)\\\\1"}}', "a.$regex: invalid regex"),
            ("[1]", "must be an object"),
        ],
    )
    def test_refused(self, client: Client, condition: str, start: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create("bad", condition=condition)
        assert bad_request(err.value)["experiment.condition"].startswith(start)

    def test_refused_on_update(self, client: Client) -> None:
        created = client.create("upd")
        with pytest.raises(grpc.RpcError) as err:
            _update(client, epb.Experiment(id="upd", etag=created.etag, condition='{"a": {"$in": 3}}'), "condition")
        assert bad_request(err.value) == {"experiment.condition": "a.$in: must be a list, got number"}

    def test_fallback_needs_hash_attribute(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create("fb", fallback_attribute="userId")
        assert list(bad_request(err.value)) == ["experiment.fallback_attribute"]

    @pytest.mark.parametrize(
        ("attributes", "field"),
        [
            ({"blob": "x" * 17_000}, "attributes"),
            ({"n": float("nan")}, "attributes.n"),
            (
                {"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}}},
                "attributes.deep.a.b.c.d.e.f.g.h.i",
            ),
        ],
    )
    def test_attributes_refused(self, client: Client, attributes: dict[str, object], field: str) -> None:
        client.create("attrs")
        with pytest.raises(grpc.RpcError) as err:
            assign(client, "attrs", "p1", attributes)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request(err.value)) == [field]

    def test_attributes_at_the_limit_accepted(self, client: Client) -> None:
        client.create("limit", condition=json.dumps({"blob": {"$exists": True}}))
        assert assign(client, "limit", "p1", {"blob": "x" * 16_000}).in_experiment


class TestGrowthBookParity:
    """An imported GrowthBook experiment targets and buckets whom the GrowthBook SDK does."""

    def test_sdk_and_server_agree(self, client: Client) -> None:
        condition = {
            "$or": [
                {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}},
                {"app": {"$vgte": "2.0.0"}, "email": {"$regex": "@example\\.com$"}},
            ]
        }
        sdk_shape = {
            "key": "gb-parity",
            "variations": [0, 1, 2],
            "weights": [0.2, 0.3, 0.5],
            "coverage": 0.9,
            "hashVersion": 2,
            "condition": condition,
            "hashAttribute": "deviceId",
            "status": "running",
        }
        imported = from_growthbook(sdk_shape).experiment
        client.experiments.CreateExperiment(espb.CreateExperimentRequest(experiment=experiment_to_pb(imported)))
        gb_experiment = GBExperiment(
            key="gb-parity",
            variations=[0, 1, 2],
            weights=[0.2, 0.3, 0.5],
            coverage=0.9,
            hashVersion=2,
            condition=condition,
            hashAttribute="deviceId",
        )
        rng = random.Random(9)
        outcomes = set()
        for i in range(300):
            attributes: dict[str, object] = {
                "country": rng.choice(["US", "CA", "FR"]),
                "age": rng.choice([12, 18, 40]),
                "app": rng.choice(["1.9.9", "2.0.0", "2.10.1"]),
                "email": rng.choice(["a@example.com", "b@x.org"]),
            }
            if rng.random() < 0.9:
                attributes["deviceId"] = f"dev-{i}"
            theirs = GrowthBook(attributes=attributes).run(gb_experiment)
            ours = assign(client, "gb-parity", f"p{i}", attributes)
            assert ours.in_experiment == theirs.inExperiment, attributes
            if theirs.inExperiment:
                assert ours.arm.index == theirs.variationId
            outcomes.add((ours.in_experiment, ours.reason))
        assert {r for _, r in outcomes} >= {
            apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT,
            apb.ASSIGNMENT_REASON_NOT_ELIGIBLE,
            apb.ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE,
            apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE,
        }


class TestReviewFixes:
    def test_id_attribute_defaults_to_the_participant_id(self, client: Client) -> None:
        """A GrowthBook import's `{"id": {"$in": ...}}` works without an `id` attribute."""
        client.create("by-id", condition=json.dumps({"id": {"$in": ["alice"]}}))
        assert assign(client, "by-id", "alice").in_experiment
        assert assign(client, "by-id", "alice2", {"plan": "pro"}).reason == apb.ASSIGNMENT_REASON_NOT_ELIGIBLE
        # an `id` the caller sends wins
        assert assign(client, "by-id", "carol", {"id": "alice"}).in_experiment

    @pytest.mark.parametrize("field", ["condition", "hash_attribute"])
    def test_preassigned_experiments_refuse_targeting(self, client: Client, field: str) -> None:
        value = json.dumps({"country": "US"}) if field == "condition" else "deviceId"
        fields: dict[str, Any] = {field: value}
        with pytest.raises(grpc.RpcError) as err:
            client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED, **fields)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request(err.value)) == [f"experiment.{field}"]

    @pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": {"$gt": 1e999}}', '{"a": -Infinity}'])
    def test_non_finite_numbers_are_refused(self, client: Client, text: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create("nan", condition=text)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request(err.value)) == ["experiment.condition"]
