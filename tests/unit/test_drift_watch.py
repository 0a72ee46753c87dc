"""Label drift, prediction drift and mean shifts, apart from the features' drift share; and the
drift and decision steps that carry them and the label-free estimate to the policy."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _store import champion_store, write_window

from refit import steps
from refit.demo.data import TARGET, TIME_COLUMN
from refit.drift.accumulate import profile_table
from refit.drift.watch import label_drift, mean_shifts, prediction_drift
from refit.errors import DataError
from refit.evaluation.metrics import evaluate
from refit.io import tables
from refit.io.tables import read_table
from refit.registry import ModelRegistry
from refit.steps.train import split_holdout
from refit.steps.watch import LazyTable, champion_holdout
from refit.training.artifacts import load_model

MODEL = "m"


def _labels(rng, n, rate):
    return pa.table({"y": (rng.random(n) < rate).astype(np.int64), "x": rng.normal(0, 1, n)})


def test_a_planted_prior_shift_is_flagged_and_a_stable_stream_is_not():
    rng = np.random.default_rng(0)
    reference = profile_table(_labels(rng, 4000, 0.67))
    stable = [
        label_drift(reference, profile_table(_labels(rng, 2000, 0.67)), "y") for _ in range(10)
    ]
    assert max(d["statistic"] for d in stable) < 0.05  # no window near a 0.10 threshold
    shifted = label_drift(reference, profile_table(_labels(rng, 2000, 0.54)), "y")
    assert shifted["kind"] == "classes" and shifted["test"] == "linf"
    assert shifted["statistic"] == pytest.approx(0.13, abs=0.03)
    assert shifted["p_value"] < 1e-10
    assert shifted["current_shares"]["1"] == pytest.approx(0.54, abs=0.03)


def test_an_unlabelled_window_has_no_label_drift():
    rng = np.random.default_rng(1)
    reference = profile_table(_labels(rng, 500, 0.5))
    no_column = profile_table(pa.table({"x": rng.normal(0, 1, 50)}))
    all_null = profile_table(pa.table({"y": pa.nulls(50, pa.int64()), "x": rng.normal(0, 1, 50)}))
    assert label_drift(reference, no_column, "y") is None
    assert label_drift(reference, all_null, "y") is None


def test_a_continuous_label_is_compared_by_psi():
    rng = np.random.default_rng(2)
    reference = profile_table(pa.table({"y": rng.normal(0, 1, 3000)}))
    moved = label_drift(reference, profile_table(pa.table({"y": rng.normal(0.8, 1, 3000)})), "y")
    same = label_drift(reference, profile_table(pa.table({"y": rng.normal(0, 1, 3000)})), "y")
    assert moved["kind"] == "continuous" and moved["test"] == "psi"
    assert moved["statistic"] > 0.2 > 0.05 > same["statistic"]


def test_prediction_drift_is_the_psi_of_the_scores():
    rng = np.random.default_rng(3)
    reference = rng.beta(2, 2, 3000)
    stable = prediction_drift(reference, rng.beta(2, 2, 3000), reference="holdout")
    moved = prediction_drift(reference, rng.beta(2, 4, 3000), reference="holdout")
    assert stable["statistic"] < 0.05 < 0.2 < moved["statistic"]
    assert moved["current_mean"] < moved["reference_mean"] - 0.1
    classes = prediction_drift(np.array(["a", "b"] * 500), np.array(["a"] * 900 + ["b"] * 100))
    assert classes["statistic"] > 0.2


def test_mean_shift_in_reference_sd_skips_constant_and_text_columns():
    rng = np.random.default_rng(4)
    ref = pa.table({"x": rng.normal(10, 2, 5000), "c": np.ones(5000), "s": ["a"] * 5000})
    cur = pa.table({"x": rng.normal(12, 2, 5000), "c": np.full(5000, 3.0), "s": ["b"] * 5000})
    shifts = mean_shifts(profile_table(ref), profile_table(cur), ["x", "c", "s"])
    assert list(shifts) == ["x"]
    assert shifts["x"]["shift_sd"] == pytest.approx(1.0, abs=0.05)


@pytest.fixture(scope="module")
def store(tmp_path_factory, windows) -> Path:
    """A store whose champion (v1) was trained on window 0 through the library steps."""
    params = {"n_estimators": 30, "max_depth": 3}
    return champion_store(tmp_path_factory.mktemp("store"), windows[0], MODEL, params, metrics={})


def _drift(store: Path, path: str) -> steps.DriftOutput:
    champ = steps.resolve_champion(str(store), MODEL)
    return steps.detect_drift(
        path,
        TARGET,
        reference_profile_path=champ.profile_uri,
        reference_path=champ.reference_uri,
        model_dir=champ.model_uri,
        time_column=TIME_COLUMN,
    )


def test_champion_holdout_is_the_training_steps_holdout(store):
    champ = steps.resolve_champion(str(store), MODEL)
    reference = read_table(champ.reference_uri)
    rows, is_holdout, what = champion_holdout(champ.model_uri, reference, champ.reference_uri)
    assert is_holdout and "seeded holdout" in what
    _, expected = split_holdout(reference, 0.25, 0)  # what train_model held out
    assert rows.equals(expected)
    # another file (not the one the champion was trained on): in-sample, and it says so
    other = write_window(store, reference.slice(1), "other")
    rows, is_holdout, what = champion_holdout(champ.model_uri, read_table(other), other)
    assert not is_holdout and "in-sample" in what


def test_detect_drift_reads_the_window_and_the_reference_once(store, windows, monkeypatch):
    """The explanation, the multivariate check and prediction drift share one read of each."""
    reads: list[str] = []
    read_parquet = tables._read_parquet  # every whole-table Parquet read goes through it

    def counted(uri, *args, **kwargs):
        reads.append(Path(uri).name)
        return read_parquet(uri, *args, **kwargs)

    monkeypatch.setattr(tables, "_read_parquet", counted)
    path = write_window(store, windows[6], "w6-once")
    champ = steps.resolve_champion(str(store), MODEL)
    out = steps.detect_drift(
        path,
        TARGET,
        reference_profile_path=champ.profile_uri,
        reference_path=champ.reference_uri,
        model_dir=champ.model_uri,
        time_column=TIME_COLUMN,
        multivariate={"method": "pca_reconstruction"},
    )
    assert out.result["explanation"] and out.result["multivariate"]
    assert "error" not in out.result["prediction_drift"]
    assert sorted(reads) == sorted([Path(champ.reference_uri).name, "w6-once.parquet"])


def test_a_lazy_table_that_cannot_be_read_fails_alike_each_time(tmp_path):
    lazy = LazyTable(str(tmp_path / "missing.parquet"))
    with pytest.raises(DataError) as first:
        lazy.get()
    with pytest.raises(DataError) as second:
        lazy.get()
    assert str(first.value) == str(second.value) and "missing.parquet" in str(first.value)


def test_detect_drift_reports_label_and_prediction_drift_apart(store, windows):
    stable = _drift(store, write_window(store, windows[1], "w1")).result
    concept = _drift(store, write_window(store, windows[6], "w6"))
    assert stable["label_drift"]["statistic"] < 0.05
    # the concept change moved the positive rate: the label drift says so
    assert concept.result["label_drift"]["statistic"] > 0.1
    assert concept.audit["label_drift"] == concept.result["label_drift"]["statistic"]
    prediction = concept.result["prediction_drift"]
    assert "seeded holdout" in prediction["reference"]
    assert prediction["calibration"]["method"] == "platt"
    assert concept.audit["prediction_drift"] == prediction["statistic"]
    assert "income" in concept.result["mean_shift"]
    assert "Label and prediction drift" in concept.html
    assert TARGET not in concept.result["features"]  # the label stays out of the drift share


def _decide(store, path, drift, policy, label):
    champ = steps.resolve_champion(str(store), MODEL)
    return steps.decide_retrain(
        path,
        drift.result,
        str(store),
        MODEL,
        TARGET,
        policy,
        now="2026-03-01T00:00:00",
        run_label=label,
        champion_dir=champ.model_uri,
        champion_version=champ.version,
        drift=drift.audit,
    )


@pytest.mark.parametrize("unlabelled", ["dropped", "all-null"])
def test_an_unlabelled_window_is_judged_on_the_estimate(store, windows, unlabelled):
    table = windows[2]
    if unlabelled == "dropped":
        blind = table.drop_columns([TARGET])
    else:
        blind = table.set_column(
            table.column_names.index(TARGET), TARGET, pa.nulls(table.num_rows, pa.int64())
        )
    path = write_window(store, blind, f"blind-{unlabelled}")
    drift = _drift(store, path)
    assert drift.result["label_drift"] is None
    policy = {"drift_share_threshold": None, "metric_threshold": 0.75, "consecutive_windows": 1}
    out = _decide(store, path, drift, policy, f"blind-{unlabelled}")
    assert not out.labelled and out.champion_metric is None
    estimate = out.estimate
    assert estimate["method"] == "CBPE" and estimate["calibrated"]
    realised = evaluate(load_model(steps.resolve_champion(str(store), MODEL).model_uri), table)
    # window 2 is stable: the estimate lands near the accuracy its labels would have given
    assert abs(estimate["value"] - realised.accuracy) < 0.04
    assert any("estimated (CBPE, assumes no concept shift)" in r for r in out.reasons)
    assert f"blind-{unlabelled}" in out.reasons[-1]
    record = ModelRegistry(str(store), MODEL).audit.records()[-1]
    assert record["event"] == "decision"
    assert record["payload"]["estimate"] == estimate
    assert record["payload"]["labelled"] is False
    assert f"blind-{unlabelled}" in record["payload"]["unlabelled_windows"]
    assert "estimated without labels (CBPE)" in steps.decision_markdown(out)


def test_a_partly_labelled_window_is_scored_on_its_labelled_rows(store, windows):
    table = windows[1]
    mask = pa.array(np.arange(table.num_rows) % 2 == 0)
    labels = pc.if_else(mask, table.column(TARGET), pa.scalar(None, pa.int64()))
    partly = table.set_column(table.column_names.index(TARGET), TARGET, labels)
    path = write_window(store, partly, "partly")
    policy = {"drift_share_threshold": 0.3, "label_drift_threshold": 0.1}
    out = _decide(store, path, _drift(store, path), policy, "partly")
    assert out.labelled and out.estimate is None
    model = load_model(steps.resolve_champion(str(store), MODEL).model_uri)
    expected = evaluate(model, table.filter(mask)).accuracy
    assert out.champion_metric == pytest.approx(expected)
    assert any(r.startswith("label drift") for r in out.reasons)
