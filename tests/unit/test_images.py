"""Images: Dockerfiles lint clean, install the lock, and no image is named outside refit.images."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refit import __version__
from refit.images import (
    DEFAULT_REPOSITORY,
    component_image,
    engine_image,
    tfdv_image,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "components" / "images").glob("*/Dockerfile"))
TFDV_DIR = ROOT / "components" / "images" / "refit-tfdv"


def test_both_images_have_a_dockerfile() -> None:
    assert [p.parent.name for p in DOCKERFILES] == ["refit", "refit-tfdv"]


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
    # the placeholder's repository is each shipped overlay's image_repository setting, which
    # names refit.images' default (tests/unit/test_manifests.py renders it into the image)
    for overlay in sorted((ROOT / "manifests" / "overlays").iterdir()):
        text = (overlay / "kustomization.yaml").read_text()
        assert f"image_repository={DEFAULT_REPOSITORY}" in text, overlay.name


def test_image_tags_are_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFIT_IMAGE_REPOSITORY", raising=False)
    assert component_image() == f"{DEFAULT_REPOSITORY}:{__version__}"
    assert tfdv_image() == f"{DEFAULT_REPOSITORY}-tfdv:{__version__}"
    assert engine_image("tfdv") == tfdv_image()
    assert engine_image("native") == engine_image("auto") == component_image()
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        engine_image("spark")
    monkeypatch.setenv("REFIT_IMAGE_REPOSITORY", "registry.example.com/ml/refit")
    assert tfdv_image() == f"registry.example.com/ml/refit-tfdv:{__version__}"


def _script_versions() -> dict[str, str]:
    script = (ROOT / "scripts" / "tfdv-env.sh").read_text()
    found = dict(re.findall(r'^(TFDV_VERSION|KFP_VERSION)="([^"]+)"', script, re.M))
    assert set(found) == {"TFDV_VERSION", "KFP_VERSION"}, "scripts/tfdv-env.sh changed shape"
    return {"tensorflow-data-validation": found["TFDV_VERSION"], "kfp": found["KFP_VERSION"]}


def test_tfdv_lock_is_what_tfdv_env_installs_fully_pinned_with_hashes() -> None:
    expected = _script_versions()
    wanted = [
        line.strip()
        for line in (TFDV_DIR / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(wanted) == sorted(f"{k}=={v}" for k, v in expected.items())
    lock = (TFDV_DIR / "requirements.lock").read_text()
    # one entry per requirement: "name==version \" followed by its --hash lines
    entries = re.split(r"\n(?=[a-z0-9])", lock.strip())
    pins = {}
    for entry in entries:
        head = entry.splitlines()[0]
        match = re.fullmatch(r"([a-z0-9][a-z0-9._-]*)==([^\s;]+) \\", head)
        assert match, f"not an exact pin with hashes: {head!r}"
        assert "--hash=sha256:" in entry, f"{head} has no hash"
        pins[match.group(1)] = match.group(2)
    for name, version in expected.items():
        assert pins.get(name) == version, f"{name}: lock {pins.get(name)}, tfdv-env.sh {version}"
    # TFDV 1.21 and kfp 2.17 share protobuf 6; the image's refit lock is separate
    assert pins["protobuf"].startswith("6.")
    assert "tensorflow" in pins and "apache-beam" in pins


def test_tfdv_image_builds_tfdv_apart_on_a_glibc_2_39_base() -> None:
    text = (TFDV_DIR / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    # Debian 13 trixie (glibc 2.41): TFDV 1.21 ships only manylinux_2_39 wheels
    assert base and re.search(r"python:3\.11[\w.-]*-trixie$", base.group(1))
    assert "--require-hashes \\\n        -r /tmp/tfdv-requirements.lock" in text
    assert "COPY components/images/refit-tfdv/requirements.lock /tmp/tfdv-requirements.lock" in text
    assert "REFIT_TFDV_PYTHON=/opt/tfdv/bin/python" in text
    assert "COPY --from=tfdv /opt/tfdv /opt/tfdv" in text
    # the refit part is the refit image's: same lock, same wheel
    assert "COPY components/images/requirements.lock /tmp/requirements.lock" in text


def test_make_images_builds_and_tags_every_image() -> None:
    make = shutil.which("make")
    assert make is not None, "make is not installed (./dev test installs it)"

    def dry_run(engine: str) -> str:
        return subprocess.run(
            [make, "-n", "images", f"CONTAINER_ENGINE={engine}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    builds = re.findall(
        r"^docker build -f (\S+) --build-arg REFIT_VERSION=(\S+) --build-arg VCS_REF=(\S+) "
        r"-t (\S+) \.$",
        dry_run("docker"),
        re.M,
    )
    assert [(f, t) for f, _, _, t in builds] == [
        ("components/images/refit/Dockerfile", component_image()),
        ("components/images/refit-tfdv/Dockerfile", tfdv_image()),
    ]
    assert {v for _, v, _, _ in builds} == {__version__}
    assert {f"components/images/{p.parent.name}/Dockerfile" for p in DOCKERFILES} == {
        f for f, _, _, _ in builds
    }
    # without a Docker engine, podman builds both (scripts/images.sh)
    assert dry_run("podman").strip().splitlines()[-1] == "scripts/images.sh build"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_runs_kfps_command_as_a_group_0_user_with_oci_labels(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    # KFP sets the command (`sh -c ...` for a lightweight component): an ENTRYPOINT would make
    # it `ENTRYPOINT sh -c ...`
    assert not re.search(r"^ENTRYPOINT", text, re.M)
    # user 10001 in group 0, home group-writable: any user id in group 0 can write it
    assert re.search(r"^USER 10001:0$", text, re.M)
    assert "useradd --uid 10001 --gid 0" in text and "chmod g+rwx /home/refit" in text
    labels = dict(re.findall(r"org\.opencontainers\.image\.(\w+)=\"([^\"]*)\"", text))
    assert labels["source"].startswith("https://") and labels["licenses"] == "Apache-2.0"
    assert labels["version"] == "${REFIT_VERSION}" and labels["revision"] == "${VCS_REF}"
    # the labels come last, so a new revision rebuilds no layer with software in it
    assert text.index("LABEL") > text.index("COPY dist/")


def test_tfdv_venv_pip_is_pinned_with_a_hash_before_the_lock() -> None:
    text = (TFDV_DIR / "Dockerfile").read_text()
    lock = (TFDV_DIR / "pip.lock").read_text()
    pin = re.search(r"^pip==(\d+)\.(\d+)(?:\.\d+)? \\\n\s+--hash=sha256:[0-9a-f]{64}", lock, re.M)
    # pip < 23.3 refuses extras (apache-beam[gcp]) in --require-hashes mode
    assert pin and (int(pin.group(1)), int(pin.group(2))) >= (23, 3)
    assert text.index("-r /tmp/tfdv-pip.lock") < text.index("-r /tmp/tfdv-requirements.lock")


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
