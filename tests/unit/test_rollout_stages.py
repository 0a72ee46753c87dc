"""The rollout controller's shadow and A/B stages, on a real registry with a scripted target."""

import pytest
from _rollout import Clock, FakeTarget, Result, scripted, two_version_registry

from refit.deploy.abtest import ABLook, ArmStats, plan_sample_size
from refit.deploy.plan import RolloutPlan
from refit.deploy.rollout import run_canary
from refit.deploy.stages import ABTestSpec, ShadowSpec
from refit.deploy.target import TrafficSplit
from refit.errors import DeployError


@pytest.fixture
def reg(tmp_path):
    return two_version_registry(tmp_path)


class StageTarget(FakeTarget):
    def shadow(self, version, previous):
        self.calls.append(("shadow", version.version))
        return TrafficSplit(previous.version, version.version, 0, "v1", "v2")

    def start_experiment(self, percent, salt):
        self.calls.append(("experiment", percent))
        return TrafficSplit(1, 2, percent, "v1", "v2")


PLANNED = plan_sample_size(0.1, baseline_rate=0.1)


def look(decision, n=10):
    arm = ArmStats(n, n / 10, n / 10)
    return ABLook(decision, f"said {decision}", arm, arm, PLANNED, None)


def plan(shadow=True, ab=True, rule="keep"):
    return RolloutPlan(
        steps=(20, 100),
        interval_seconds=10,
        failures_allowed=0,
        deadline_seconds=600,
        shadow=ShadowSpec(analyses=3) if shadow else None,
        ab_test=ABTestSpec(
            metric="proportion", baseline_rate=0.1, mde=0.1, feedback_path="f",
            on_inconclusive=rule,
        ) if ab else None,
    )  # fmt: skip


def go(reg, target, shadow_results, ab_looks, p):
    clock = Clock()
    target.clock = clock
    shadows = list(shadow_results)
    looks = list(ab_looks)

    def shadow_analyze(split, elapsed, last):
        return shadows.pop(0) if shadows else [Result("shadow-disagreement", True)]

    def ab_analyze(salt, final, since):
        assert salt.startswith("churn-v2-")
        return looks.pop(0) if looks else look("continue")

    return run_canary(
        reg, 2, target, p, scripted(), clock=clock, sleep=clock.sleep,
        shadow_analyze=shadow_analyze, ab_analyze=ab_analyze,
    )  # fmt: skip


def test_a_shadow_failing_early_moves_no_traffic(reg):
    target = StageTarget()
    bad = [Result("shadow-disagreement", False, decisive=True, detail="clearly over")]
    result = go(reg, target, [bad], [], plan())
    assert result.outcome == "rolled_back"
    assert target.calls == [("preflight", 2, 1), ("shadow", 2), ("rollback",)]
    assert result.reason.startswith("shadow stage failed early, at analysis 1")
    assert reg.get(2).status == "rolled_back" and reg.get_alias("champion") == 1


def test_a_shadow_over_its_ceiling_at_the_last_analysis_fails(reg):
    target = StageTarget()
    over = [Result("shadow-latency", False, detail="ratio 3 > 2")]
    result = go(reg, target, [[Result("x", True)], [Result("x", True)], over], [], plan(ab=False))
    assert result.outcome == "rolled_back" and "at its last analysis" in result.reason
    assert len(result.steps[0].analyses) == 3


def test_shadow_canary_ab_promote(reg):
    target = StageTarget()
    result = go(reg, target, [], [look("continue"), look("promote", 300)], plan())
    assert result.outcome == "promoted", result.to_markdown()
    assert [c[0] for c in target.calls] == [
        "preflight", "shadow", "start", "experiment", "promote",
    ]  # fmt: skip
    assert [s.stage for s in result.steps] == ["shadow", "canary", "ab_test", "canary"]
    assert result.ab_test["decision"] == "promote"
    assert reg.audit.records("ab_test")[-1]["payload"]["planned"]["control"] == PLANNED.control
    assert "| A/B 50 |" in result.to_markdown()


def test_inconclusive_ab_keeps_the_champion_without_a_rollback_mark(reg):
    target = StageTarget()
    result = go(reg, target, [], [look("keep")], plan())
    assert result.outcome == "kept" and result.live_version == 1
    assert target.calls[-1] == ("rollback",)  # traffic back to the champion
    assert reg.get(2).status == "registered" and reg.get_alias("champion") == 1
    assert not reg.audit.records("rollback")


def test_a_worse_ab_rolls_back(reg):
    target = StageTarget()
    result = go(reg, target, [], [look("rollback")], plan(shadow=False))
    assert result.outcome == "rolled_back" and result.reason == "A/B test: said rollback"
    assert reg.get(2).status == "rolled_back"


def test_the_ab_stage_ends_at_the_deadline_with_a_final_look(reg):
    target = StageTarget()
    finals = []
    clock = Clock()
    target.clock = clock

    def ab_analyze(salt, final, since):
        finals.append(final)
        return look("keep") if final else look("continue")

    result = run_canary(
        reg, 2, target, plan(shadow=False), scripted(), clock=clock, sleep=clock.sleep,
        ab_analyze=ab_analyze,
    )  # fmt: skip
    assert result.outcome == "kept" and finals[-1] and not any(finals[:-1])
    assert clock.t <= 600


def test_a_target_without_stages_is_refused_before_anything_moves(reg):
    target = FakeTarget()
    with pytest.raises(DeployError, match="cannot mirror requests"):
        go(reg, target, [], [], plan())
    assert target.calls == []
