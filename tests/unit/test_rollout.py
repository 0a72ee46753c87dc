"""The canary rollout controller: steps, analysis, promotion and rollback on a real registry."""

from pathlib import Path

import pytest
from _models import make_skops_model_dir
from _rollout import Clock, FakeTarget, Result, scripted, two_version_registry

from refit.deploy.local import LocalTarget
from refit.deploy.plan import RolloutPlan
from refit.deploy.rollout import run_canary
from refit.errors import ConflictError, DeployError, RegistryError
from refit.registry import ModelRegistry


@pytest.fixture
def reg(tmp_path):
    return two_version_registry(tmp_path)


PLAN = RolloutPlan(steps=(10, 50, 100), interval_seconds=30, failures_allowed=0)


def run(reg, target, analyze, plan=PLAN, **kw):
    clock = Clock()
    target.clock = clock
    return run_canary(reg, 2, target, plan, analyze, clock=clock, sleep=clock.sleep, **kw)


def test_healthy_canary_is_promoted_step_by_step(reg):
    target, analyze = FakeTarget(), scripted()
    result = run(reg, target, analyze, run_label="w3")
    assert result.outcome == "promoted" and result.live_version == 2 and result.previous == 1
    assert target.calls == [
        ("preflight", 2, 1),
        ("start", 2, 10),
        ("set_traffic", 50),
        ("promote",),
    ]
    assert [(p, e, w) for p, e, w, _ in analyze.seen] == [(10, 30, 30), (50, 60, 30)]
    assert reg.aliases() == {"champion": 2, "previous": 1}
    assert reg.get(2).status == "champion" and reg.get(1).status == "previous"
    events = [r["event"] for r in reg.audit.records()]
    assert events[-6:] == [
        "canary_started",
        "canary_step",
        "canary_check",
        "canary_step",
        "canary_check",
        "promotion",
    ]
    promotion = reg.audit.records("promotion")[-1]["payload"]
    assert (promotion["version"], promotion["previous"], promotion["run_label"]) == (2, 1, "w3")
    assert [s.outcome for s in result.steps] == ["passed", "passed", "promoted"]
    assert result.metrics()["promoted"] == 1.0 and result.metrics()["analyses"] == 2.0
    md = result.to_markdown()
    assert "promoted" in md and "| 1 | 10 | 1 | error_rate | yes |" in md
    assert not reg.audit.verify()


def test_decisive_failure_rolls_back_at_once(reg):
    bad = [Result("sequential_error_rate", False, decisive=True, detail="canary worse")]
    target = FakeTarget()
    plan = RolloutPlan((10, 50, 100), 30, failures_allowed=5)
    result = run(reg, target, scripted(bad), plan=plan)
    assert result.outcome == "rolled_back" and result.live_version == 1
    assert "decisive failure at 10%" in result.reason and "canary worse" in result.reason
    assert target.calls[-1] == ("rollback",) and ("set_traffic", 50) not in target.calls
    assert reg.aliases() == {"champion": 1}  # canary alias cleared, champion never moved
    assert reg.get(2).status == "rolled_back" and reg.get(1).status == "champion"
    rb = reg.audit.records("rollback")[-1]["payload"]
    assert (rb["version"], rb["previous"], rb["action"]) == (1, 2, "rollback")
    assert LocalTarget(reg).history()[-1].action == "rollback"
    assert result.steps[0].outcome == "failed"
    assert "**rolled back**" in result.to_markdown()


def test_failures_allowed_counts_over_the_rollout(reg):
    fail = [Result("latency", False, detail="p99 up")]
    ok = [Result("latency", True)]
    sched = RolloutPlan((10, 50, 100), 30, analyses_per_step=2, failures_allowed=1)
    promoted = run(reg, FakeTarget(), scripted(fail, ok, ok, ok), plan=sched)
    assert promoted.outcome == "promoted" and promoted.failed_analyses == 1

    # A second registry state: roll back the promotion to test the failing path on v2 again.
    reg.update_aliases({"champion": 1, "previous": None}, statuses={2: "registered"})
    rolled = run(reg, FakeTarget(), scripted(fail, ok, fail), plan=sched)
    assert rolled.outcome == "rolled_back" and rolled.failed_analyses == 2
    assert "2 failed analyses > 1 allowed (at 50%: latency: p99 up)" in rolled.reason


def test_empty_analysis_counts_as_failure(reg):
    result = run(reg, FakeTarget(), scripted([]))
    assert result.outcome == "rolled_back" and "no checks" in result.reason


def test_target_error_rolls_back_not_promotes(reg):
    for step in ("start", "set_traffic", "promote"):
        reg.update_aliases({"champion": 1, "previous": None}, statuses={2: "registered"})
        target = FakeTarget(fail_on=step)
        result = run(reg, target, scripted())
        assert result.outcome == "rolled_back", step
        assert f"API said no to {step}" in result.reason
        assert target.calls[-1] == ("rollback",)
        assert reg.get_alias("champion") == 1


def test_failed_rollback_raises_with_the_state_left(reg):
    target = FakeTarget(fail_on="rollback")
    with pytest.raises(DeployError, match=r"rolling back .* failed on target 'fake'.*by hand"):
        run(reg, target, scripted([Result("e", False, decisive=True)]))
    assert reg.get_alias("champion") == 1 and reg.get(2).status == "rolled_back"
    assert reg.audit.records("rollback")[-1]["payload"]["target_error"]


def test_deadline_rolls_back(reg):
    sched = RolloutPlan((10, 50, 100), interval_seconds=30, deadline_seconds=100)
    result = run(reg, FakeTarget(apply_seconds=60), scripted(), plan=sched)
    assert result.outcome == "rolled_back" and "deadline of 100 s passed" in result.reason


def test_errors_before_traffic_moves(reg):
    target = FakeTarget(fail_preflight=True)
    with pytest.raises(DeployError, match="onnx"):
        run(reg, target, scripted())
    assert target.calls == [("preflight", 2, 1)] and reg.get(2).status == "registered"
    with pytest.raises(RegistryError):
        run_canary(reg, 9, FakeTarget(), PLAN, scripted())
    with pytest.raises(ConflictError, match="expected version 7"):
        run(reg, FakeTarget(), scripted(), expected_champion=7)
    with pytest.raises(DeployError, match="already the champion"):
        run_canary(reg, 1, FakeTarget(), PLAN, scripted())
    assert "canary" not in reg.aliases()


def test_no_champion_deploys_directly(tmp_path):
    reg = ModelRegistry(str(tmp_path / "s"), "m")
    reg.register(
        make_skops_model_dir(tmp_path, b"x", "x"),
        metrics={},
        snapshot_sha256="a" * 64,
        parent_version=None,
        run_label="r1",
    )
    reg.register(
        make_skops_model_dir(tmp_path, b"y", "y"),
        metrics={},
        snapshot_sha256="b" * 64,
        parent_version=None,
        run_label="r2",
    )
    target = FakeTarget()
    clock = Clock()
    result = run_canary(reg, 2, target, PLAN, scripted(), clock=clock, sleep=clock.sleep)
    assert result.outcome == "promoted" and "no champion" in result.reason
    assert target.calls == [("preflight", 2, None), ("start", 2, 100), ("promote",)]
    assert reg.aliases() == {"champion": 2}


def test_a_version_awaiting_approval_is_not_rolled_out(reg):

    from refit import steps
    from refit.governance.approval import request_approval

    request_approval(reg, 2, timeout_hours=1, run_label="w")
    result = steps.canary_rollout(reg.store_uri, "churn", 2, PLAN.to_dict(), run_label="w")
    assert result is None
    assert reg.aliases() == {"champion": 1, "approval-pending-2": 2}
    assert reg.get(2).status == "awaiting_approval"
    assert not reg.audit.records("canary_started")
    # The simple promotion step holds it too.
    assert steps.promote_model(reg.store_uri, "churn", 2, run_label="w") == 1
    assert reg.get_alias("champion") == 1


@pytest.mark.parametrize(
    ("target", "options", "match"),
    [
        ("local", {"namespace": "models"}, r"\['namespace'\] are not known to the local target"),
        ("kserve", {}, "'namespace' is required"),
        ("kserve", {"namespace": "models", "replicas": 2}, r"\['replicas'\] are not known"),
        ("seldon", {}, "unknown canary target 'seldon'"),
    ],
)
def test_bad_deploy_options_are_refused_before_anything_moves(reg, target, options, match):

    from refit import steps

    plan = {**PLAN.to_dict(), "prometheus_url": "http://127.0.0.1:1"}
    with pytest.raises(DeployError, match=match):
        steps.canary_rollout(reg.store_uri, "churn", 2, plan, target=target, options=options)
    assert reg.get(2).status == "registered" and "canary" not in reg.aliases()


def test_a_plan_without_prometheus_is_refused_before_anything_moves(reg):

    from refit import steps

    with pytest.raises(DeployError, match="no prometheus_url"):
        steps.canary_rollout(reg.store_uri, "churn", 2, PLAN)
    with pytest.raises(DeployError, match="must end at 100"):
        steps.canary_rollout(reg.store_uri, "churn", 2, {"steps": [10, 50]})
    with pytest.raises(DeployError, match="plan must be a dict"):
        steps.canary_rollout(reg.store_uri, "churn", 2, '{"steps": [10, 100]}')
    assert reg.get(2).status == "registered" and not reg.audit.records("canary_started")


def test_champion_moved_during_the_rollout_rolls_back_instead_of_overwriting(reg):
    def analyze(split, elapsed, percent, window):
        if percent == 50:  # another run promotes meanwhile
            reg.register(
                make_skops_model_dir(Path(reg.store_uri), b"model 3", "3"),
                metrics={},
                snapshot_sha256="3" * 64,
                parent_version=1,
                run_label="run-3",
            )
            reg.update_aliases({"champion": 3})
        return [Result("errors", True)]

    target = FakeTarget()
    result = run(reg, target, analyze)
    assert result.outcome == "rolled_back" and "champion moved from v1 to v3" in result.reason
    assert ("promote",) not in target.calls and target.calls[-1] == ("rollback",)
    assert reg.get_alias("champion") == 3 and reg.get(2).status == "rolled_back"
