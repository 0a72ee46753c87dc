"""The retraining pipeline with every task in its image: kfp.local's DockerRunner on podman.

The demo's first five windows (first model trained and promoted, two quiet windows, a drift
retrain, a window blocked by validation) run once with every task in the refit image, once with
validation and drift on the TFDV engine in the refit-tfdv image, and once as subprocesses: the
same decisions. A task that fails inside its container fails the run; secrets reach the tasks;
a missing engine or image is named.
"""

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _podman import ROOT, SCRIPT, podman
from kfp import dsl
from kfp.local import docker_task_handler, status
from rich.console import Console

from refit.demo.data import DemoScenario
from refit.images import component_image, tfdv_image
from refit.pipelines.demo import run_demo
from refit.pipelines.docker_runner import ContainerRunError, docker_runner
from refit.pipelines.local import init_local

pytestmark = pytest.mark.slow

#: The demo's windows 0-4 (tests/e2e/test_demo.py holds the demo to them): 0 first model,
#: 1-2 quiet, 3 shifted (drift retrain), 4 a renamed column (blocked).
SCENARIO = DemoScenario(windows=5, rows=800)


def _started_images(since: str) -> list[str]:
    out = podman(
        "events",
        "--stream=false",
        "--since",
        since,
        "--filter",
        "event=start",
        "--format",
        "{{.Image}}",
    )
    return [line.strip() for line in out.splitlines() if line.strip()]


def _summary(rows: list, drift: bool = True) -> list[tuple]:
    return [
        (r.decision, r.promoted_version, r.live_version, r.rows, r.anomalies)
        + ((round(r.drift_share or 0.0, 6),) if drift else ())
        for r in rows
    ]


@pytest.fixture(scope="module")
def subprocess_rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("subprocess") / "demo"
    return run_demo(out, SCENARIO, console=Console(file=io.StringIO())).rows


def _check_loop(rows: list) -> None:
    assert [r.decision for r in rows] == ["retrain", "skip", "skip", "retrain", "blocked"]
    assert [r.live_version for r in rows] == [1, 1, 1, 2, 2]
    assert rows[0].promoted_version == 1 and rows[3].promoted_version == 2
    assert any(reason.startswith("drift share") for reason in rows[3].reasons)
    assert any("creditScore" in reason for reason in rows[4].reasons)


@pytest.mark.parametrize("engine", ["native", "tfdv"])
def test_pipeline_runs_every_task_in_its_image(
    docker_host: str, subprocess_rows: list, tmp_path: Path, engine: str
) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    out = tmp_path / "demo"
    result = run_demo(
        out, SCENARIO, console=Console(file=io.StringIO()), runner="docker", engine=engine
    )
    _check_loop(result.rows)
    # the same decisions and versions as the subprocess runner on the same windows; the same
    # drift shares on the same engine (TFDV's comparators score drift their own way)
    native = engine == "native"
    assert _summary(result.rows, drift=native) == _summary(subprocess_rows, drift=native)

    started = _started_images(since)
    refit_image, tfdv = f"{component_image()}", f"{tfdv_image()}"
    assert set(started) <= {refit_image, tfdv}, started
    if engine == "native":
        assert tfdv not in started
    else:
        # validation in every window (and drift where it passed) on TFDV, in its image
        assert started.count(tfdv) >= SCENARIO.windows
    assert started.count(refit_image) >= 5 * SCENARIO.windows  # snapshot ... release record
    # the tasks ran as the image's non-root user, and what they wrote is readable by others
    files = [p for p in (out / "store").rglob("*") if p.is_file() and ".lock" not in p.name]
    assert files
    assert {p.stat().st_uid for p in files} == {10001}
    assert all(p.stat().st_mode & 0o004 for p in files), "a store file is not world-readable"


@dsl.component(base_image=component_image(), install_kfp_package=False)
def fails_inside() -> str:
    raise ValueError("this task fails inside its container")


@dsl.component(base_image=component_image(), install_kfp_package=False)
def reads_secret(expected: str) -> str:
    import os

    value = os.environ.get("REFIT_TOKEN_KEY")
    if value != expected:
        raise ValueError(f"REFIT_TOKEN_KEY not forwarded: {value!r}")
    return "ok"


@dsl.pipeline(name="fails-inside")
def failing_pipeline() -> None:
    fails_inside()


@dsl.pipeline(name="reads-secret")
def secret_pipeline(expected: str) -> None:
    reads_secret(expected=expected)


def test_a_task_failing_in_its_container_fails_the_run(
    docker_host: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    init_local(tmp_path / "root", runner="docker", images=[component_image()])
    with pytest.raises(RuntimeError, match="FAILURE"):
        failing_pipeline()
    assert "this task fails inside its container" in capfd.readouterr().out
    # the task handler reports the container's real exit code, also for a container that exits
    # at once (kfp's own handler lost that race on podman and reported SUCCESS)
    for script, expected in [("exit 3", status.Status.FAILURE), ("true", status.Status.SUCCESS)]:
        handler = docker_task_handler.DockerTaskHandler(
            image=component_image(),
            full_command=["sh", "-c", script],
            pipeline_root=str(tmp_path / "root"),
            runner=docker_runner(),
        )
        assert handler.run() == expected, script


def test_secrets_are_forwarded_to_the_tasks(
    docker_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFIT_TOKEN_KEY", "k" * 32)
    init_local(tmp_path / "root", runner="docker", images=[component_image()])
    secret_pipeline(expected="k" * 32)  # raises if the task did not see the key


def test_an_absent_image_is_named_before_anything_runs(docker_host: str, tmp_path: Path) -> None:
    with pytest.raises(
        ContainerRunError, match=r"step 'find image': image localhost/refit-absent:0"
    ):
        init_local(tmp_path / "root", runner="docker", images=["localhost/refit-absent:0"])


def test_no_engine_is_a_clear_error_in_the_demo(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("refit")),
            "demo",
            "--runner",
            "docker",
            "--output",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1
    assert "step 'connect'" in proc.stderr and "no-engine.sock" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failed_image_build_names_the_step_and_the_image(
    docker_host: str, tmp_path: Path
) -> None:
    env = {**os.environ, "REFIT_HOST_CA": str(tmp_path / "missing-ca.crt")}
    proc = subprocess.run(
        [str(SCRIPT), "build"], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"[images] error: step 'build {component_image()}'"), proc.stderr
    assert "missing-ca.crt" in last
