"""Phases and released arms on the in-memory stores: which changes start a phase, counts
and the SRM test per phase (the SRM watcher looks at the current phase only), the stored
form of phases (and of experiments written before them), releasing an arm on stop, and the
events those writes record."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from assignsvc.app.apply import Desired, ExperimentApplier
from assignsvc.app.assign import Assigner
from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.webhooks.srm import SrmWatcher
from assignsvc.core import lifecycle
from assignsvc.core.lifecycle import Action
from assignsvc.core.model import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    Namespace,
    Phase,
)
from assignsvc.core.stats import srm_p_value
from assignsvc.errors import FailedPreconditionError, InvalidArgumentError
from assignsvc.store.claims import ARM_SLOTS, counter_field, sum_phase_counts, total_counts
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.memory import MemoryStores
from assignsvc.store.protocols import ClaimKind
from tests.support.hashing import hashed_to

T = TypeVar("T")
EXPERIMENT = Experiment(
    id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.RUNNING
)


class World:
    """Catalog, applier, assigner and SRM watcher over one set of in-memory stores; the
    clock is a settable number of ms."""

    def __init__(self) -> None:
        self.now = 1_000
        self.stores = MemoryStores.create()
        self.registry = ExperimentRegistry(self.stores.experiments, 3600, self.stores.groups)
        self.catalog = ExperimentCatalog(
            self.registry, self.stores.experiments, self.stores.assignments, lambda: self.now
        )
        self.applier = ExperimentApplier(self.catalog, self.registry, self.stores.experiments, self.stores.assignments)
        self.assigner = Assigner(self.registry, self.stores.assignments, lambda: self.now)
        self.watcher = SrmWatcher(self.registry, self.catalog, self.stores.outbox, threshold=0.001, interval_s=60)

    async def weights(self, *weights: float) -> Experiment:
        arms = tuple(Arm(a.id, "", w) for a, w in zip(EXPERIMENT.arms, weights, strict=True))
        return await self.catalog.update(dataclasses.replace(EXPERIMENT, arms=arms), ["arms"], "")

    async def assign_all(self, ids: list[str]) -> list[AssignmentReason]:
        return [(await self.assigner.assign("exp", pid)).reason for pid in ids]

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        await self.stores.outbox.ensure_group()
        return [(e.type, json.loads(e.detail or "{}")) for e in await self.stores.outbox.read_events("t", 100)]


def run(body: Callable[[World], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body(World()))


class TestWhatStartsAPhase:
    def test_a_preassigned_experiment_keeps_one_phase(self) -> None:
        """Uploads balance every phase's counts toward the current weights: a phase of its own would be skewed."""

        async def body(world: World) -> None:
            await world.catalog.create(dataclasses.replace(EXPERIMENT, type=ExperimentType.PREASSIGNED))
            await world.stores.assignments.claim(world.catalog.get("exp"), "p1", 0, 1_000)
            moved = await world.weights(0.9, 0.1)
            assert [a.weight for a in moved.arms] == [0.9, 0.1]
            assert (moved.phase, len(moved.phases)) == (0, 1)

        run(body)

    def test_a_split_change_with_assignments_starts_a_phase_recording_the_old_split(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            assert world.catalog.get("exp").phases == (Phase(0, 1_000, (0.5, 0.5), 1.0, None),)
            await world.assign_all(["p1", "p2"])
            world.now = 5_000
            moved = await world.weights(0.9, 0.1)
            assert (moved.phase, moved.phase_start_ms) == (1, 5_000)
            assert moved.phases == (
                Phase(0, 1_000, (0.5, 0.5), 1.0, None),
                Phase(1, 5_000, (0.9, 0.1), 1.0, None),
            )
            covered = await world.catalog.update(dataclasses.replace(moved, coverage=0.5), ["coverage"], "")
            spaced = await world.catalog.update(
                dataclasses.replace(moved, namespace=Namespace("ns", 0.0, 0.5)), ["namespace"], ""
            )
            assert (covered.phase, spaced.phase) == (2, 3)
            assert spaced.phases[2] == Phase(2, 5_000, (0.9, 0.1), 0.5, None)
            assert spaced.current_phase.namespace == Namespace("ns", 0.0, 0.5)

        run(body)

    def test_changes_that_keep_the_split_and_changes_before_any_assignment_start_none(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            assert (await world.weights(0.7, 0.3)).phase == 0  # nothing stored yet: still phase 0
            await world.assign_all(["p1"])
            patch = dataclasses.replace(
                EXPERIMENT,
                name="renamed",
                end_time_ms=9_000_000,
                condition='{"country":"US"}',
                forced_arms={"qa": "b"},
                arms=(Arm("a", "A", 0.7), Arm("b", "B", 0.3)),  # names only
            )
            kept = await world.catalog.update(patch, ["name", "end_time", "condition", "forced_arms", "arms"], "")
            assert (kept.phase, kept.past_phases) == (0, ())

        run(body)

    def test_apply_starts_a_phase_as_update_does(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            await world.assign_all(["p1"])
            skewed = dataclasses.replace(EXPERIMENT, arms=(Arm("a", "a", 0.2), Arm("b", "b", 0.8)))
            [outcome] = await world.applier.apply([Desired(skewed, None)], dry_run=False)
            assert outcome.experiment.phase == 1 and outcome.experiment.past_phases[0].weights == (0.5, 0.5)
            [again] = await world.applier.apply([Desired(skewed, None)], dry_run=False)
            assert again.experiment.phase == 1 and not again.changes  # the same file: no new phase

        run(body)

    def test_split_changed_compares_weights_coverage_and_namespace_only(self) -> None:
        assert not lifecycle.split_changed(EXPERIMENT, dataclasses.replace(EXPERIMENT, name="x", condition="{}"))
        assert lifecycle.split_changed(EXPERIMENT, dataclasses.replace(EXPERIMENT, coverage=0.9))
        assert lifecycle.split_changed(EXPERIMENT, dataclasses.replace(EXPERIMENT, namespace=Namespace("n", 0, 1)))


class TestCountsPerPhase:
    def test_each_assignment_counts_in_its_phase_and_totals_sum_every_phase(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            first = await world.assign_all([f"old{i}" for i in range(40)])
            await world.weights(0.9, 0.1)
            again = await world.assign_all([f"old{i}" for i in range(40)] + [f"new{i}" for i in range(60)])
            assert set(first) == {AssignmentReason.NEW_ASSIGNMENT}
            assert again.count(AssignmentReason.STICKY) == 40  # returning participants keep their arm
            stats = await world.catalog.stats("exp", None)
            assert [p.phase.number for p in stats.phases] == [0, 1]
            assert [p.total for p in stats.phases] == [40, 60]
            assert stats.total == 100 and stats.counts == total_counts(
                {0: stats.phases[0].counts, 1: stats.current.counts}, 2
            )
            assert stats.current.phase.weights == (0.9, 0.1) and stats.phases[0].phase.weights == (0.5, 0.5)

        run(body)

    def test_counters_written_before_phases_read_as_phase_zero(self) -> None:
        # a counter hash as every earlier version wrote it: field = the arm index
        plain = [{b"0": b"7", b"1": b"5"}, {b"1": b"2"}]
        assert sum_phase_counts(plain, 2) == {0: [7, 7]}
        assert counter_field(0, 1) == 1 and counter_field(2, 1) == 2 * ARM_SLOTS + 1
        mixed = [{b"0": b"7", str(counter_field(1, 0)).encode(): b"3", str(counter_field(3, 1)).encode(): b"4"}]
        assert sum_phase_counts(mixed, 2) == {0: [7, 0], 1: [3, 0], 3: [0, 4]}
        assert total_counts(sum_phase_counts(mixed, 2), 2) == [10, 4]


class TestSrmPerPhase:
    def test_a_weight_change_is_no_false_alarm(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            await world.assign_all([f"p{i}" for i in range(2000)])
            await world.weights(0.9, 0.1)
            await world.assign_all([f"q{i}" for i in range(2000)])  # the true 90/10 rate
            stats = await world.catalog.stats("exp", None)
            assert stats.current.total == 2000 and not stats.srm_warning
            assert all(not p.srm_warning for p in stats.phases)
            # the whole sample tested against the new weights: the alarm raised before phases
            pooled = srm_p_value(stats.counts, (0.9, 0.1))
            assert stats.total == 4000 and pooled is not None and pooled < 1e-6
            assert await world.watcher.check_once() == 0
            assert [t for t, _ in await world.events() if t == "experiment.warning"] == []

        run(body)

    def test_a_real_imbalance_in_the_current_phase_raises_once_per_phase(self) -> None:
        async def body(world: World) -> None:
            created = await world.catalog.create(EXPERIMENT)
            await world.assign_all([f"p{i}" for i in range(1000)])
            await world.weights(0.9, 0.1)
            await world.assign_all(hashed_to("exp", (0.9, 0.1), 1, 300, "q"))  # only arm b arrives: broken
            stats = await world.catalog.stats("exp", None)
            assert stats.srm_warning and not stats.phases[0].srm_warning
            assert await world.watcher.check_once() == 1
            assert await world.watcher.check_once() == 0  # once for this phase
            await world.weights(0.5, 0.5)
            await world.assign_all(hashed_to("exp", (0.5, 0.5), 0, 300, "r"))
            assert await world.watcher.check_once() == 1  # phase 2 has its own imbalance
            warnings = [d["warning"] for t, d in await world.events() if t == "experiment.warning"]
            assert [(w["phase"], w["counts"]) for w in warnings] == [(1, {"a": 0, "b": 300}), (2, {"a": 300, "b": 0})]
            assert warnings[0]["expected_weights"] == {"a": 0.9, "b": 0.1}
            assert created.phase == 0

        run(body)


class TestStoredForm:
    def test_phases_and_release_round_trip_and_old_json_loads_as_phase_zero(self) -> None:
        plain = dataclasses.replace(EXPERIMENT, create_time_ms=7)
        text = experiment_to_json(plain)
        assert "phase" not in json.loads(text) and "released_arm_id" not in json.loads(text)  # as before phases
        assert experiment_from_json(text) == plain and experiment_from_json(text).current_phase.start_time_ms == 7
        phased = lifecycle.next_phase(plain, dataclasses.replace(plain, coverage=0.5), 99)
        phased = dataclasses.replace(
            lifecycle.next_phase(phased, dataclasses.replace(phased, namespace=Namespace("n", 0.25, 0.5)), 120),
            status=ExperimentStatus.STOPPED,
            released_arm_id="b",
        )
        assert experiment_from_json(experiment_to_json(phased)) == phased
        assert [p.number for p in phased.phases] == [0, 1, 2]


class TestRelease:
    def test_stop_with_a_released_arm_answers_it_to_everyone_and_stores_nothing(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            holder = await world.assigner.assign("exp", "holder")
            stopped = await world.catalog.stop("exp", "", "b")
            assert (stopped.status, stopped.released_arm_id) == (ExperimentStatus.STOPPED, "b")
            for pid in ("holder", "newcomer"):
                answer = await world.assigner.assign("exp", pid)
                assert (answer.reason, answer.arm, answer.in_experiment) == (
                    AssignmentReason.RELEASED,
                    EXPERIMENT.arms[1],
                    False,
                )
                assert not answer.persisted
                looked_up = await world.assigner.get_assignment("exp", pid)
                assert looked_up.reason is AssignmentReason.RELEASED
            assert (await world.catalog.stats("exp", None)).total == 1  # only the holder's row
            assert (await world.stores.assignments.lookup(stopped, "newcomer")).kind is ClaimKind.ABSENT
            changed = await world.catalog.stop("exp", "", "a")  # changeable while stopped
            assert changed.released_arm_id == "a"
            assert (await world.assigner.assign("exp", holder.participant_id)).arm == EXPERIMENT.arms[0]
            withdrawn = await world.catalog.update(dataclasses.replace(EXPERIMENT), ["released_arm_id"], "")
            assert (await world.assigner.assign("exp", "newcomer")).reason is AssignmentReason.EXPERIMENT_NOT_RUNNING
            assert withdrawn.released_arm_id == ""
            statuses = [d for t, d in await world.events() if t == "experiment.status.updated"]
            assert [(d["action"], d.get("released_arm")) for d in statuses] == [
                ("stopped", "b"),
                ("released", "a"),
                ("released", ""),
            ]

        run(body)

    def test_bad_releases_are_refused_precisely(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            with pytest.raises(InvalidArgumentError) as not_an_arm:
                await world.catalog.stop("exp", "", "c")
            assert [v.field for v in not_an_arm.value.violations] == ["released_arm_id"]
            assert "'c' is not an arm (arms: a, b)" in not_an_arm.value.violations[0].description
            assert world.catalog.get("exp").status is ExperimentStatus.RUNNING  # nothing written
            with pytest.raises(FailedPreconditionError) as running:
                await world.catalog.update(
                    dataclasses.replace(EXPERIMENT, released_arm_id="a"), ["released_arm_id"], ""
                )
            assert running.value.reason == "RELEASE_NEEDS_STOP" and "stop it first" in running.value.message
            await world.catalog.create(dataclasses.replace(EXPERIMENT, id="draft", status=ExperimentStatus.DRAFT))
            with pytest.raises(FailedPreconditionError):
                await world.catalog.stop("draft", "", "a")  # DRAFT cannot stop
            await world.catalog.change_status("exp", Action.STOP, "")
            with pytest.raises(FailedPreconditionError):
                await world.catalog.stop("exp", "", "")  # stopping again, releasing nothing
            with pytest.raises(InvalidArgumentError):
                await world.catalog.create(dataclasses.replace(EXPERIMENT, id="new", released_arm_id="a"))

        run(body)
