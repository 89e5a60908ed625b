"""The experiment lifecycle through a live server: every transition, updates with etags,
delete, the schedule window, re-randomization, min_bucket_version, forced arms and stats."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, assign, assign_all, bad_request_fields, error_reason, stats
from tests.support.hashing import hashed_to

S = epb.ExperimentStatus


def update(client: Client, experiment: epb.Experiment, *paths: str) -> epb.Experiment:
    request = espb.UpdateExperimentRequest(experiment=experiment, update_mask=FieldMask(paths=list(paths)))
    return client.experiments.UpdateExperiment(request).experiment


def get(client: Client, experiment_id: str) -> epb.Experiment:
    return client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id=experiment_id)).experiment


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def status_rpc(client: Client, action: str) -> Callable[..., epb.Experiment]:
    """The Start/Pause/Resume/Stop RPC named by action, as f(experiment_id, etag)."""
    stub = client.experiments
    rpcs = {
        "start": (stub.StartExperiment, espb.StartExperimentRequest),
        "pause": (stub.PauseExperiment, espb.PauseExperimentRequest),
        "resume": (stub.ResumeExperiment, espb.ResumeExperimentRequest),
        "stop": (stub.StopExperiment, espb.StopExperimentRequest),
    }
    method, request = rpcs[action]

    def call(experiment_id: str, etag: str = "") -> epb.Experiment:
        return method(request(experiment_id=experiment_id, etag=etag)).experiment

    return call


# How to reach each status from DRAFT, and the one allowed move out of it per action.
PATH_TO = {"DRAFT": [], "RUNNING": ["start"], "PAUSED": ["start", "pause"], "STOPPED": ["start", "stop"]}
ALLOWED = {
    ("DRAFT", "start"): "RUNNING",
    ("RUNNING", "pause"): "PAUSED",
    ("PAUSED", "resume"): "RUNNING",
    ("RUNNING", "stop"): "STOPPED",
    ("PAUSED", "stop"): "STOPPED",
}


class TestTransitions:
    """DRAFT -> RUNNING <-> PAUSED -> STOPPED, RUNNING -> STOPPED; nothing else."""

    @pytest.mark.parametrize("source", list(PATH_TO))
    @pytest.mark.parametrize("action", ["start", "pause", "resume", "stop"])
    def test_every_transition(self, client: Client, source: str, action: str) -> None:
        client.create("t", status=S.EXPERIMENT_STATUS_DRAFT)
        for step in PATH_TO[source]:
            status_rpc(client, step)("t")
        assert S.Name(get(client, "t").status) == f"EXPERIMENT_STATUS_{source}"
        target = ALLOWED.get((source, action))
        if target is not None:
            changed = status_rpc(client, action)("t")
            assert S.Name(changed.status) == f"EXPERIMENT_STATUS_{target}"
            assert get(client, "t") == changed
        else:
            err = rpc_error(lambda: status_rpc(client, action)("t"))
            assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert source in (err.details() or "")
            assert error_reason(err) == "INVALID_STATUS_TRANSITION"
            assert S.Name(get(client, "t").status) == f"EXPERIMENT_STATUS_{source}"

    def test_paused_and_stopped_keep_stored_arms_and_create_nothing(self, client: Client) -> None:
        client.create("p")
        alice = assign(client, "p", "alice")
        status_rpc(client, "pause")("p")
        assert assign(client, "p", "alice").arm == alice.arm
        assert assign(client, "p", "bob").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING
        status_rpc(client, "resume")("p")
        status_rpc(client, "stop")("p")
        assert assign(client, "p", "alice").reason == apb.ASSIGNMENT_REASON_STICKY
        assert not assign(client, "p", "bob").in_experiment
        counted = stats(client, "p")
        assert counted.total_assignments == 1

    def test_unknown_experiment_is_not_found(self, client: Client) -> None:
        err = rpc_error(lambda: status_rpc(client, "start")("nope"))
        assert err.code() is grpc.StatusCode.NOT_FOUND


class TestUpdate:
    """Field masks, etags, and what may change once assignments exist."""

    def test_masked_fields_change_and_others_stay(self, client: Client) -> None:
        created = client.create("u", name="before", coverage=0.5)
        patch = epb.Experiment(id="u", name="after", coverage=0.9)
        updated = update(client, patch, "coverage")
        assert (updated.name, updated.coverage) == ("before", 0.9)
        assert updated.etag != created.etag
        assert updated.update_time.ToMilliseconds() >= created.update_time.ToMilliseconds()
        assert get(client, "u") == updated

    def test_stale_etag_is_aborted_and_writes_nothing(self, client: Client) -> None:
        created = client.create("u")
        first = update(client, epb.Experiment(id="u", coverage=0.5, etag=created.etag), "coverage")
        err = rpc_error(lambda: update(client, epb.Experiment(id="u", coverage=0.1, etag=created.etag), "coverage"))
        assert err.code() is grpc.StatusCode.ABORTED
        assert get(client, "u").coverage == 0.5
        again = update(client, epb.Experiment(id="u", coverage=0.2, etag=first.etag), "coverage")
        assert again.coverage == 0.2
        for call in (
            lambda: client.experiments.DeleteExperiment(
                espb.DeleteExperimentRequest(experiment_id="u", etag=first.etag)
            ),
            lambda: status_rpc(client, "pause")("u", created.etag),
        ):
            assert rpc_error(call).code() is grpc.StatusCode.ABORTED
        assert get(client, "u") == again

    @pytest.mark.parametrize(
        ("patch", "paths", "fields"),
        [
            (epb.Experiment(id="u", coverage=1.5), ["coverage"], ["experiment.coverage"]),
            (
                epb.Experiment(id="u", arms=[epb.Arm(id="x", weight=0.5), epb.Arm(id="x", weight=0.6)]),
                ["arms"],
                ["experiment.arms[1].id", "experiment.arms"],
            ),
            (
                epb.Experiment(id="u", namespace=epb.Namespace(id="n", range_start=0.6, range_end=0.2)),
                ["namespace"],
                ["experiment.namespace.range_end"],
            ),
            (epb.Experiment(id="u", seed="other"), ["seed"], ["update_mask"]),
            (epb.Experiment(id="u", status=S.EXPERIMENT_STATUS_STOPPED), ["status"], ["update_mask"]),
            (epb.Experiment(id="u", name="x"), [], ["update_mask"]),
            (epb.Experiment(id="u", forced_arms={"qa": "nope"}), ["forced_arms"], ["experiment.forced_arms['qa']"]),
            (
                epb.Experiment(id="u", start_time=Timestamp(seconds=2_000), end_time=Timestamp(seconds=1_000)),
                ["start_time", "end_time"],
                ["experiment.end_time"],
            ),
            (epb.Experiment(id="u", coverage=0.5, etag="not-an-etag"), ["coverage"], ["experiment.etag"]),
        ],
    )
    def test_bad_updates_name_the_field_and_write_nothing(
        self, client: Client, patch: epb.Experiment, paths: list[str], fields: list[str]
    ) -> None:
        created = client.create("u")
        err = rpc_error(lambda: update(client, patch, *paths))
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(err) == fields
        assert get(client, "u") == created

    def test_arms_are_locked_once_assigned_but_weights_and_names_are_not(self, client: Client) -> None:
        client.create("arms", status=S.EXPERIMENT_STATUS_DRAFT)
        three = [epb.Arm(id="a0", weight=0.4), epb.Arm(id="a1", weight=0.3), epb.Arm(id="a2", weight=0.3)]
        assert len(update(client, epb.Experiment(id="arms", arms=three), "arms").arms) == 3  # DRAFT, no rows
        status_rpc(client, "start")("arms")
        assign(client, "arms", "alice")
        two = [epb.Arm(id="a0", weight=0.5), epb.Arm(id="a1", weight=0.5)]
        for arms in (two, [three[1], three[0], three[2]], [*three[:2], epb.Arm(id="renamed", weight=0.3)]):
            err = rpc_error(functools.partial(update, client, epb.Experiment(id="arms", arms=arms), "arms"))
            assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert error_reason(err) == "ARMS_LOCKED"
        reweighted = [
            epb.Arm(id="a0", name="Control", weight=0.2),
            epb.Arm(id="a1", weight=0.4),
            epb.Arm(id="a2", weight=0.4),
        ]
        changed = update(client, epb.Experiment(id="arms", arms=reweighted), "arms")
        assert [(a.name, a.weight) for a in changed.arms] == [("Control", 0.2), ("a1", 0.4), ("a2", 0.4)]

    def test_arms_cannot_be_reshaped_while_running_even_before_any_assignment(self, client: Client) -> None:
        client.create("r")
        arms = [epb.Arm(id="a0", weight=0.5), epb.Arm(id="b", weight=0.5)]
        err = rpc_error(lambda: update(client, epb.Experiment(id="r", arms=arms), "arms"))
        assert err.code() is grpc.StatusCode.FAILED_PRECONDITION


class TestDelete:
    """Delete archives: NOT_FOUND to Assign and Get, id never reused, rows kept."""

    def test_delete_archives(self, client: Client) -> None:
        client.create("gone")
        assign(client, "gone", "alice")
        client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="gone"))
        for call in (
            lambda: assign(client, "gone", "alice"),
            lambda: get(client, "gone"),
            lambda: client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="gone")),
        ):
            assert rpc_error(call).code() is grpc.StatusCode.NOT_FOUND
        reuse = rpc_error(lambda: client.create("gone"))
        assert reuse.code() is grpc.StatusCode.ALREADY_EXISTS and "never reused" in (reuse.details() or "")
        listed = client.experiments.ListExperiments(espb.ListExperimentsRequest()).experiments
        assert "gone" not in [e.id for e in listed]


class TestSchedule:
    """Outside [start_time, end_time): nothing new is stored, stored arms are still answered."""

    def test_window(self, client: Client) -> None:
        client.create("w")
        alice = assign(client, "w", "alice")
        now = int(time.time())
        update(client, epb.Experiment(id="w", start_time=Timestamp(seconds=now + 3600)), "start_time")
        later = assign(client, "w", "bob")
        assert (later.in_experiment, later.reason) == (False, apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_STARTED)
        assert assign(client, "w", "alice").arm == alice.arm
        update(
            client,
            epb.Experiment(id="w", start_time=Timestamp(seconds=now - 7200), end_time=Timestamp(seconds=now - 3600)),
            "start_time",
            "end_time",
        )
        ended = assign(client, "w", "bob")
        assert (ended.in_experiment, ended.reason) == (False, apb.ASSIGNMENT_REASON_EXPERIMENT_ENDED)
        assert assign(client, "w", "alice").reason == apb.ASSIGNMENT_REASON_STICKY
        update(client, epb.Experiment(id="w"), "start_time", "end_time")  # clear the window
        assert assign(client, "w", "bob").reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT
        counted = stats(client, "w")
        assert counted.total_assignments == 2


class TestBucketVersions:
    """Rerandomize starts a new version; min_bucket_version blocks holders of older arms."""

    def test_rerandomize_rebuckets_everyone_and_keeps_old_rows(self, client: Client) -> None:
        created = client.create("rr", weights=(0.5, 0.5))
        ids = [f"p{i}" for i in range(400)]
        before = assign_all(client, "rr", ids)
        rr = client.experiments.RerandomizeExperiment(espb.RerandomizeExperimentRequest(experiment_id="rr"))
        assert rr.experiment.bucket_version == 1 and rr.experiment.seed != created.seed
        after = assign_all(client, "rr", ids)
        assert all(a.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT and a.bucket_version == 1 for a in after.values())
        moved = sum(after[p].arm.index != before[p].arm.index for p in ids)
        assert 120 < moved < 280  # a fresh 50/50 draw moves about half
        old = stats(client, "rr", 0)
        new = stats(client, "rr")
        assert (old.bucket_version, old.total_assignments) == (0, 400)
        assert (new.bucket_version, new.total_assignments) == (1, 400)

    def test_block_previous_participants(self, client: Client) -> None:
        client.create("mbv")
        assign(client, "mbv", "alice")
        request = espb.RerandomizeExperimentRequest(experiment_id="mbv", seed="s2", block_previous_participants=True)
        rr = client.experiments.RerandomizeExperiment(request).experiment
        assert (rr.bucket_version, rr.min_bucket_version, rr.seed) == (1, 1, "s2")
        blocked = assign(client, "mbv", "alice")
        assert (blocked.in_experiment, blocked.reason, blocked.bucket_version) == (
            False,
            apb.ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION,
            0,
        )
        assert assign(client, "mbv", "bob").reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT
        counted = stats(client, "mbv")
        assert counted.total_assignments == 1  # bob only: blocked alice stored nothing new

    def test_min_bucket_version_by_update(self, client: Client) -> None:
        client.create("mbv2")
        assign(client, "mbv2", "alice")
        client.experiments.RerandomizeExperiment(espb.RerandomizeExperimentRequest(experiment_id="mbv2"))
        assert assign(client, "mbv2", "alice").bucket_version == 1  # re-bucketed at v1
        update(client, epb.Experiment(id="mbv2", min_bucket_version=1), "min_bucket_version")
        assert assign(client, "mbv2", "alice").reason == apb.ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION
        err = rpc_error(lambda: update(client, epb.Experiment(id="mbv2", min_bucket_version=2), "min_bucket_version"))
        assert bad_request_fields(err) == ["experiment.min_bucket_version"]

    def test_rerandomize_refuses_the_same_seed(self, client: Client) -> None:
        created = client.create("same")
        request = espb.RerandomizeExperimentRequest(experiment_id="same", seed=created.seed)
        err = rpc_error(lambda: client.experiments.RerandomizeExperiment(request))
        assert bad_request_fields(err) == ["seed"]


class TestForced:
    """Forced arms: first, in any status, never stored, never counted."""

    def test_forced_arms(self, client: Client) -> None:
        client.create("f", status=S.EXPERIMENT_STATUS_DRAFT, forced_arms={"qa-1": "a1", "qa-0": "a0"})
        for pid, index in (("qa-1", 1), ("qa-0", 0)):
            answer = assign(client, "f", pid)
            assert answer.in_experiment and answer.arm.index == index
            assert answer.reason == apb.ASSIGNMENT_REASON_FORCED
            assert not answer.HasField("first_seen_time")
        assert assign(client, "f", "someone").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING
        status_rpc(client, "start")("f")
        assert assign(client, "f", "qa-1").reason == apb.ASSIGNMENT_REASON_FORCED
        update(client, epb.Experiment(id="f"), "forced_arms")  # clear the overrides
        fresh = assign(client, "f", "qa-1")
        assert fresh.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT  # nothing was stored while forced
        counted = stats(client, "f")
        assert counted.total_assignments == 1


class TestStats:
    """Counters updated with the first-seen write: exact under concurrency, plus SRM."""

    def test_concurrent_first_assigns_count_once(self, client: Client) -> None:
        client.create("s", weights=(0.5, 0.5))
        ids = [f"user-{i}" for i in range(500)]

        def hammer(_: int) -> dict[str, apb.Assignment]:
            return assign_all(client, "s", ids)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(hammer, range(4)))
        for pid in ids:  # every caller saw the same arm
            assert len({a[pid].arm.index for a in answers}) == 1
        new = sum(a[pid].reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT for a in answers for pid in ids)
        assert new == 500
        counted = stats(client, "s")
        per_arm = [sum(answers[0][pid].arm.index == i for pid in ids) for i in range(2)]
        assert [a.assignments for a in counted.arms] == per_arm
        assert counted.total_assignments == 500
        assert counted.HasField("srm_p_value") and 0.0 <= counted.srm_p_value <= 1.0
        assert counted.srm_warning == (counted.srm_p_value < 0.001)

    def test_a_weight_change_starts_a_phase_instead_of_a_false_alarm(self, client: Client) -> None:
        client.create("srm", weights=(0.5, 0.5))
        assign_all(client, "srm", [f"x{i}" for i in range(2000)])
        assert not stats(client, "srm").srm_warning
        moved = update(
            client, epb.Experiment(id="srm", arms=[epb.Arm(id="a0", weight=0.9), epb.Arm(id="a1", weight=0.1)]), "arms"
        )
        assert moved.phase == 1 and [list(p.weights) for p in moved.phases] == [[0.5, 0.5], [0.9, 0.1]]
        assign_all(client, "srm", [f"y{i}" for i in range(2000)])  # new participants, at the true 90/10 rate
        counted = stats(client, "srm")
        assert not counted.srm_warning and counted.srm_p_value > 0.001
        assert [a.weight for a in counted.arms] == [0.9, 0.1] and sum(a.assignments for a in counted.arms) == 2000
        assert counted.total_assignments == 4000
        assert [(p.phase, p.total_assignments, p.srm_warning) for p in counted.phases] == [
            (0, 2000, False),
            (1, 2000, False),
        ]
        assert [a.weight for a in counted.phases[0].arms] == [0.5, 0.5]
        assert list(counted.phases[1].arms) == list(counted.arms)

    def test_srm_flags_a_real_imbalance_inside_a_phase(self, client: Client) -> None:
        client.create("skew", weights=(0.5, 0.5))
        assign_all(client, "skew", hashed_to("skew", (0.5, 0.5), 0, 300, "x"))  # arm a1's participants lost
        skewed = stats(client, "skew")
        assert skewed.srm_warning and skewed.srm_p_value < 1e-6
        assert [a.assignments for a in skewed.arms] == [300, 0]
        assert [p.srm_warning for p in skewed.phases] == [True]

    def test_empty_experiment_has_no_p_value(self, client: Client) -> None:
        client.create("empty")
        counted = stats(client, "empty")
        assert counted.total_assignments == 0 and not counted.HasField("srm_p_value") and not counted.srm_warning

    def test_future_bucket_version_is_invalid(self, client: Client) -> None:
        client.create("fv")
        request = espb.GetExperimentStatsRequest(experiment_id="fv", bucket_version=3)
        assert bad_request_fields(rpc_error(lambda: client.experiments.GetExperimentStats(request))) == [
            "bucket_version"
        ]


class TestStickiness:
    """A participant assigned before a weights/coverage/namespace change keeps the arm."""

    @pytest.mark.slow
    def test_10k_participants_keep_their_arms_through_updates(self, client: Client) -> None:
        client.create("sticky", weights=(0.5, 0.5))
        ids = [f"participant-{i:05d}" for i in range(10_000)]
        before = assign_all(client, "sticky", ids)
        assert all(a.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT for a in before.values())
        changed = epb.Experiment(
            id="sticky",
            arms=[epb.Arm(id="a0", weight=0.9), epb.Arm(id="a1", weight=0.1)],
            coverage=0.3,
            namespace=epb.Namespace(id="ns", range_start=0.0, range_end=0.5),
        )
        update(client, changed, "arms", "coverage", "namespace")
        after = assign_all(client, "sticky", ids)
        assert all(after[p].arm == before[p].arm for p in ids)
        assert all(a.reason == apb.ASSIGNMENT_REASON_STICKY for a in after.values())
        # the change did apply: new participants see 90/10 at 30% of half the namespace
        fresh = assign_all(client, "sticky", [f"new-{i}" for i in range(4000)])
        included = [a for a in fresh.values() if a.in_experiment]
        assert 0.11 < len(included) / 4000 < 0.19
        assert sum(a.arm.index == 0 for a in included) / len(included) > 0.85
        reasons = {a.reason for a in fresh.values() if not a.in_experiment}
        assert reasons == {apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE, apb.ASSIGNMENT_REASON_EXCLUDED_BY_NAMESPACE}


def definition(experiment_id: str, **fields: object) -> epb.Experiment:
    """A full definition as `apply` sends it (status unset = keep)."""
    arms = [epb.Arm(id="c", weight=0.5), epb.Arm(id="t", weight=0.5)]
    return epb.Experiment(id=experiment_id, **{"arms": arms, **fields})  # type: ignore[arg-type]


def apply(client: Client, *experiments: epb.Experiment, dry_run: bool = False) -> list[espb.ApplyResult]:
    request = espb.ApplyExperimentsRequest(experiments=list(experiments), dry_run=dry_run)
    return list(client.experiments.ApplyExperiments(request).results)


class TestApply:
    """ApplyExperiments: create or update from full definitions, all or nothing."""

    def test_create_then_unchanged_then_update(self, client: Client) -> None:
        first = apply(client, definition("a1"), definition("a2", status=S.EXPERIMENT_STATUS_RUNNING))
        assert [r.action for r in first] == [espb.APPLY_ACTION_CREATED] * 2
        assert get(client, "a1").status == S.EXPERIMENT_STATUS_DRAFT
        assert get(client, "a2").status == S.EXPERIMENT_STATUS_RUNNING
        again = apply(client, definition("a1"), definition("a2"))
        assert [(r.action, list(r.changes)) for r in again] == [(espb.APPLY_ACTION_UNCHANGED, [])] * 2
        changed = apply(client, definition("a1", coverage=0.5, status=S.EXPERIMENT_STATUS_RUNNING))
        assert changed[0].action == espb.APPLY_ACTION_UPDATED
        assert {(c.field, c.old_value, c.new_value) for c in changed[0].changes} == {
            ("coverage", "1.0", "0.5"),
            ("status", "DRAFT", "RUNNING"),
        }
        assert get(client, "a1") == changed[0].experiment

    def test_dry_run_writes_nothing(self, client: Client) -> None:
        apply(client, definition("d"))
        preview = apply(client, definition("d", coverage=0.25), definition("new"), dry_run=True)
        assert [r.action for r in preview] == [espb.APPLY_ACTION_UPDATED, espb.APPLY_ACTION_CREATED]
        assert get(client, "d").coverage == 1.0
        assert rpc_error(lambda: get(client, "new")).code() is grpc.StatusCode.NOT_FOUND

    def test_one_bad_definition_changes_nothing(self, client: Client) -> None:
        apply(client, definition("keep"))
        bad = definition("bad", arms=[epb.Arm(id="c", weight=0.7), epb.Arm(id="t", weight=0.7)])
        err = rpc_error(lambda: apply(client, definition("keep", coverage=0.1), definition("fresh"), bad))
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(err) == ["experiments[2].arms"]
        assert get(client, "keep").coverage == 1.0
        for missing in ("fresh", "bad"):
            assert rpc_error(functools.partial(get, client, missing)).code() is grpc.StatusCode.NOT_FOUND

    def test_refused_transition_and_duplicates_change_nothing(self, client: Client) -> None:
        apply(client, definition("s"))
        err = rpc_error(lambda: apply(client, definition("other"), definition("s", status=S.EXPERIMENT_STATUS_PAUSED)))
        assert err.code() is grpc.StatusCode.FAILED_PRECONDITION and "DRAFT" in (err.details() or "")
        dup = rpc_error(lambda: apply(client, definition("x"), definition("x")))
        assert bad_request_fields(dup) == ["experiments[1].id"]
        assert rpc_error(lambda: get(client, "other")).code() is grpc.StatusCode.NOT_FOUND

    def test_higher_bucket_version_rerandomizes(self, client: Client) -> None:
        apply(client, definition("v", status=S.EXPERIMENT_STATUS_RUNNING, seed="s1"))
        alice = assign(client, "v", "alice")
        result = apply(client, definition("v", seed="s2", bucket_version=1))[0]
        assert (result.experiment.bucket_version, result.experiment.seed) == (1, "s2")
        again = assign(client, "v", "alice")
        assert (again.reason, again.bucket_version, alice.bucket_version) == (
            apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT,
            1,
            0,
        )
        err = rpc_error(lambda: apply(client, definition("v", seed="s3", bucket_version=1)))
        assert bad_request_fields(err) == ["experiments[0].seed"]
        back = rpc_error(lambda: apply(client, definition("v", seed="s2", bucket_version=0)))
        assert bad_request_fields(back) == ["experiments[0].bucket_version"]
