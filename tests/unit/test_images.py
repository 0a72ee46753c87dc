"""Images: Dockerfiles lint clean, install the lock, and no image is named outside refit.images."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refit.images import DEFAULT_REPOSITORY

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "components" / "images").glob("*/Dockerfile"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_runs_as_non_root_from_the_lock(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "--require-hashes -r /tmp/requirements.lock" in text
    assert "apt-get upgrade" not in text and "apt upgrade" not in text


def test_requirements_lock_matches_uv_lock(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (./dev installs it)"
    out = tmp_path / "requirements.lock"
    subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-emit-project",
            "--no-dev",
            "--no-header",
            "--format",
            "requirements-txt",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = ROOT / "components" / "images" / "requirements.lock"
    assert committed.read_text() == out.read_text(), "stale: run `make requirements`"


IMAGE_LITERAL = re.compile(
    r"""["'](?:[a-z0-9.-]+\.(?:io|com|dev)/[a-z0-9._/-]+|python|debian|ubuntu)(?::[\w.-]+)["']"""
)


def test_no_image_is_hard_coded_outside_refit_images() -> None:
    allowed = {ROOT / "src" / "refit" / "images.py"}
    offenders = []
    for base in ("src", "components", "pipelines"):
        for path in (ROOT / base).rglob("*.py"):
            if path not in allowed and IMAGE_LITERAL.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    for path in (ROOT / "manifests").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for image in _images(doc):
                if image != "refit":
                    offenders.append(f"{path.relative_to(ROOT)}: image {image}")
    assert not offenders, f"image references outside refit.images: {offenders}"
    # the kustomize image transformer maps the placeholder to refit.images' repository
    kustomization = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["newName"] == DEFAULT_REPOSITORY


def test_image_literal_pattern_catches_what_it_should() -> None:
    assert IMAGE_LITERAL.search('base_image="python:3.11"')
    assert IMAGE_LITERAL.search("image='ghcr.io/acme/refit:1.0'")
    assert not IMAGE_LITERAL.search('uri = "gs://bucket/key"')


def _images(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["image"]] if isinstance(node.get("image"), str) else []
        for value in node.values():
            found += _images(value)
        return found
    if isinstance(node, list):
        return [i for item in node for i in _images(item)]
    return []
