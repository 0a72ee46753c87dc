"""Windows whose labels arrive late, through the retraining pipeline (kfp.local): validation lets
an unlabelled window through with ``late_labels``, the decision runs on the champion's estimated
metric, a retrain it calls for is deferred (nothing trains on a window without labels) and the
next labelled window retrains for it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _pipeline import run_events, run_window

from refit.demo.data import TARGET
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow

MODEL = "late"
#: In effect only the metric rule (the drift share would need every feature to drift; a pipeline
#: dict holds no None): the champion's accuracy on window 2's labels (about 0.89) is above it,
#: its estimate on window 1's shifted rows (about 0.79, CBPE) below.
POLICY = {
    "drift_share_threshold": 1.0,
    "metric": "accuracy",
    "metric_threshold": 0.84,
    "consecutive_windows": 1,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, kfp_local: Path) -> Path:
    return tmp_path_factory.mktemp("store")


def _run(store: Path, table: pa.Table, label: str) -> None:
    run_window(store, table, label, model=MODEL, policy=POLICY, late_labels=True)


def _events(store: Path, label: str) -> dict[str, dict]:
    return run_events(ModelRegistry(str(store), MODEL), label)


def test_an_unlabelled_window_defers_its_retrain_to_the_next_labelled_one(store, windows) -> None:
    _run(store, windows[0], "w0")
    assert _events(store, "w0")["registration"]["version"] == 1

    # a covariate shift toward the decision boundary (debt ratios near where defaults are a coin
    # flip; P(label | features) unchanged), and no label column: the labels come later
    w1 = windows[1]
    debt = w1.column("debt_ratio")
    band = pc.and_(pc.greater_equal(debt, 0.25), pc.less_equal(debt, 0.37))
    _run(store, w1.filter(band).drop_columns([TARGET]), "w1")
    events = _events(store, "w1")
    assert events["validation"]["passed"] is True and events["validation"]["labelled"] is False
    decision = events["decision"]
    assert decision["retrain"] is False and decision["labelled"] is False
    estimate = decision["estimate"]
    assert estimate["method"] == "CBPE" and estimate["value"] < POLICY["metric_threshold"]
    reason = decision["reasons"][0]
    assert reason.startswith("retrain deferred: the window has no labels to train on")
    assert "after `refit labels join`" in reason
    assert f"accuracy < 0.84 for 1 consecutive window(s) ({estimate['value']:.2f})" in reason
    assert f"interval [{estimate['lower']:.3f}, {estimate['upper']:.3f}]" in reason
    assert decision["deferred_retrain"]["window"] == "w1"
    assert decision["unlabelled_windows"] == ["w1"]
    # nothing trained on it
    assert {"training", "evaluation", "registration"}.isdisjoint(events)
    assert ModelRegistry(str(store), MODEL).get_alias("champion") == 1

    # labels again: the champion is fine on them, but the deferred retrain is done now
    _run(store, windows[2], "w2")
    events = _events(store, "w2")
    decision = events["decision"]
    assert decision["labelled"] is True
    assert decision["champion_metric"] >= POLICY["metric_threshold"]  # its own rule: no retrain
    assert decision["retrain"] is True
    assert decision["reasons"][0].startswith("retrain deferred from window w1")
    assert decision["deferred_retrain"] is None
    assert "training" in events and "evaluation" in events
