"""Pure lifecycle rules and the SRM statistic (no servers)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from assignsvc.core import lifecycle
from assignsvc.core.lifecycle import Action
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.core.stats import chi2_survival, srm_p_value
from assignsvc.errors import FailedPreconditionError, InvalidArgumentError

EXP = Experiment(id="e", name="e", arms=(Arm("c", "c", 0.5), Arm("t", "t", 0.5)))


class TestChiSquare:
    """The survival function against closed forms: dof 1 is erfc, dof 2 is exp."""

    @pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.841458820694124, 10.0, 40.0, 150.0])
    def test_closed_forms(self, x: float) -> None:
        assert math.isclose(chi2_survival(x, 1), math.erfc(math.sqrt(x / 2)), rel_tol=1e-9)
        assert math.isclose(chi2_survival(x, 2), math.exp(-x / 2), rel_tol=1e-9)

    def test_known_quantiles(self) -> None:
        assert math.isclose(chi2_survival(3.841458820694124, 1), 0.05, rel_tol=1e-9)
        assert math.isclose(chi2_survival(11.070497693516351, 5), 0.05, rel_tol=1e-8)  # scipy chi2.ppf(.95, 5)
        assert math.isclose(chi2_survival(23.209251158954356, 10), 0.01, rel_tol=1e-8)

    def test_srm(self) -> None:
        assert srm_p_value([0, 0], [0.5, 0.5]) is None
        assert srm_p_value([5, 0], [1.0, 0.0]) is None  # one live arm: undefined
        assert srm_p_value([5, 1], [1.0, 0.0]) == 0.0  # a zero-weight arm got traffic
        assert srm_p_value([5000, 5000], [0.5, 0.5]) == 1.0
        balanced = srm_p_value([5050, 4950], [0.5, 0.5])
        assert balanced is not None and math.isclose(balanced, math.erfc(math.sqrt(1.0 / 2)), rel_tol=1e-9)
        skewed = srm_p_value([5500, 4500], [0.5, 0.5])
        assert skewed is not None and skewed < 1e-20


class TestTransitions:
    """Exactly five moves are allowed; refusals name the current status."""

    def test_table(self) -> None:
        allowed = {
            (status, action): lifecycle.TRANSITIONS[(status, action)]
            for status in ExperimentStatus
            for action in Action
            if (status, action) in lifecycle.TRANSITIONS
        }
        assert len(allowed) == 5
        for status in ExperimentStatus:
            for action in Action:
                exp = dataclasses.replace(EXP, status=status)
                if (status, action) in allowed:
                    assert lifecycle.next_status(exp, action) is allowed[(status, action)]
                else:
                    with pytest.raises(FailedPreconditionError, match=status.name):
                        lifecycle.next_status(exp, action)

    def test_action_between(self) -> None:
        assert lifecycle.action_between(ExperimentStatus.PAUSED, ExperimentStatus.RUNNING) is Action.RESUME
        assert lifecycle.action_between(ExperimentStatus.DRAFT, ExperimentStatus.DRAFT) is None
        with pytest.raises(FailedPreconditionError):
            lifecycle.action_between(ExperimentStatus.STOPPED, ExperimentStatus.RUNNING)


class TestUpdates:
    """Masks, permanent fields and arm reshaping."""

    def test_mask_takes_only_named_fields_and_keeps_names(self) -> None:
        patch = dataclasses.replace(EXP, name="x", coverage=0.2, arms=(Arm("c", "", 0.1), Arm("t", "", 0.9)))
        updated = lifecycle.apply_mask(EXP, patch, ["coverage", "arms"])
        assert (updated.name, updated.coverage) == ("e", 0.2)
        assert [(a.name, a.weight) for a in updated.arms] == [("c", 0.1), ("t", 0.9)]

    @pytest.mark.parametrize("path", ["seed", "status", "bucket_version", "hash_algorithm", "id", "nonsense"])
    def test_unmaskable_fields(self, path: str) -> None:
        with pytest.raises(InvalidArgumentError) as err:
            lifecycle.apply_mask(EXP, EXP, [path])
        assert [v.field for v in err.value.violations] == ["update_mask"]

    def test_reshaping_arms(self) -> None:
        three = dataclasses.replace(EXP, arms=(Arm("c", "c", 0.4), Arm("t", "t", 0.3), Arm("u", "u", 0.3)))
        lifecycle.check_update(EXP, three, has_assignments=False)  # DRAFT, nothing stored: fine
        with pytest.raises(FailedPreconditionError, match="stored assignments"):
            lifecycle.check_update(EXP, three, has_assignments=True)
        running = dataclasses.replace(EXP, status=ExperimentStatus.RUNNING)
        with pytest.raises(FailedPreconditionError, match="RUNNING"):
            lifecycle.check_update(
                running, dataclasses.replace(three, status=ExperimentStatus.RUNNING), has_assignments=False
            )
        reweighted = dataclasses.replace(EXP, arms=(Arm("c", "Control", 0.9), Arm("t", "t", 0.1)))
        lifecycle.check_update(EXP, reweighted, has_assignments=True)

    def test_rerandomized(self) -> None:
        nxt = lifecycle.rerandomized(dataclasses.replace(EXP, bucket_version=2), "s", block_previous=True)
        assert (nxt.bucket_version, nxt.min_bucket_version, nxt.seed) == (3, 3, "s")

    def test_diff_shows_exact_values(self) -> None:
        assert lifecycle.diff(EXP, EXP) == []
        tiny = dataclasses.replace(EXP, coverage=1.0 - 1e-12)
        assert lifecycle.diff(EXP, tiny) == [("coverage", "1.0", repr(1.0 - 1e-12))]
        assert {f for f, _, _ in lifecycle.diff(None, EXP)} >= {"arms", "seed", "status"}


class TestPhaseCap:
    """A split change past MAX_PHASES is refused: every phase is kept in the definition."""

    def test_the_last_phase_is_refused(self) -> None:
        arms = (Arm("a", "a", 0.5), Arm("b", "b", 0.5))
        current = Experiment(id="ramp", name="ramp", arms=arms, phase=lifecycle.MAX_PHASES - 2)
        updated = lifecycle.next_phase(current, current, 5)
        assert updated.phase == lifecycle.MAX_PHASES - 1
        with pytest.raises(FailedPreconditionError) as refused:
            lifecycle.next_phase(updated, updated, 6)
        assert refused.value.reason == "TOO_MANY_PHASES"
