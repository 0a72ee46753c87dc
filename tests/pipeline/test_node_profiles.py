"""Node-pool profiles compiled into the retraining pipeline's platform spec (golden-style)."""

import json
from pathlib import Path

import pytest
import yaml
from kfp import compiler
from typer.testing import CliRunner

from refit.cli import app
from refit.errors import SchemaError
from refit.pipelines import compile as build
from refit.pipelines.profiles import BUILTIN_PROFILES, get_profile, load_profiles
from refit.pipelines.retraining import build_retraining_pipeline

TRAIN_EXECUTOR = "exec-train-model"


def compiled(profile_name: str, tmp_path: Path, profiles_file: Path | None = None) -> list[dict]:
    out = tmp_path / f"{profile_name}.yaml"
    pipeline = build_retraining_pipeline(get_profile(profile_name, profiles_file))
    compiler.Compiler().compile(pipeline, str(out))
    return list(yaml.safe_load_all(out.read_text()))


def train_task(spec: dict) -> dict:
    for comp in spec["components"].values():
        task = comp.get("dag", {}).get("tasks", {}).get("train-model")
        if task:
            return task
    raise AssertionError("no train-model task")


def train_resources(spec: dict) -> dict:
    return spec["deploymentSpec"]["executors"][TRAIN_EXECUTOR]["container"]["resources"]


def train_constants(spec: dict) -> dict:
    params = train_task(spec)["inputs"]["parameters"]
    return {k: v["runtimeValue"]["constant"] for k, v in params.items() if "runtimeValue" in v}


def test_gpu_spot_profile_platform_spec(tmp_path):
    docs = compiled("gpu-spot", tmp_path)
    assert len(docs) == 2
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # only the training task moves to the GPU pool (the privacy step only reads its Secret)
    assert set(platform) == {TRAIN_EXECUTOR, "exec-anonymize-data"}
    assert set(platform["exec-anonymize-data"]) == {"secretAsEnv"}
    assert platform[TRAIN_EXECUTOR] == {
        "nodeSelector": {
            "labels": {
                "cloud.google.com/gke-accelerator": "nvidia-l4",
                "cloud.google.com/gke-spot": "true",
            }
        },
        "tolerations": [
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
            {
                "effect": "NoSchedule",
                "key": "cloud.google.com/gke-spot",
                "operator": "Equal",
                "value": "true",
            },
        ],
    }
    resources = train_resources(docs[0])
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert resources["resourceCpuRequest"] == "4"
    assert resources["resourceMemoryRequest"] == "16G"
    assert train_task(docs[0])["retryPolicy"] == {
        "backoffDuration": "60s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "1800s",
        "maxRetryCount": 6,
    }
    constants = train_constants(docs[0])
    assert constants["device"] == "cuda"
    assert constants["node_profile"] == "gpu-spot"
    assert constants["price_per_hour"] == BUILTIN_PROFILES["gpu-spot"].price_per_hour
    # every other task keeps the default pool and no accelerator
    for name, ex in docs[0]["deploymentSpec"]["executors"].items():
        if name != TRAIN_EXECUTOR:
            assert "accelerator" not in ex["container"].get("resources", {}), name


def test_gpu_profile_has_no_spot_selector(tmp_path):
    docs = compiled("gpu", tmp_path)
    executor = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][TRAIN_EXECUTOR]
    assert executor["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert [t["key"] for t in executor["tolerations"]] == ["nvidia.com/gpu"]
    assert train_task(docs[0])["retryPolicy"]["maxRetryCount"] == 2


def test_committed_pipeline_is_the_cpu_profile():
    docs = list(yaml.safe_load_all((build.PIPELINES_DIR / "retraining.yaml").read_text()))
    # the platform spec holds only the privacy step's Secret: no selectors or tolerations
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {name: set(spec) for name, spec in executors.items()} == {
        "exec-anonymize-data": {"secretAsEnv"}
    }
    resources = train_resources(docs[0])
    assert "accelerator" not in resources
    assert resources["resourceCpuRequest"] == "2"
    assert "retryPolicy" not in train_task(docs[0])
    assert train_constants(docs[0])["device"] == "cpu"


def test_profiles_file_extends_a_builtin(tmp_path):
    config = tmp_path / "profiles.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "a100-spot": {
                        "extends": "gpu-spot",
                        "accelerator_count": 2,
                        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
                        "retries": 3,
                        "price_per_hour": 2.5,
                    }
                }
            }
        )
    )
    docs = compiled("a100-spot", tmp_path, config)
    executor = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][TRAIN_EXECUTOR]
    assert executor["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-a100",
        "cloud.google.com/gke-spot": "true",
    }
    assert train_resources(docs[0])["accelerator"]["resourceCount"] == "2"
    assert train_task(docs[0])["retryPolicy"]["maxRetryCount"] == 3
    assert train_constants(docs[0])["price_per_hour"] == 2.5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"x": {"extends": "tpu"}}, r"profiles\.json.*'x' extends unknown profile 'tpu'"),
        ({"x": {"gpus": 1}}, r"'x' has unknown field\(s\) \['gpus'\]"),
        ({"x": {"device": "cuda"}}, r"'x'.*cuda needs an accelerator_type"),
        ({"x": {"tolerations": [{"key": "k", "operator": "Maybe"}]}}, r"operator 'Maybe'"),
        ({"x": {"retries": -1}}, r"'retries'"),
    ],
)
def test_bad_profiles_file_names_file_profile_and_field(tmp_path, body, message):
    config = tmp_path / "profiles.json"
    config.write_text(json.dumps(body))
    with pytest.raises(SchemaError, match=message):
        load_profiles(config)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(SchemaError, match=r"'tpu' is unknown.*\['cpu', 'gpu', 'gpu-spot'\]"):
        get_profile("tpu")


def test_cli_compile_with_node_profile(tmp_path):
    out = tmp_path / "gpu.yaml"
    result = CliRunner().invoke(
        app, ["compile", "--node-profile", "gpu-spot", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert train_resources(docs[0])["accelerator"]["resourceType"] == "nvidia.com/gpu"
    bad = CliRunner().invoke(app, ["compile", "--node-profile", "tpu", "--output", str(out)])
    assert bad.exit_code != 0 and "tpu" in bad.output
