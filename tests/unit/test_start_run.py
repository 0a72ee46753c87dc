"""The retraining pipeline's first step: the run's label and the refusal of deployments that
cannot work (library functions; the pipeline runs them in tests/pipeline/test_run_status.py)."""

from __future__ import annotations

import pytest

from refit import steps
from refit.errors import DeployError
from refit.registry import ModelRegistry

PLAN = {"steps": [10.0, 100.0]}  # as KFP passes it: every number a double


def test_the_label_is_the_given_one_else_the_run_id() -> None:
    assert steps.run_label_for("nightly-7", "0f3c") == "nightly-7"
    assert steps.run_label_for("", "0f3c") == "0f3c"
    assert steps.run_label_for("  ", " 0f3c ") == "0f3c"


@pytest.mark.parametrize(
    ("label", "run_id", "message"),
    [
        ("", "", "no KFP run id"),
        ("", "{{$.pipeline_job_uuid}}", "placeholder that was not filled in"),
        ("a\nb", "", "one line"),
        ("x" * 201, "", "at most 200"),
    ],
)
def test_a_bad_label_is_refused(label, run_id, message) -> None:
    with pytest.raises(DeployError, match=message):
        steps.run_label_for(label, run_id)


@pytest.mark.parametrize(
    ("target", "plan", "options"),
    [
        ("local", None, None),
        ("local", {}, {}),
        ("local", PLAN, {"wait_seconds": 1.0}),
        ("kserve", PLAN, {"namespace": "ml", "runtime": "kserve-xgbserver"}),
    ],
)
def test_deployments_that_can_work_pass(tmp_path, target, plan, options) -> None:
    steps.check_deploy(ModelRegistry(str(tmp_path), "m"), target, plan, options)
    assert not (tmp_path / "models").exists(), "the check reads and writes nothing"


@pytest.mark.parametrize(
    ("target", "plan", "options", "message"),
    [
        ("kserve", {}, {}, "deploy_target 'kserve' needs a rollout plan"),
        ("nowhere", {}, {}, "deploy_target 'nowhere' is not a known target"),
        ("nowhere", PLAN, {}, "deploy_target 'nowhere' cannot run a canary rollout"),
        ("local", {}, {"namespace": "ml"}, "are read only by a canary rollout"),
        ("local", {}, [1], "deploy_options must be a dict"),
        ("local", {}, "{}", "deploy_options must be a dict"),
        ("local", "{}", {}, "rollout_plan must be a dict"),
        ("local", {"steps": [10]}, {}, "rollout_plan: steps must end at 100"),
        ("kserve", PLAN, {}, "'namespace' is required by the kserve target"),
        ("kserve", PLAN, {"namespace": "Bad_NS"}, "namespace 'Bad_NS' is invalid"),
        ("local", PLAN, {"namespace": "ml"}, "not known to the local target"),
        (
            "kserve",
            {**PLAN, "ab_test": {"sd": 1.0, "mde": 0.1, "feedback_path": "f"}},
            {"namespace": "ml"},
            "the shadow and ab_test stages run on deploy_target 'local'",
        ),
    ],
)
def test_deployments_that_cannot_work_are_refused(tmp_path, target, plan, options, message) -> None:
    with pytest.raises(DeployError, match=message):
        steps.check_deploy(ModelRegistry(str(tmp_path), "m"), target, plan, options)


def test_start_run_returns_the_label_and_records_a_refusal(tmp_path) -> None:
    store = str(tmp_path)
    assert steps.start_run(store, "m", "", "run-1") == "run-1"
    assert ModelRegistry(store, "m").audit.records() == []
    with pytest.raises(DeployError, match="needs a rollout plan"):
        steps.start_run(store, "m", "", "run-2", deploy_target="kserve")
    (record,) = ModelRegistry(store, "m").audit.records()
    assert record["event"] == "run_refused"
    assert record["payload"]["run_label"] == "run-2"
    assert record["payload"]["task"] == "start-run"
    assert "needs a rollout plan" in record["payload"]["reason"]
