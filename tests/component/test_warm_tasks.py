"""Warm tasks: kfp.local tasks forked from a server that imported refit once, each on its own."""

from pathlib import Path

import pytest
from kfp import dsl
from kfp.local import subprocess_task_handler

from refit.images import component_image
from refit.pipelines import warm_tasks
from refit.pipelines.local import init_local


@dsl.component(base_image=component_image(), install_kfp_package=False)
def probe_env(name: str) -> str:
    import os

    return f"{os.environ.get(name, '')}|{os.getcwd()}"


@dsl.component(base_image=component_image(), install_kfp_package=False)
def probe_state() -> str:
    import sys

    import refit.steps

    before = getattr(refit.steps, "_probe", "unset")
    refit.steps._probe = "set"  # a task's changes stay in its own process
    return f"{before}|{'xgboost' in sys.modules}"


@dsl.component(base_image=component_image(), install_kfp_package=False)
def probe_failure() -> str:
    raise ValueError("the probe failed on purpose")


def test_tasks_run_warm_see_the_environment_of_the_moment(kfp_local, monkeypatch, tmp_path):
    assert subprocess_task_handler.run_local_subprocess is warm_tasks.run_task
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFIT_PROBE", "first")
    assert probe_env(name="REFIT_PROBE").output == f"first|{tmp_path}"
    monkeypatch.setenv("REFIT_PROBE", "second")  # after the server started
    assert probe_env(name="REFIT_PROBE").output.startswith("second|")


def test_each_task_is_its_own_process_forked_from_the_warm_imports(kfp_local):
    # the server imported XGBoost before the task; what a task changes, the next one never sees
    assert probe_state().output.split("|")[:2] == ["unset", "True"]
    assert probe_state().output.split("|")[:2] == ["unset", "True"]
    import refit.steps

    assert not hasattr(refit.steps, "_probe")  # nor does the driver


def test_a_failing_task_fails_with_its_traceback(kfp_local, capsys):
    with pytest.raises(RuntimeError, match="FAILURE"):
        probe_failure()
    assert "ValueError: the probe failed on purpose" in capsys.readouterr().out


def test_cold_tasks_on_request(tmp_path: Path, kfp_local):
    try:
        init_local(tmp_path / "cold", warm=False)
        assert subprocess_task_handler.run_local_subprocess is not warm_tasks.run_task
        assert probe_state().output.split("|")[:2] == ["unset", "False"]
    finally:
        init_local(kfp_local)
    assert subprocess_task_handler.run_local_subprocess is warm_tasks.run_task


@pytest.mark.parametrize(
    "command",
    [
        ["python3", "-m", "kfp.dsl.executor_main"],
        ["sh", "-c", "pip install x && python3 -m kfp.dsl.executor_main", "src"],
        ["sh", "-ec", "echo hi", "src", "--a"],
    ],
)
def test_other_commands_are_left_to_kfp(command):
    assert warm_tasks.parse_command(command) is None


def test_the_server_ends_with_its_driver():
    server = warm_tasks._get_server()
    assert server.alive()
    server.close()
    assert not server.alive()
    # the next task starts a new one
    assert warm_tasks._get_server() is not server
