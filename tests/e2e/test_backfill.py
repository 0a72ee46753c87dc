"""`refit backfill` over the demo's data: the policy replayed over weekly windows."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from refit.cli import app
from refit.demo.data import TARGET, TIME_COLUMN, DemoScenario, make_windows
from refit.errors import DataError
from refit.io.snapshot import create_snapshot
from refit.io.tables import write_parquet
from refit.registry import ModelRegistry
from refit.schedule.backfill import split_windows
from refit.schedule.cron import ScheduleError
from refit.training.artifacts import save_model
from refit.training.trainers import train

POLICY = {
    "drift_share_threshold": 0.3,
    "metric": "accuracy",
    "metric_threshold": 0.75,
    "consecutive_windows": 2,
}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Ten weekly windows (no renamed-column window), as one Parquet file."""
    windows = make_windows(DemoScenario(windows=10, rows=400, bad_window=99, seed=7))
    path = tmp_path_factory.mktemp("history") / "history.parquet"
    write_parquet(pa.concat_tables(windows), str(path))
    return windows, path


def _run(args):
    result = CliRunner().invoke(app, ["backfill", *args])
    assert result.exit_code == 0, result.output
    return result


def test_policy_replay_prints_the_timeline(history, tmp_path):
    _, path = history
    out = tmp_path / "timeline.json"
    result = _run(
        ["--data", str(path), "--time-column", TIME_COLUMN, "--every", "7d",
         "--label-column", TARGET,
         "--from", "2026-01-05T00:00:00", "--policy", json.dumps(POLICY), "--json", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["rows"] for r in rows] == [400] * 10
    assert [r["start"][:10] for r in rows][:3] == ["2026-01-05", "2026-01-12", "2026-01-19"]
    decisions = [r["decision"] for r in rows]
    # First window: no model yet. Window 3: the covariate shift. Afterwards the shifted
    # population is the reference (the simulated retrain trained on it): quiet again.
    assert decisions == ["retrain", "skip", "skip", "retrain"] + ["skip"] * 6
    assert rows[0]["reasons"] == ["no champion model: training the first one"]
    assert rows[3]["drift_share"] >= 0.3
    assert rows[3]["reasons"][0].startswith("drift share ")
    assert all(r["drift_share"] < 0.3 for r in rows[4:])
    assert "2 retrain, 8 skip over 10 windows" in result.stdout
    assert result.stdout.count("retrain ") >= 2


def test_champion_in_store_brings_metric_decay(history, tmp_path):
    windows, path = history
    store = tmp_path / "store"
    first = windows[0]
    snapshot = create_snapshot(first, str(store), source="window-0", time_column=TIME_COLUMN)
    model = train(first, TARGET, trainer="logistic_regression", exclude=[TIME_COLUMN], seed=0)
    save_model(model, tmp_path / "model")
    registry = ModelRegistry(str(store), "credit-default")
    version = registry.register(
        tmp_path / "model",
        metrics={"accuracy": 0.8},
        snapshot_sha256=snapshot.sha256,
        parent_version=None,
        run_id="seed",
    )
    registry.set_alias("champion", version.version)
    out = tmp_path / "timeline.json"
    # Drift is switched off: only the champion's accuracy on each window can trigger.
    policy = {**POLICY, "drift_share_threshold": None}
    _run(
        ["--data", str(path), "--time-column", TIME_COLUMN, "--every", "1w",
         "--label-column", TARGET,
         "--from", "2026-01-05", "--store", str(store), "--model-name", "credit-default",
         "--policy", json.dumps(policy), "--json", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())
    metrics = [r["metric"] for r in rows]
    assert all(m is not None and m >= 0.75 for m in metrics[:6])
    # The concept change from window 6: two windows under 0.75, then a retrain.
    assert metrics[6] < 0.75
    assert metrics[7] < 0.75
    assert [r["decision"] for r in rows[:8]] == ["skip"] * 7 + ["retrain"]
    assert rows[7]["reasons"][0].startswith("accuracy < 0.75 for 2 consecutive window(s)")
    assert rows[8]["metric"] is None  # the simulated new model has no scores


def test_windows_bounds_and_bad_input(history, tmp_path):
    windows, path = history
    table = pa.concat_tables(windows)
    split = split_windows(table, TIME_COLUMN, "14d", "2026-01-05", "2026-02-02")
    assert [w.num_rows for _, _, w in split] == [800, 800]
    iso = table.set_column(
        table.column_names.index(TIME_COLUMN),
        TIME_COLUMN,
        pa.array([t.isoformat() for t in table.column(TIME_COLUMN).to_pylist()]),
    )
    assert [w.num_rows for _, _, w in split_windows(iso, TIME_COLUMN, "7d", "2026-01-05")] == [
        400
    ] * 10
    with pytest.raises(DataError, match="time column 'when' is not in the data"):
        split_windows(table, "when", "7d")
    with pytest.raises(DataError, match="not a timestamp or ISO text"):
        split_windows(table, "income", "7d")
    with pytest.raises(ScheduleError, match="not a duration"):
        split_windows(table, TIME_COLUMN, "weekly")
    with pytest.raises(ScheduleError, match="is not after --from"):
        split_windows(table, TIME_COLUMN, "7d", "2026-03-01", "2026-02-01")
    with pytest.raises(DataError, match="no rows between"):
        split_windows(table, TIME_COLUMN, "7d", "2030-01-01", "2030-02-01")
    result = CliRunner().invoke(
        app, ["backfill", "--data", str(path), "--time-column", "nope", "--every", "7d"]
    )
    assert result.exit_code == 2
    assert "time column 'nope' is not in the data" in result.output
