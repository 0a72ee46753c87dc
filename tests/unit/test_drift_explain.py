"""Explainable drift: SHAP contribution shifts of an XGBoost model name the feature that moved
the predictions, and the report and JSON carry them."""

import numpy as np
import pyarrow as pa
import pytest

from refit.drift import detect_drift, render_drift_html
from refit.drift.explain import explain_drift
from refit.errors import DriftError
from refit.training.trainers import train


def _window(rng, n, shift=0.0):
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    noise = rng.normal(0.0, 1.0, n)  # drifts, but the model ignores it
    colour = rng.choice(["red", "blue"], n)
    label = ((x1 + 0.3 * (colour == "red") + rng.normal(0, 0.3, n)) > 0.5).astype(int)
    return pa.table({"x1": x1, "x2": x2, "noise": noise + shift * 3, "colour": colour, "y": label})


def test_contribution_shift_names_the_feature_that_moved_predictions():
    rng = np.random.default_rng(2)
    reference = _window(rng, 3000)
    current = _window(rng, 3000, shift=1.0)
    model = train(reference, "y", trainer="xgboost", params={"n_estimators": 30}, seed=0)
    explanation = explain_drift(model, reference, current)
    top = explanation["features"][0]
    assert top["feature"] == "x1" and top["shift"] > 0
    by_name = {r["feature"]: r for r in explanation["features"]}
    assert set(by_name) == {"x1", "x2", "noise", "colour"}
    # "noise" drifted far more than x1 but barely moves the predictions
    assert abs(by_name["noise"]["shift"]) < 0.5 * top["shift"]
    assert explanation["mean_prediction_current"] > explanation["mean_prediction_reference"]

    features = ["x1", "x2", "noise", "colour"]
    result = detect_drift(reference, current, columns=features)
    assert {"x1", "noise"} <= set(result.drifted_features())
    from dataclasses import replace

    result = replace(result, explanation=explanation)
    assert result.to_dict()["explanation"]["features"][0]["feature"] == "x1"
    html = render_drift_html(result)
    assert "Which features moved the predictions" in html
    assert html.index("Which features moved") < html.index('id="features"')


def test_non_xgboost_models_are_refused_with_a_typed_error():
    rng = np.random.default_rng(3)
    table = _window(rng, 300)
    model = train(table, "y", trainer="logistic_regression", seed=0)
    with pytest.raises(DriftError, match="needs an XGBoost model"):
        explain_drift(model, table, table)
