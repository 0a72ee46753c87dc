"""The README's cluster walk-through says what the code and manifests do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from refit.cli import app
from refit.pipelines import compile as build

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _rbac_paragraph() -> str:
    text = _section("## The trigger service, alerts and canaries on a cluster")
    start = text.index("**RBAC**")
    return " ".join(text[start : text.index("\n4. ", start)].split())


def test_the_readme_rbac_text_matches_the_manifests() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    text = _rbac_paragraph()
    (rule,) = role["rules"]
    said_verbs = set(re.findall(r"`(\w+)`", text.split(" on ")[0]))
    assert said_verbs == set(rule["verbs"]), (said_verbs, rule["verbs"])
    for resource in rule["resources"]:
        assert f"`{resource}`" in text
    for group in rule["apiGroups"]:
        assert f"`{group}`" in text
    for subject in binding["subjects"]:
        assert f"`{subject['name']}`" in text and f"`{subject['namespace']}`" in text, subject
    assert "nothing cluster-wide" in text
    assert not [d for d in docs if d["kind"].startswith("Cluster")]


def test_every_pipeline_parameter_is_in_the_readme_table() -> None:
    table = README[README.index(build.PARAMS_START) : README.index(build.PARAMS_END)]
    inputs = build.retraining_pipeline.component_spec.inputs
    rows = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert rows == list(inputs)
    assert '| `run_label` | String | `""` |' in table


def test_the_compile_options_the_walkthrough_uses_exist() -> None:
    text = _section("## Running on Kubeflow Pipelines")
    used = {
        option
        for span in re.findall(r"`(refit compile[^`]*)`", text)
        for option in re.findall(r"--[a-z-]+", span)
    }
    assert {"--image-repository", "--store-pvc", "--store-mount", "--gcs-key-secret"} <= used
    help_text = " ".join(CliRunner().invoke(app, ["compile", "--help"]).output.split())
    for option in used:
        assert option in help_text, option
