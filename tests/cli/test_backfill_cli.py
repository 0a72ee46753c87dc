"""`refit backfill` over the demo's data: the policy replayed over weekly windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest
from _pipeline import POLICY
from typer.testing import CliRunner

from refit.cli import app
from refit.demo.data import TARGET, TIME_COLUMN, DemoScenario, make_user_history, make_windows
from refit.errors import DataError
from refit.io.snapshot import create_snapshot
from refit.io.tables import write_parquet
from refit.registry import ModelRegistry
from refit.replay import replay_history
from refit.schedule.backfill import run_label, split_windows
from refit.schedule.cron import ScheduleError
from refit.training.artifacts import save_model
from refit.training.trainers import train


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
        run_label="seed",
    )
    registry.set_alias("champion", version.version)
    out = tmp_path / "timeline.json"
    # Drift is switched off: only the champion's accuracy on each window can trigger.
    policy = {**POLICY, "drift_share_threshold": None}
    _run(
        ["--data", str(path), "--time-column", TIME_COLUMN, "--every", "1w",
         "--label-column", TARGET,
         "--from", "2026-01-05", "--store", str(store), "--model", "credit-default",
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


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    """A user's own CSV: an integer week column, an id column, no time column."""
    path = tmp_path_factory.mktemp("user") / "history.csv"
    pa_csv.write_csv(make_user_history(weeks=12, rows=800), str(path))
    return path


def test_week_column_and_exclude_on_a_users_csv(user_file, tmp_path):
    out = tmp_path / "timeline.json"
    result = _run(
        ["--data", str(user_file), "--window-column", "week", "--label-column", "churned",
         "--exclude", "customer_id", "--json", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == [str(w) for w in range(12)]
    assert all(r["rows"] == 800 and r["start"] is None for r in rows)
    # the id is neither tested nor named; the week column is a window, not a feature
    assert not any({"customer_id", "week"} & set(r["drifted"]) for r in rows)
    # the salary shift from week 9 is named in the table and the JSON
    assert all("salary" in r["drifted"] for r in rows[9:])
    assert not any("salary" in r["drifted"] for r in rows[1:9])
    assert all(r["blessed"] is None and r["live_version"] is None for r in rows)
    line = next(x for x in result.stdout.splitlines() if x.split()[:2] == ["9", "9"])
    assert "salary" in line
    header = result.stdout.splitlines()[0].split()
    assert header[:2] == ["window", "name"] and {"gate", "live"} <= set(header)
    # without --exclude the id drifts every window (it grows), silently counted before
    _run(["--data", str(user_file), "--window-column", "week", "--label-column", "churned",
          "--json", str(out)])  # fmt: skip
    assert all("customer_id" in r["drifted"] for r in json.loads(out.read_text())[1:])


def test_one_timestamp_per_week_is_a_time_window(user_file, tmp_path):
    # stamping each week with one timestamp (issue 17's first workaround) crashed statistics
    table = pa_csv.read_csv(str(user_file))
    stamps = pa.array(
        [datetime(2024, 1, 1) + timedelta(weeks=w) for w in table.column("week").to_pylist()],
        pa.timestamp("ns"),
    )
    table = table.append_column("ts", stamps).drop_columns(["week"])
    timeline = replay_history(
        table, label_column="churned", time_column="ts", every="7d", exclude=["customer_id"]
    )
    assert [r.name for r in timeline.rows][:2] == ["2024-01-01", "2024-01-08"]
    assert [r.rows for r in timeline.rows] == [800] * 12
    assert timeline.retrained()[0] == "2024-01-01"
    assert all("ts" not in r.drifted for r in timeline.rows)
    assert timeline.to_table().num_rows == 12


def test_window_options_are_checked(user_file, tmp_path):
    def fails(*args):
        result = CliRunner().invoke(app, ["backfill", "--data", str(user_file), *args])
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "--window-column week" in fails("--label-column", "churned")
    assert "leave out --every" in fails("--window-column", "week", "--every", "7d")
    assert "window column 'wk' is not in the data" in fails("--window-column", "wk")
    assert "window column 'salary' has type double" in fails("--window-column", "salary")
    assert "--exclude names column(s) not in the data: nope" in fails(
        "--window-column", "week", "--exclude", "nope"
    )
    assert "--exclude names churned" in fails(
        "--window-column", "week", "--label-column", "churned", "--exclude", "churned"
    )
    assert "--gate is not JSON" in fails("--window-column", "week", "--gate", "{")


def test_run_labels_carry_the_window_name():
    assert run_label(3, "2024-W07") == "window-03-2024-W07"
    assert run_label(0, "2024-01-01T12:00:00") == "window-00-2024-01-01T12-00-00"
    assert run_label(12, "") == "window-12"
    assert len(run_label(1, "x" * 500)) == len("window-01-") + 80


def test_retrain_replays_the_pipeline_with_gate_params_and_seed(user_file, tmp_path):
    # three weeks through the whole pipeline: week 0 trains v1; week 7 (after the concept
    # change) is judged by the champion's accuracy
    table = pa_csv.read_csv(str(user_file))
    weeks = table.filter(pc.is_in(table.column("week"), pa.array([0, 1, 7])))
    path = tmp_path / "three.parquet"
    write_parquet(weeks, str(path))
    out = tmp_path / "timeline.json"
    result = _run(
        ["--data", str(path), "--window-column", "week", "--label-column", "churned",
         "--exclude", "customer_id", "--retrain", "--workdir", str(tmp_path / "work"),
         "--trainer", "logistic_regression", "--params", '{"C": 0.5}', "--seed", "3",
         "--gate", '{"thresholds": {"accuracy": 0.6}}',
         "--policy", '{"drift_share_threshold": 0.3, "metric": "accuracy", '
                     '"metric_threshold": 0.7, "consecutive_windows": 1}',
         "--json", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == ["0", "1", "7"]
    assert rows[0]["decision"] == "retrain" and rows[0]["blessed"] is True
    assert rows[0]["promoted_version"] == 1 and rows[0]["live_version"] == 1
    assert rows[1]["decision"] == "skip" and rows[1]["blessed"] is None
    assert rows[1]["live_version"] == 1
    assert rows[2]["metric"] < 0.7 and rows[2]["decision"] == "retrain"
    assert rows[2]["live_version"] == rows[2]["promoted_version"] or rows[2]["blessed"] is False
    # run folders and data files are named by window
    roots = sorted(p.name for p in (tmp_path / "work" / "pipeline_root").iterdir())
    assert roots == ["window-00-0", "window-01-1", "window-02-7"]
    data = sorted(p.name for p in (tmp_path / "work" / "data").iterdir())
    assert data == [f"{r}.parquet" for r in roots]
    registry = ModelRegistry(str(tmp_path / "work" / "store"), "model")
    training = [r["payload"] for r in registry.audit.records() if r["event"] == "training"]
    assert training[0]["run_label"] == "window-00-0"
    assert training[0]["trainer"] == "logistic_regression" and training[0]["params"] == {"C": 0.5}
    assert "blessed" in result.stdout.splitlines()[1]
