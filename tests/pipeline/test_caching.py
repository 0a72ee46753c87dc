"""KFP's cache serves the pure tasks on a second run over the same window, and only them."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from kfp import local

from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet
from refit.pipelines.local import run_pipeline
from refit.pipelines.retraining import DEFAULT_GATE
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow

MODEL = "credit"
POLICY = {"drift_share_threshold": 0.3, "metric": "accuracy", "metric_threshold": 0.75}
PURE = {"validate-data", "detect-drift", "evaluate-model"}


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


def _run(store: Path, table, label: str) -> set[str]:
    """Run the pipeline over ``table``; return the tasks kfp.local served from its cache."""
    uri = str(store.parent / f"{label}.parquet")
    write_parquet(table, uri)
    log = io.StringIO()
    # kfp.local logs each task to stdout through its own root handler ("Task x cache hit")
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        run_pipeline(
            quiet=False,
            data_uri=uri,
            store_uri=str(store),
            model_name=MODEL,
            target=TARGET,
            time_column=TIME_COLUMN,
            policy_json=json.dumps(POLICY),
            gate_json=json.dumps(DEFAULT_GATE),
            params_json=json.dumps({"n_estimators": 30, "max_depth": 3}),
            now="2026-02-01T00:00:00",
            run_label=label,
        )
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.getvalue())
    return set(re.findall(r"Task '?([\w-]+)'? cache hit", text))


def test_a_second_run_over_the_same_window_serves_the_pure_tasks_from_cache(
    cached_local: Path, windows
) -> None:
    store = cached_local / "store"
    assert _run(store, windows[0], "w0") == set()  # first run: trains v1
    assert _run(store, windows[1], "w1") == set()  # a new window against v1
    # the same window against the same champion: validation and drift come from the cache
    assert _run(store, windows[1], "w1-again") == {"validate-data", "detect-drift"}
    # the stateful steps still ran, and the audit log still has every fact of the run
    records = [
        r["event"]
        for r in ModelRegistry(str(store), MODEL).audit.records()
        if r["payload"].get("run_label") == "w1-again"
    ]
    assert records[-3:] == ["validation", "drift", "decision"]
    # another window is not served from the cache
    assert _run(store, windows[2], "w2").isdisjoint(PURE)
