import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from refit.errors import DataError, PolicyError, TrainingError
from refit.evaluation import (
    FIRST_RUN_REASON,
    NO_THRESHOLDS_REASON,
    EvaluationResult,
    GateConfig,
    downsample_curve,
    evaluate,
    gate,
)
from refit.training import train


def make_table(n: int, n_classes: int = 2, seed: int = 0, noise: float = 0.8) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    score = x1 + 0.5 * x2 + noise * rng.normal(size=n)
    if n_classes == 2:
        labels = np.where(score > 0, 1, 0)
    else:
        labels = np.select([score < -0.5, score < 0.5], [0, 1], 2)
    return pa.table({"x1": x1, "x2": x2, "y": labels})


@pytest.fixture(scope="module")
def binary_model():
    return train(make_table(800), "y", trainer="logistic_regression")


@pytest.fixture(scope="module")
def multi_model():
    return train(make_table(800, n_classes=3), "y", trainer="xgboost", params={"n_estimators": 20})


# --- metrics ----------------------------------------------------------------------------------


def test_binary_metrics_match_sklearn_and_curve_is_downsampled(binary_model):
    holdout = make_table(2000, seed=1)
    result = evaluate(binary_model, holdout)
    y = np.asarray(holdout.column("y").to_pylist())
    proba = binary_model.predict_proba(holdout)
    pred = proba.argmax(axis=1)
    assert result.n_rows == 2000
    assert result.labels == [0, 1]
    assert result.accuracy == pytest.approx(accuracy_score(y, pred))
    assert result.f1 == pytest.approx(f1_score(y, pred))
    assert result.roc_auc == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert 0.7 < result.roc_auc <= 1.0
    cm = np.array(result.confusion_matrix)
    assert cm.shape == (2, 2) and cm.sum() == 2000
    assert np.trace(cm) == round(result.accuracy * 2000)
    curve = result.roc_curve
    assert curve is not None
    assert 2 <= len(curve["fpr"]) <= 200
    assert len(curve["fpr"]) == len(curve["tpr"]) == len(curve["thresholds"])
    assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0 and curve["tpr"][-1] == 1.0
    assert all(math.isfinite(t) for t in curve["thresholds"])
    assert curve["fpr"] == sorted(curve["fpr"])


def test_multiclass_metrics_match_sklearn(multi_model):
    holdout = make_table(600, n_classes=3, seed=2)
    result = evaluate(multi_model, holdout)
    y = np.asarray(holdout.column("y").to_pylist())
    proba = multi_model.predict_proba(holdout)
    pred = proba.argmax(axis=1)
    assert result.labels == [0, 1, 2]
    assert result.f1 == pytest.approx(f1_score(y, pred, average="macro"))
    assert result.roc_auc == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert result.roc_curve is None
    assert np.array(result.confusion_matrix).shape == (3, 3)


def test_single_class_holdout_gives_no_roc_auc_without_crashing(binary_model):
    holdout = make_table(500, seed=3).filter(pc.equal(pc.field("y"), 1))
    result = evaluate(binary_model, holdout)
    assert result.roc_auc is None
    assert result.roc_curve is None
    assert any("only one class" in note for note in result.notes)
    assert "roc_auc" not in result.metrics()
    assert set(result.metrics()) == {"accuracy", "f1"}
    json.dumps(result.to_dict())


def test_multiclass_holdout_missing_a_class_averages_present_ones(multi_model):
    holdout = make_table(600, n_classes=3, seed=4)
    holdout = holdout.filter(pc.not_equal(pc.field("y"), 2))
    result = evaluate(multi_model, holdout)
    assert result.roc_auc is not None
    assert any("absent" in note for note in result.notes)


def test_empty_holdout_is_a_data_error(binary_model):
    with pytest.raises(DataError, match="no rows"):
        evaluate(binary_model, make_table(10).slice(0, 0))


def test_holdout_with_unknown_label_names_target(binary_model):
    holdout = pa.table({"x1": [0.1], "x2": [0.2], "y": [7]})
    with pytest.raises(TrainingError, match="'y'"):
        evaluate(binary_model, holdout)


def test_result_dict_round_trip(binary_model):
    result = evaluate(binary_model, make_table(300, seed=5))
    data = json.loads(json.dumps(result.to_dict()))
    assert EvaluationResult.from_dict(data) == result
    assert result.metrics() == {
        "accuracy": result.accuracy,
        "f1": result.f1,
        "roc_auc": result.roc_auc,
    }


def test_downsample_curve_keeps_ends_and_limits_points():
    n = 1001
    fpr = np.linspace(0, 1, n)
    tpr = np.sqrt(fpr)
    thr = np.concatenate([[np.inf], np.linspace(1, 0, n - 1)])
    curve = downsample_curve(fpr, tpr, thr, max_points=200)
    assert len(curve["fpr"]) == 200
    assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0
    assert curve["thresholds"][0] == 1.0
    small = downsample_curve(fpr[:5], tpr[:5], thr[:5])
    assert len(small["fpr"]) == 5


# --- gate -------------------------------------------------------------------------------------


def test_first_run_judged_on_thresholds_alone():
    result = gate({"accuracy": 0.912}, None, GateConfig(thresholds={"accuracy": 0.8}))
    assert result.blessed
    assert result.first_run
    assert result.reasons[0] == FIRST_RUN_REASON
    assert "accuracy 0.912 >= 0.800" in result.reasons


def test_first_run_below_threshold_is_not_blessed():
    result = gate(
        {"accuracy": 0.7, "f1": 0.9}, None, GateConfig(thresholds={"accuracy": 0.8, "f1": 0.5})
    )
    assert not result.blessed
    assert result.first_run
    assert "accuracy 0.700 < 0.800 (below minimum)" in result.reasons
    assert "f1 0.900 >= 0.500" in result.reasons


def test_champion_comparison_within_margin():
    config = GateConfig(thresholds={"accuracy": 0.8}, max_degradation=0.01)
    result = gate({"accuracy": 0.912}, {"accuracy": 0.905}, config)
    assert result.blessed
    assert not result.first_run
    assert "accuracy 0.912 >= 0.800" in result.reasons
    assert "accuracy 0.912 vs champion 0.905: change +0.007 within -0.010 margin" in result.reasons
    assert FIRST_RUN_REASON not in result.reasons


def test_challenger_worse_than_champion_beyond_margin_is_refused():
    config = GateConfig(thresholds={"accuracy": 0.8, "roc_auc": 0.7}, max_degradation=0.01)
    result = gate({"accuracy": 0.88, "roc_auc": 0.95}, {"accuracy": 0.905, "roc_auc": 0.94}, config)
    assert not result.blessed
    assert "accuracy 0.880 vs champion 0.905: change -0.025 beyond -0.010 margin" in result.reasons
    assert "roc_auc 0.950 vs champion 0.940: change +0.010 within -0.010 margin" in result.reasons
    assert result.reasons[-1] == "not blessed: 1 of 4 checks failed"
    kinds = {(c["metric"], c["kind"]): c["passed"] for c in result.checks}
    assert kinds == {
        ("accuracy", "threshold"): True,
        ("accuracy", "champion"): False,
        ("roc_auc", "threshold"): True,
        ("roc_auc", "champion"): True,
    }


def test_margin_edge_is_inclusive_despite_float_round_off():
    config = GateConfig(thresholds={"accuracy": 0.5}, max_degradation=0.01)
    assert gate({"accuracy": 0.9}, {"accuracy": 0.91}, config).blessed
    assert gate({"accuracy": 0.8}, None, GateConfig(thresholds={"accuracy": 0.8})).blessed


def test_no_thresholds_fails_closed():
    for champion in (None, {"accuracy": 0.5}):
        result = gate({"accuracy": 0.99}, champion, GateConfig())
        assert not result.blessed
        assert NO_THRESHOLDS_REASON in result.reasons
    assert gate({"accuracy": 0.99}, None, GateConfig()).first_run


@pytest.mark.parametrize("value", [None, float("nan")])
def test_thresholded_metric_missing_from_challenger_is_refused(value):
    challenger = {"accuracy": 0.95, "roc_auc": value}
    result = gate(challenger, None, GateConfig(thresholds={"accuracy": 0.8, "roc_auc": 0.7}))
    assert not result.blessed
    assert any(r.startswith("roc_auc missing from challenger") for r in result.reasons)
    result = gate({"accuracy": 0.95}, None, GateConfig(thresholds={"f1": 0.5}))
    assert not result.blessed
    assert any("f1 missing" in r for r in result.reasons)


def test_gate_accepts_numpy_scalars_and_evaluation_dicts(binary_model):
    result = gate(
        {"accuracy": np.float32(0.9)},
        {"accuracy": np.float64(0.9)},
        GateConfig(thresholds={"accuracy": 0.5}),
    )
    assert result.blessed
    # the full to_dict() of an evaluation works too: non-metric entries are ignored
    full = evaluate(binary_model, make_table(200, seed=8)).to_dict()
    assert gate(full, full, GateConfig(thresholds={"accuracy": 0.5, "roc_auc": 0.5})).blessed


def test_champion_without_the_metric_is_compared_on_threshold_only():
    config = GateConfig(thresholds={"roc_auc": 0.7})
    result = gate({"roc_auc": 0.8}, {"accuracy": 0.9}, config)
    assert result.blessed
    assert any("champion has no value" in r for r in result.reasons)


def test_gate_config_from_dict_and_back():
    config = GateConfig.from_dict({"thresholds": {"accuracy": 0.8, "f1": 1}, "max_degradation": 0})
    assert config.thresholds == {"accuracy": 0.8, "f1": 1.0}
    assert config.max_degradation == 0.0
    assert GateConfig.from_dict(config.to_dict()) == config
    assert GateConfig.from_dict({}) == GateConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"threshold": {"accuracy": 0.8}}, r"unknown key\(s\) \['threshold'\]"),
        ({"thresholds": {"accuracy": 0.8}, "max_degradation": -0.01}, "max_degradation.*>= 0"),
        ({"thresholds": {"accuracy": "high"}}, "'accuracy' must be a finite number"),
        ({"thresholds": {"accuracy": float("nan")}}, "'accuracy' must be a finite number"),
        ({"thresholds": ["accuracy"]}, "'thresholds' must be a mapping"),
        ({"max_degradation": True}, "max_degradation"),
    ],
)
def test_gate_config_rejects_bad_input(data, message):
    with pytest.raises(PolicyError, match=message):
        GateConfig.from_dict(data)


def test_gate_with_evaluation_results(binary_model):
    holdout = make_table(400, seed=6)
    challenger = evaluate(binary_model, holdout).metrics()
    weaker = train(make_table(60, seed=9, noise=3.0), "y", trainer="logistic_regression")
    champion = evaluate(weaker, holdout).metrics()
    config = GateConfig(thresholds={"accuracy": 0.6, "roc_auc": 0.6})
    result = gate(challenger, champion, config)
    assert result.blessed, result.reasons
    reverse = gate(
        champion, challenger, GateConfig(thresholds={"accuracy": 0.0}, max_degradation=0.0)
    )
    assert reverse.blessed == (champion["accuracy"] >= challenger["accuracy"])
