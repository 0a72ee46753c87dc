"""Compiling for a cluster: the image repository and the store volume are chosen when compiling
(``refit compile``, ``python -m refit.pipelines.compile``), never by editing YAML, and the
committed YAML stays on refit's published images."""

# No ``from __future__ import annotations``: this module defines KFP components.

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, components, dsl, kubernetes
from typer.testing import CliRunner

from refit import __version__
from refit.cli import app
from refit.images import DEFAULT_REPOSITORY
from refit.pipelines import compile as build
from refit.pipelines.profiles import BUILTIN_PROFILES
from refit.pipelines.retraining import build_retraining_pipeline

REPO = "registry.example.com/ml/refit"


def _docs(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def _said(output: str) -> str:
    # the CLI's error text without rich's box and line wrapping
    return " ".join(output.replace("│", " ").split())


def _images(spec: dict) -> dict[str, str]:
    return {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}


def test_refit_compile_puts_every_task_on_the_given_repository(tmp_path) -> None:
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(
        app,
        ["compile", "--engine", "tfdv", "--image-repository", REPO, "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "ghcr.io" not in out.read_text()
    images = _images(_docs(out)[0])
    assert {n for n, i in images.items() if i == f"{REPO}-tfdv:{__version__}"} == {
        "exec-validate-data",
        "exec-detect-drift",
    }
    assert {i for n, i in images.items() if n not in ("exec-validate-data", "exec-detect-drift")}
    assert all(
        i == f"{REPO}:{__version__}"
        for n, i in images.items()
        if n not in ("exec-validate-data", "exec-detect-drift")
    )


def test_tasks_compiled_for_a_repository_name_it_at_run_time(tmp_path) -> None:
    # the training task names refit's image for a distributed training's TrainJob at run time
    out = tmp_path / "p.yaml"
    build.compile_to(build_retraining_pipeline(), out, image_repository=REPO)
    for name, executor in _docs(out)[0]["deploymentSpec"]["executors"].items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env["REFIT_IMAGE_REPOSITORY"] == REPO, name
    default = build.compile_to(build_retraining_pipeline(), tmp_path / "default.yaml")
    assert "REFIT_IMAGE_REPOSITORY" not in default


def test_the_environment_setting_is_read_when_compiling_not_when_importing(
    tmp_path, monkeypatch
) -> None:
    # refit (and its components) were imported long before this: notebook 02's order
    monkeypatch.setenv("REFIT_IMAGE_REPOSITORY", "localhost:5000/refit")
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["compile", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert set(_images(_docs(out)[0]).values()) == {f"localhost:5000/refit:{__version__}"}
    # ... and never leaks into the committed YAML
    committed = build.PIPELINES_DIR / "retraining.yaml"
    fresh = build.compile_to(build.PIPELINES["retraining"], tmp_path / "committed.yaml")
    assert build.normalise(fresh) == build.normalise(committed.read_text())
    assert set(_images(_docs(committed)[0]).values()) == {f"{DEFAULT_REPOSITORY}:{__version__}"}


@pytest.mark.parametrize(
    "repo",
    ["ghcr.io/acme/refit:1.0", "ghcr.io/acme/refit@sha256:" + "a" * 64, "ghcr.io/Acme/refit", " "],
)
def test_a_repository_with_a_tag_or_bad_name_is_refused(tmp_path, repo) -> None:
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["compile", "--image-repository", repo, "--output", str(out)])
    assert result.exit_code != 0
    assert "image repository" in _said(result.output)
    assert not out.exists()


def test_component_yamls_are_written_for_another_repository(tmp_path) -> None:
    before = {p: p.read_text() for p in build.targets()}
    assert build.main(["--image-repository", REPO, "--output-dir", str(tmp_path)]) == 0
    assert {p: p.read_text() for p in build.targets()} == before, "committed YAML untouched"
    written = sorted(tmp_path.rglob("*.yaml"))
    assert len(written) == len(build.targets())
    for path in written:
        assert "ghcr.io" not in path.read_text(), path
    snapshot = components.load_component_from_file(
        str(tmp_path / "components" / "snapshot_data" / "component.yaml")
    )
    assert snapshot.component_spec.implementation.container.image == f"{REPO}:{__version__}"
    assert (tmp_path / "pipelines" / "retraining.yaml").exists()
    with pytest.raises(SystemExit):
        build.main(["--image-repository", REPO])


def test_an_image_that_is_not_refits_is_not_rewritten_silently(tmp_path) -> None:
    @dsl.component(base_image="docker.io/library/busybox:1")
    def other() -> None:
        pass

    with pytest.raises(ValueError, match="not refit's image"):
        build.compile_to(other, tmp_path / "other.yaml", image_repository=REPO)


def _kubernetes(doc: list[dict]) -> dict:
    return doc[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _reference(tmp_path: Path, configure: Callable[[Any], object]) -> list[dict]:
    """The documents KFP compiles for a one-task pipeline whose task ``configure`` sets up with
    kfp-kubernetes (what it writes for one task is the reference)."""

    @dsl.component(base_image=f"{DEFAULT_REPOSITORY}:{__version__}")
    def step() -> None:
        pass

    @dsl.pipeline
    def reference() -> None:
        configure(step())

    compiler.Compiler().compile(reference, str(tmp_path / "ref.yaml"))
    return _docs(tmp_path / "ref.yaml")


def test_the_store_volume_is_mounted_into_every_task_as_mount_pvc_does(tmp_path) -> None:
    ref = _reference(
        tmp_path,
        lambda task: kubernetes.mount_pvc(task, pvc_name="refit-store", mount_path="/mnt/refit"),
    )
    (expected,) = _kubernetes(ref).values()

    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(
        app,
        [
            "compile",
            "--node-profile",
            "gpu-spot",
            "--store-pvc",
            "refit-store",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    docs = _docs(out)
    executors = _kubernetes(docs)
    assert set(executors) == set(docs[0]["deploymentSpec"]["executors"])
    for name, config in executors.items():
        assert config["pvcMount"] == expected["pvcMount"], name
    # the tasks' own settings are kept: the token Secret, the GPU node pool
    plain = tmp_path / "plain.yaml"
    build.compile_to(build_retraining_pipeline(BUILTIN_PROFILES["gpu-spot"]), plain)
    before = _kubernetes(_docs(plain))
    assert {"exec-anonymize-data", "exec-train-model"} <= set(before)
    for name, config in executors.items():
        assert {k: v for k, v in config.items() if k != "pvcMount"} == before.get(name, {}), name
    assert executors["exec-train-model"]["tolerations"]
    store_uri = docs[0]["root"]["inputDefinitions"]["parameters"]["store_uri"]
    assert store_uri["defaultValue"] == "/mnt/refit"


@pytest.mark.parametrize(
    ("pvc", "mount", "message"),
    [
        ("Refit_Store", "/mnt/refit", "not a valid Kubernetes name"),
        ("refit-store", "mnt/refit", "absolute path"),
        ("refit-store", "/", "absolute path"),
        ("refit-store", "/mnt/../etc", "absolute path"),
    ],
)
def test_a_bad_store_volume_is_refused(tmp_path, pvc, mount, message) -> None:
    with pytest.raises(ValueError, match=message):
        build.StoreVolume(pvc, mount)
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(
        app, ["compile", "--store-pvc", pvc, "--store-mount", mount, "--output", str(out)]
    )
    assert result.exit_code != 0 and not out.exists()


def test_without_a_store_volume_nothing_is_mounted(tmp_path) -> None:
    out = tmp_path / "p.yaml"
    build.compile_to(build_retraining_pipeline(), out, image_repository=REPO)
    assert "pvcMount" not in out.read_text()


def test_a_gcs_key_secret_reaches_every_task_as_use_secret_as_volume_does(tmp_path) -> None:
    def configure(task) -> None:
        kubernetes.use_secret_as_volume(task, secret_name="gcs-key", mount_path=build.GCS_KEY_DIR)
        task.set_env_variable("GOOGLE_APPLICATION_CREDENTIALS", f"{build.GCS_KEY_DIR}/key.json")

    ref = _reference(tmp_path, configure)
    (expected,) = _kubernetes(ref).values()
    (container,) = (e["container"] for e in ref[0]["deploymentSpec"]["executors"].values())

    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(
        app, ["compile", "--gcs-key-secret", "gcs-key", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    docs = _docs(out)
    executors = _kubernetes(docs)
    assert set(executors) == set(docs[0]["deploymentSpec"]["executors"])
    for name, config in executors.items():
        assert config["secretAsVolume"] == expected["secretAsVolume"], name
        env = docs[0]["deploymentSpec"]["executors"][name]["container"]["env"]
        assert env == container["env"], name
    bad = CliRunner().invoke(app, ["compile", "--gcs-key-secret", "Bad_Name", "--output", str(out)])
    assert bad.exit_code != 0 and "not a valid Kubernetes name" in _said(bad.output)


def test_the_audit_key_secret_and_anchor_reach_every_task(tmp_path) -> None:
    def configure(task) -> None:
        kubernetes.use_secret_as_volume(
            task, secret_name="audit-key", mount_path=build.AUDIT_KEY_DIR
        )
        task.set_env_variable("REFIT_AUDIT_KEY_FILE", f"{build.AUDIT_KEY_DIR}/audit.key")
        task.set_env_variable("REFIT_AUDIT_ANCHOR", "gs://anchor/refit")

    ref = _reference(tmp_path, configure)
    (expected,) = _kubernetes(ref).values()
    (container,) = (e["container"] for e in ref[0]["deploymentSpec"]["executors"].values())
    out = tmp_path / "p.yaml"
    args = ["compile", "--audit-key-secret", "audit-key", "--audit-anchor", "gs://anchor/refit"]
    result = CliRunner().invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    docs = _docs(out)
    for name, config in _kubernetes(docs).items():
        assert config["secretAsVolume"] == expected["secretAsVolume"], name
        env = docs[0]["deploymentSpec"]["executors"][name]["container"]["env"]
        assert env == container["env"], name
    bad = CliRunner().invoke(
        app, ["compile", "--audit-key-secret", "Bad_Name", "--output", str(out)]
    )
    assert bad.exit_code != 0 and "not a valid Kubernetes name" in _said(bad.output)


def test_an_explicit_repository_wins_over_a_bad_environment_setting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REFIT_IMAGE_REPOSITORY", "Not A Repository")
    out = tmp_path / "p.yaml"
    build.compile_to(build_retraining_pipeline(), out, image_repository=REPO)
    assert set(_images(_docs(out)[0]).values()) == {f"{REPO}:{__version__}"}
    bad = CliRunner().invoke(app, ["compile", "--output", str(tmp_path / "q.yaml")])
    assert bad.exit_code != 0 and "is not a valid image name" in _said(bad.output)
