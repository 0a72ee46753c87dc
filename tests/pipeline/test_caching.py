"""KFP's cache serves the pure tasks on a second run over the same window, and only them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pipeline import run_window
from kfp import local

from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow

MODEL = "credit"
POLICY = {"drift_share_threshold": 0.3, "metric": "accuracy", "metric_threshold": 0.75}
PURE = {"validate-data", "detect-drift", "train-model", "evaluate-model"}


@pytest.fixture
def cached_local(tmp_path: Path):
    """kfp.local with its task cache on (JSON under the pipeline root)."""
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
        enable_caching=True,
    )
    yield tmp_path
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "x"))


def _run(root: Path, table, label: str) -> set[str]:
    """Run the pipeline over ``table``; return the tasks that ran (not served from the cache).

    kfp.local gives each task that runs a folder under the run's folder; a task served from
    its cache has none (its outputs are the earlier run's).
    """
    before = set((root / "root").glob("refit-retraining-*"))
    run_window(root / "store", table, label, model=MODEL, policy=POLICY)
    (run,) = set((root / "root").glob("refit-retraining-*")) - before
    return {p.name for p in run.iterdir() if p.is_dir()}


def test_a_second_run_over_the_same_window_serves_the_pure_tasks_from_cache(
    cached_local: Path, windows
) -> None:
    first = _run(cached_local, windows[0], "w0")  # first run: trains v1
    assert PURE <= first and "decide-retrain" in first
    assert {"validate-data", "detect-drift"} <= _run(cached_local, windows[1], "w1")
    # the same window against the same champion: validation and drift come from the cache,
    # the stateful steps run again
    again = _run(cached_local, windows[1], "w1-again")
    assert "validate-data" not in again and "detect-drift" not in again
    assert {"snapshot-data", "resolve-champion", "decide-retrain"} <= again
    # the audit log still has every fact of the run (recorded by decide_retrain)
    records = [
        r["event"]
        for r in ModelRegistry(str(cached_local / "store"), MODEL).audit.records()
        if r["payload"].get("run_label") == "w1-again"
    ]
    assert records[-3:] == ["validation", "drift", "decision"]
    # another window is not served from the cache
    assert {"validate-data", "detect-drift"} <= _run(cached_local, windows[2], "w2")
