"""The Redis failure policy as a field: stored, converted, validated, updatable, in files."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest

from assignsvc.api.convert import experiment_from_pb, experiment_to_pb
from assignsvc.app.assign import Assigner, AssignmentResult
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.cli.output import print_assignment
from assignsvc.core import lifecycle
from assignsvc.core.bucketing import BucketPlan, Outcome
from assignsvc.core.model import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    RedisFailurePolicy,
)
from assignsvc.documents.experiment_file import dump_experiment, read_experiments
from assignsvc.errors import AssignsvcError, InvalidArgumentError, NotFoundError, StoreUnavailableError
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.protocols import Claim, ClaimKind
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb

EXPERIMENT = Experiment(
    id="exp",
    name="exp",
    arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)),
    status=ExperimentStatus.RUNNING,
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


class _DownStore:
    """An AssignmentStore whose Redis fails: refuses at once, or (hang=True) never answers."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def _fail(self) -> Any:
        if self.hang:
            await asyncio.Event().wait()
        raise StoreUnavailableError("store unavailable: connection refused")

    async def claim(self, *request: object, **timeout: object) -> Claim:
        return await self._fail()

    async def claim_many(self, requests: object) -> list[Claim]:
        return await self._fail()

    async def lookup(self, *request: object) -> Claim:
        return await self._fail()


def _assigner(store: _DownStore | PipelinedAssignmentStore, *experiments: Experiment) -> Assigner:
    registry = ExperimentRegistry(None, 3600)  # type: ignore[arg-type]  # never loads: put() only
    for experiment in experiments:
        registry.put(experiment)
    return Assigner(registry, store, store_timeout_s=5.0)  # type: ignore[arg-type]


CLOSED = dataclasses.replace(EXPERIMENT, id="closed")
HALF = dataclasses.replace(OPEN, id="half", coverage=0.5)
PAUSED = dataclasses.replace(OPEN, id="paused", status=ExperimentStatus.PAUSED)
PREASSIGNED = dataclasses.replace(OPEN, id="pre", type=ExperimentType.PREASSIGNED)
FORCED = dataclasses.replace(EXPERIMENT, id="forced", forced_arms={"qa": "b"})


class TestPolicyAnswers:
    """When the claim fails: FAIL_OPEN answers the hash's verdict unpersisted, FAIL_CLOSED is UNAVAILABLE."""

    def test_fail_open_answers_the_hashed_arm(self) -> None:
        assigner = _assigner(_DownStore(), OPEN)
        result = asyncio.run(assigner.assign("exp", "alice"))
        decision = BucketPlan.compile(OPEN).decide("alice")
        assert (result.reason, result.arm_index, result.persisted) == (
            AssignmentReason.NEW_ASSIGNMENT,
            decision.arm_index,
            False,
        )
        assert result.first_seen_ms == 0 and len(assigner.cache) == 0

    def test_fail_open_keeps_exclusions_and_closed_reasons(self) -> None:
        assigner = _assigner(_DownStore(), HALF, PAUSED)
        plan = BucketPlan.compile(HALF)
        excluded = next(p for p in (f"p{i}" for i in range(100)) if plan.decide(p).outcome is not Outcome.IN_ARM)
        result = asyncio.run(assigner.assign("half", excluded))
        assert (result.reason, result.arm, result.persisted) == (AssignmentReason.EXCLUDED_BY_COVERAGE, None, False)
        paused = asyncio.run(assigner.assign("paused", "alice"))
        assert (paused.reason, paused.arm, paused.persisted) == (AssignmentReason.EXPERIMENT_NOT_RUNNING, None, False)

    def test_fail_closed_is_unavailable_naming_the_policy(self) -> None:
        with pytest.raises(StoreUnavailableError, match="fails closed"):
            asyncio.run(_assigner(_DownStore(), CLOSED).assign("closed", "alice"))

    def test_preassigned_fails_closed_even_when_open(self) -> None:
        with pytest.raises(StoreUnavailableError, match="preassigned"):
            asyncio.run(_assigner(_DownStore(), PREASSIGNED).assign("pre", "alice"))

    def test_forced_arms_need_no_store_and_are_not_persisted(self) -> None:
        result = asyncio.run(_assigner(_DownStore(), FORCED).assign("forced", "qa"))
        assert (result.reason, result.arm and result.arm.id, result.persisted) == (AssignmentReason.FORCED, "b", False)

    def test_batch_answers_per_item(self) -> None:
        assigner = _assigner(_DownStore(), OPEN, CLOSED)
        opened, closed, missing = asyncio.run(
            assigner.assign_many([("exp", "alice", None), ("closed", "alice", None), ("nope", "alice", None)])
        )
        assert isinstance(opened, AssignmentResult) and opened.arm is not None and not opened.persisted
        assert isinstance(closed, StoreUnavailableError)
        assert isinstance(missing, NotFoundError)

    def test_a_hung_store_is_cut_short_by_the_deadline(self) -> None:
        async def timed(experiment_id: str) -> tuple[float, AssignmentResult | BaseException]:
            store = PipelinedAssignmentStore(_DownStore(hang=True))  # type: ignore[arg-type]  # a stand-in
            assigner = _assigner(store, OPEN, CLOSED)
            started = time.monotonic()
            try:
                outcome: AssignmentResult | BaseException = await assigner.assign(experiment_id, "alice", None, 0.2)
            except StoreUnavailableError as error:
                outcome = error
            return time.monotonic() - started, outcome

        elapsed, opened = asyncio.run(timed("exp"))
        assert isinstance(opened, AssignmentResult) and not opened.persisted
        assert 0.15 < elapsed < 0.2  # answered before the deadline, with room to send it
        elapsed, closed = asyncio.run(timed("closed"))
        assert isinstance(closed, StoreUnavailableError) and "did not answer the claim within 0.180s" in closed.message
        assert elapsed < 0.2

    def test_a_hung_batch_is_cut_short_too(self) -> None:
        async def batch() -> tuple[float, list[AssignmentResult | AssignsvcError]]:
            assigner = _assigner(_DownStore(hang=True), OPEN, CLOSED)
            started = time.monotonic()
            results = await assigner.assign_many([("exp", "alice", None), ("closed", "bob", None)], 0.2)
            return time.monotonic() - started, results

        elapsed, (opened, closed) = asyncio.run(batch())
        assert elapsed < 0.2
        assert isinstance(opened, AssignmentResult) and opened.arm is not None and not opened.persisted
        assert isinstance(closed, StoreUnavailableError)

    def test_claims_of_one_turn_keep_their_own_deadlines(self) -> None:
        """Claims queued in one loop turn share one timer: it fires for the earliest deadline
        and re-arms for the others, so each waiter gives up at its own deadline."""

        async def scenario() -> None:
            store = PipelinedAssignmentStore(_DownStore(hang=True))  # type: ignore[arg-type]  # a stand-in
            late = asyncio.ensure_future(store.claim(OPEN, "late", 0, 1, timeout_s=0.3))
            early = asyncio.ensure_future(store.claim(OPEN, "early", 0, 1, timeout_s=0.02))
            done, _ = await asyncio.wait({late, early}, return_when=asyncio.FIRST_COMPLETED)
            assert done == {early} and isinstance(early.exception(), StoreUnavailableError)
            with pytest.raises(StoreUnavailableError, match=r"within 0\.300s"):
                await late

        asyncio.run(scenario())

    def test_abandoned_claims_are_not_sent(self) -> None:
        """Waiters whose time ran out while every pipeline was in flight are dropped, not replayed."""

        async def scenario() -> list[str]:
            sent: list[str] = []
            gate = asyncio.Event()

            class Slow(_DownStore):
                async def claim(self, *request: object, **timeout: object) -> Claim:
                    sent.append(str(request[1]))
                    await gate.wait()
                    return Claim(ClaimKind.ABSENT)

            store = PipelinedAssignmentStore(Slow(), max_in_flight=1)  # type: ignore[arg-type]  # a stand-in
            first = asyncio.ensure_future(store.claim(OPEN, "first", 0, 1))
            while not sent:  # the one pipeline allowed is now in flight
                await asyncio.sleep(0)
            with pytest.raises(StoreUnavailableError):
                await store.claim(OPEN, "abandoned", 0, 1, timeout_s=0.01)
            gate.set()
            await first
            await asyncio.sleep(0.01)
            return sent

        assert asyncio.run(scenario()) == ["first"]

    def test_get_assignment_only_reads_so_no_policy_applies(self) -> None:
        with pytest.raises(StoreUnavailableError):
            asyncio.run(_assigner(_DownStore(), OPEN).get_assignment("exp", "alice"))


class TestCliOutput:
    """`assignsvc assign` says when an arm was answered without being stored."""

    def test_fail_open_answer_is_marked(self, capsys: pytest.CaptureFixture[str]) -> None:
        answer = apb.Assignment(
            participant_id="alice",
            in_experiment=True,
            arm=apb.AssignedArm(id="b", index=1),
            reason=apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT,
            persisted=False,
        )
        print_assignment(answer, "table")
        assert "not stored: Redis unavailable" in capsys.readouterr().out
