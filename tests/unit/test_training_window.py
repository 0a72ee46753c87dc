"""Training on the right data: training windows from stored snapshots, recency weights, an
out-of-time holdout and warm start from the champion, recorded in the card and the lineage."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from refit import steps
from refit.errors import DataError, SchemaError, TrainingError
from refit.io.tables import write_parquet
from refit.registry import open_registry
from refit.registry.lineage import lineage_rows
from refit.steps.train import select_training_windows
from refit.training.artifacts import load_model, read_metadata
from refit.training.window import TrainingWindow

MODEL = "churn"
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
PARAMS = {"n_estimators": 20, "max_depth": 3}


def window(i: int, rows: int = 400, flipped: bool = False) -> pa.Table:
    """Week ``i``: the label is x1 + x2 > 0 (its opposite when ``flipped``)."""
    rng = np.random.default_rng(100 + i)
    x = rng.standard_normal((rows, 3))
    label = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    if flipped:
        label = 1 - label
    seconds = np.sort(rng.integers(0, 7 * 24 * 3600, rows))
    times = [START + dt.timedelta(days=7 * i, seconds=int(s)) for s in seconds]
    return pa.table(
        {
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
            "label": label,
        }
    )


def record_window(tmp_path, store: str, i: int, table: pa.Table) -> tuple[str, dict]:
    """Run the pipeline's data steps on a window: a snapshot, then the privacy step's copy."""
    raw, snap, anon = (tmp_path / f"{name}-{i}.parquet" for name in ("raw", "snap", "anon"))
    write_parquet(table, str(raw))
    steps.snapshot_data(str(raw), store, MODEL, str(snap), time_column="ts", run_label=f"w{i}")
    out = steps.anonymize_data(
        str(snap), store, MODEL, str(anon), {}, time_column="ts", run_label=f"w{i}"
    )
    return str(anon), {"sha256": out.sha256, "pii": [], "handled": []}


def fit(tmp_path, path: str, name: str, training_window=None, store_uri="", **kwargs):
    """As the pipeline does: select the earlier windows (when a policy is given), then train."""
    model_dir, holdout = tmp_path / f"model-{name}", tmp_path / f"holdout-{name}.parquet"
    if training_window is not None:
        earlier = tmp_path / f"earlier-{name}.parquet"
        selected = select_training_windows(
            path,
            str(earlier),
            store_uri=store_uri,
            model_name=MODEL,
            training_window=training_window,
            data_metadata=kwargs.get("data_metadata"),
        )
        kwargs.update(earlier_path=str(earlier), earlier_metadata=selected.record())
    out = steps.train_model(
        path,
        "label",
        str(model_dir),
        str(holdout),
        params=PARAMS,
        time_column="ts",
        checkpoint_uri="",
        **kwargs,
    )
    return out, str(model_dir), str(holdout)


@pytest.fixture
def history(tmp_path):
    """Four weeks recorded in a store: (store, [(path, metadata, sha256), ...])."""
    store = str(tmp_path / "store")
    weeks = []
    for i in range(4):
        path, meta = record_window(tmp_path, store, i, window(i))
        weeks.append((path, meta, meta["sha256"]))
    return store, weeks


def test_the_default_trains_on_the_current_window_alone(tmp_path, history):
    store, weeks = history
    out, _, _ = fit(tmp_path, weeks[3][0], "default", store_uri=store)

    data = out.card["training_data"]
    assert data["policy"] == {"windows": 1, "since": "", "recency_half_life": 0.0}
    assert [w["sha256"] for w in data["windows"]] == [weeks[3][2]]
    assert out.train_rows == 300 and out.holdout_rows == 100
    assert data["holdout"] == {"split": "random", "rows": 100}
    assert data["warm_start"] == {"requested": False}


def test_the_last_k_windows_with_recency_weights(tmp_path, history):
    store, weeks = history
    out, model_dir, _ = fit(
        tmp_path,
        weeks[3][0],
        "last3",
        data_metadata=weeks[3][1],
        training_window={"windows": 3.0, "recency_half_life": 1},  # KFP sends doubles
        store_uri=store,
    )

    windows = out.card["training_data"]["windows"]
    assert [w["sha256"] for w in windows] == [weeks[1][2], weeks[2][2], weeks[3][2]]
    assert [w["age"] for w in windows] == [2, 1, 0]
    assert [w["weight"] for w in windows] == [0.25, 0.5, 1.0]
    assert [w["rows"] for w in windows] == [400, 400, 300]
    assert [w["run_label"] for w in windows] == ["w1", "w2", ""]
    assert out.train_rows == 1100 and out.holdout_rows == 100
    assert out.audit["training_data"] == out.card["training_data"]
    assert read_metadata(model_dir)["card"]["training_data"] == out.card["training_data"]
    assert "| 2 | 400 | 0.25 |" in out.card_markdown
    assert "recency half-life 1 window(s)" in out.card_markdown


def test_since_leaves_out_windows_that_end_before_it(tmp_path, history):
    store, weeks = history
    since = (START + dt.timedelta(days=14)).isoformat()  # weeks 2 and 3 end after it
    out, _, _ = fit(
        tmp_path,
        weeks[3][0],
        "since",
        training_window={"since": since},
        store_uri=store,
    )

    windows = out.card["training_data"]["windows"]
    assert [w["sha256"] for w in windows] == [weeks[2][2], weeks[3][2]]
    assert windows[0]["time"].startswith("2026-03-22")


def test_a_replayed_window_picks_the_windows_before_its_first_run(tmp_path, history):
    store, weeks = history
    out, _, _ = fit(
        tmp_path,
        weeks[1][0],
        "replay",
        training_window={"windows": 10},
        store_uri=store,
    )

    assert [w["sha256"] for w in out.card["training_data"]["windows"]] == [
        weeks[0][2],
        weeks[1][2],
    ]


def test_recency_weights_follow_a_change_that_equal_weights_average_away(tmp_path):
    store = str(tmp_path / "store")
    for i in range(3):
        record_window(tmp_path, store, i, window(i, rows=600))
    current, _ = record_window(tmp_path, store, 3, window(3, rows=600, flipped=True))
    policy = {"windows": 4}
    equal, _, _ = fit(tmp_path, current, "equal", training_window=policy, store_uri=store)
    recent, _, _ = fit(
        tmp_path,
        current,
        "recent",
        training_window={**policy, "recency_half_life": 0.25},
        store_uri=store,
    )

    # three old weeks outvote the changed one; weighted by recency, the new concept wins
    assert equal.card["validation"]["metrics"]["accuracy"] < 0.5
    assert recent.card["validation"]["metrics"]["accuracy"] > 0.8


def test_the_out_of_time_holdout_is_the_windows_latest_rows(tmp_path, history):
    _, weeks = history
    out, _, holdout = fit(tmp_path, weeks[3][0], "oot", holdout_split="time")

    from refit.io.tables import read_table

    held = read_table(holdout).column("ts").to_pylist()
    train_times = read_table(weeks[3][0]).column("ts").to_pylist()
    assert len(held) == 100 and held == sorted(held)
    assert min(held) >= sorted(train_times)[299]
    data = out.card["training_data"]["holdout"]
    assert data["split"] == "time" and data["time_column"] == "ts"
    assert data["from"] == str(min(held))
    assert "out-of-time" in out.card["validation"]["source"]
    assert "out-of-time: the latest 100 rows by `ts`" in out.card_markdown


def test_warm_start_continues_the_champions_boosting(tmp_path, history):
    _, weeks = history
    champion, champion_dir, _ = fit(tmp_path, weeks[0][0], "champion")
    out, model_dir, _ = fit(
        tmp_path, weeks[1][0], "warm", warm_start=True, baseline_model_dir=champion_dir
    )

    warm = out.card["training_data"]["warm_start"]
    assert warm == {
        "requested": True,
        "from_sha256": champion.sha256,
        "base_rounds": 20,
        "added_rounds": 20,
    }
    booster = load_model(model_dir).estimator.get_booster()
    assert booster.num_boosted_rounds() == 40
    # the first 20 trees are the champion's
    first = booster[:20].save_raw("json")
    assert first == load_model(champion_dir).estimator.get_booster().save_raw("json")
    assert "warm start from the champion" in out.card_markdown


def test_warm_start_without_a_champion_trains_from_scratch_and_says_so(tmp_path, history):
    _, weeks = history
    out, _, _ = fit(tmp_path, weeks[0][0], "first", warm_start=True)

    assert out.card["training_data"]["warm_start"] == {
        "requested": True,
        "note": "no champion yet: trained from scratch",
    }


def test_warm_start_is_refused_when_features_or_trainer_differ(tmp_path, history):
    _, weeks = history
    _, champion_dir, _ = fit(tmp_path, weeks[0][0], "champion")
    narrower = tmp_path / "narrower.parquet"
    write_parquet(window(1).drop(["x3"]), str(narrower))

    with pytest.raises(TrainingError, match=r"numeric features \['x1', 'x2', 'x3'\] -> "):
        fit(tmp_path, str(narrower), "narrow", warm_start=True, baseline_model_dir=champion_dir)
    with pytest.raises(TrainingError, match="cannot continue a 'xgboost' model"):
        fit(
            tmp_path,
            weeks[1][0],
            "rf",
            trainer="random_forest",
            warm_start=True,
            baseline_model_dir=champion_dir,
        )


def test_an_earlier_window_without_a_column_is_refused_by_name(tmp_path):
    store = str(tmp_path / "store")
    record_window(tmp_path, store, 0, window(0).drop(["x3"]))
    current, _ = record_window(tmp_path, store, 1, window(1))

    with pytest.raises(DataError, match=r"lacks column\(s\) \['x3'\]"):
        fit(
            tmp_path,
            current,
            "cols",
            training_window={"windows": 2},
            store_uri=store,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"training_window": {"windows": 0}}, "training_window.windows must be in"),
        ({"training_window": {"window": 2}}, r"unknown key\(s\) \['window'\]"),
        ({"training_window": {"since": "last week"}}, "not an ISO 8601 time"),
        ({"training_window": {"recency_half_life": -1}}, "recency_half_life must be"),
        ({"holdout_split": "latest"}, "holdout_split 'latest' is not one of"),
    ],
)
def test_bad_training_settings_are_refused_by_name(tmp_path, history, kwargs, message):
    _, weeks = history
    with pytest.raises(SchemaError, match=message):
        fit(tmp_path, weeks[3][0], "bad", **kwargs)


def test_the_time_split_needs_a_time_column(tmp_path, history):
    _, weeks = history
    with pytest.raises(SchemaError, match="needs a time_column"):
        steps.train_model(
            weeks[3][0],
            "label",
            str(tmp_path / "m"),
            str(tmp_path / "h.parquet"),
            holdout_split="time",
            checkpoint_uri="",
        )


def test_the_empty_policy_is_the_current_window():
    assert TrainingWindow.from_dict({}) == TrainingWindow.from_dict(None) == TrainingWindow()
    assert not TrainingWindow().widened


def test_registration_carries_the_training_data_into_the_lineage(tmp_path, history):
    store, weeks = history
    out, model_dir, _ = fit(
        tmp_path,
        weeks[3][0],
        "lineage",
        training_window={"windows": 2},
        store_uri=store,
    )
    steps.register_model(model_dir, store, MODEL, weeks[3][2], {"accuracy": 0.9})

    import json

    (row,) = lineage_rows(open_registry(store, MODEL))
    lineage = json.loads(row["training_data"])
    assert [w["sha256"] for w in lineage["windows"]] == [weeks[2][2], weeks[3][2]]
    assert lineage == json.loads(json.dumps(out.card["training_data"]))


def test_earlier_rows_that_do_not_match_their_records_are_refused():
    from refit.training.window import WindowPart, combine_windows

    current = window(1)
    earlier = [WindowPart(sha256="a" * 64, rows=400, age=1)]
    with pytest.raises(DataError, match="holds 399 rows, their records 400"):
        combine_windows(TrainingWindow(windows=2), earlier, window(0).slice(1), current, "b" * 64)
    with pytest.raises(DataError, match="invalid training window record"):
        WindowPart.from_dict({"sha256": "a" * 64, "rows": "many", "age": 1})
