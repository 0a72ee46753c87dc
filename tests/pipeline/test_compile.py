"""Compiled YAML committed beside components and pipelines is fresh, and says what we mean."""

from pathlib import Path

import pytest
import yaml

from refit.images import component_image
from refit.pipelines import compile as build

TARGETS = build.targets()


@pytest.mark.parametrize("path", sorted(TARGETS), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_yaml_is_fresh(path: Path, tmp_path: Path) -> None:
    assert path.exists(), f"{path} is not committed: run python -m refit.pipelines.compile"
    fresh = build.compile_to(TARGETS[path], tmp_path / path.name)
    assert build.normalise(fresh) == build.normalise(path.read_text()), (
        f"{path} is stale: run python -m refit.pipelines.compile"
    )


@pytest.mark.parametrize("path", sorted(build.readmes()), ids=lambda p: p.parent.name)
def test_component_readme_is_fresh(path: Path) -> None:
    assert path.read_text() == build.readmes()[path], f"{path} is stale"


def test_normalise_ignores_only_the_kfp_version() -> None:
    a = "sdkVersion: kfp-2.17.3\nimage: x\n"
    assert build.normalise(a) == build.normalise("sdkVersion: kfp-2.99.0\nimage: x\n")
    assert build.normalise(a) != build.normalise("sdkVersion: kfp-2.17.3\nimage: y\n")


def _pipeline() -> dict:
    # The pipeline spec; the second document (if any) is the Kubernetes platform spec.
    return next(yaml.safe_load_all((build.PIPELINES_DIR / "retraining.yaml").read_text()))


def test_every_task_runs_refits_image_and_installs_nothing() -> None:
    executors = _pipeline()["deploymentSpec"]["executors"]
    assert len(executors) == 17  # 15 components, record_results used three times
    for name, ex in executors.items():
        container = ex["container"]
        assert container["image"] == component_image(), name
        script = " ".join(container["command"])
        assert "pip install" not in script, f"{name} installs packages at run time"


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline (root DAG and sub-DAGs), by task name."""
    tasks = {}
    for dag in [spec["root"]["dag"], *(c.get("dag", {}) for c in spec["components"].values())]:
        for name, task in dag.get("tasks", {}).items():
            if "componentRef" in task and not task["componentRef"]["name"].startswith(
                "comp-condition"
            ):
                tasks[name] = task
    return tasks


#: Tasks that are functions of their inputs alone: KFP may serve them from its cache.
PURE = {"validate-data", "detect-drift", "train-model", "evaluate-model"}


def test_only_pure_tasks_are_served_from_cache() -> None:
    # The snapshot reads the latest data, the resolver the registry, the rest keep state: KFP's
    # cache keys on parameters and input artifacts, not on that state, so theirs is off.
    tasks = _tasks(_pipeline())
    assert set(tasks) >= PURE | {"snapshot-data", "resolve-champion", "train-model"}
    for name, task in tasks.items():
        cached = task.get("cachingOptions", {}).get("enableCache") is True
        assert cached == (name in PURE), name


def test_the_resolvers_artifacts_feed_validation_drift_decision_and_evaluation() -> None:
    tasks = _tasks(_pipeline())

    def from_resolver(task: str) -> dict[str, str]:
        # in the root DAG a task output; inside a condition's sub-DAG, the channel passed down
        found = {}
        for name, spec in tasks[task]["inputs"].get("artifacts", {}).items():
            output = spec.get("taskOutputArtifact", {})
            channel = spec.get("componentInputArtifact", "")
            if output.get("producerTask") == "resolve-champion":
                found[name] = output["outputArtifactKey"]
            elif channel.startswith("pipelinechannel--resolve-champion-"):
                found[name] = channel.removeprefix("pipelinechannel--resolve-champion-")
        return found

    assert from_resolver("validate-data") == {"reference": "reference", "schema": "schema"}
    assert from_resolver("detect-drift") == {
        "reference": "reference",
        "reference_profile": "reference_profile",
        "baseline_model": "champion",
    }
    assert from_resolver("decide-retrain") == {"champion": "champion"}
    assert from_resolver("evaluate-model") == {"baseline_model": "champion"}
    # warm start continues the champion; the earlier windows come from a stateful task
    assert from_resolver("train-model") == {"baseline_model": "champion"}
    earlier = tasks["train-model"]["inputs"]["artifacts"]["earlier"]["taskOutputArtifact"]
    assert earlier == {"producerTask": "select-training-windows", "outputArtifactKey": "earlier"}
    assert not tasks["select-training-windows"].get("cachingOptions", {}).get("enableCache")
    # no pure task touches the store
    for name in PURE:
        assert "store_uri" not in tasks[name]["inputs"].get("parameters", {}), name


def test_training_sits_behind_validation_decision_and_gate() -> None:
    spec = _pipeline()
    comps = spec["components"]

    def parent_conditions(task_name: str) -> list[str]:
        """Trigger conditions on the path from the root DAG to a task."""
        found: list[str] = []

        def search(dag: dict, trail: list[str]) -> bool:
            for name, task in dag.get("tasks", {}).items():
                cond = task.get("triggerPolicy", {}).get("condition")
                here = trail + ([cond] if cond else [])
                if name == task_name:
                    found.extend(here)
                    return True
                ref = task.get("componentRef", {}).get("name", "")
                if ref in comps and "dag" in comps[ref] and search(comps[ref]["dag"], here):
                    return True
            return False

        assert search(spec["root"]["dag"], []), task_name
        return found

    train = parent_conditions("train-model")
    # conditions read the components' bare "Output": kfp.local cannot resolve a condition on a
    # named output (it parses "pipelinechannel--task-field" as a parent input)
    assert any("validate-data-Output" in c and "== true" in c for c in train)
    assert any("decide-retrain-Output" in c for c in train)
    promote = parent_conditions("promote-model")
    assert any("evaluate-model-Output" in c for c in promote)
    assert any("start-run-Output'] == false" in c for c in promote), promote
    assert len(promote) == 4
    canary = parent_conditions("canary-rollout")
    assert any("evaluate-model-Output" in c for c in canary)
    assert any("start-run-Output'] == false" in c and c.startswith("!") for c in canary), canary
    assert len(canary) == 4


def test_tfdv_engine_runs_validation_and_drift_in_the_tfdv_image(tmp_path) -> None:
    from typer.testing import CliRunner

    from refit.cli import app
    from refit.images import tfdv_image

    out = tmp_path / "tfdv.yaml"
    result = CliRunner().invoke(app, ["compile", "--engine", "tfdv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    spec = next(yaml.safe_load_all(out.read_text()))
    images = {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}
    assert {n for n, i in images.items() if i == tfdv_image()} == {
        "exec-validate-data",
        "exec-detect-drift",
    }
    assert all(
        i == component_image()
        for n, i in images.items()
        if "validate" not in n and "drift" not in n
    )
    params = spec["root"]["dag"]["tasks"]["exit-handler-1"]
    assert params  # the body sits in the release-record exit handler
    bad = CliRunner().invoke(app, ["compile", "--engine", "spark", "--output", str(out)])
    assert bad.exit_code != 0 and "engine 'spark' is not one of" in bad.output


def test_the_tokenization_key_comes_from_an_optional_secret_never_a_parameter() -> None:
    docs = list(yaml.safe_load_all((build.PIPELINES_DIR / "retraining.yaml").read_text()))
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (secret,) = executors["exec-anonymize-data"]["secretAsEnv"]
    assert secret["secretName"] == "refit-token-key" and secret["optional"] is True
    assert secret["keyToEnv"] == [{"envVar": "REFIT_TOKEN_KEY", "secretKey": "key"}]
    params = docs[0]["root"]["inputDefinitions"]["parameters"]
    assert not [p for p in params if "key" in p.lower() and p != "model_name"]
