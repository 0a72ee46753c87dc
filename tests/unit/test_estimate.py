"""Label-free performance estimation (CBPE): close to the realised metric where its assumption
holds (covariate shift), blind where it does not (concept shift), and honest about both."""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from refit.monitoring import (
    ASSUMPTION,
    Calibration,
    PerformanceEstimate,
    estimate_performance,
    fit_calibration,
)

WEIGHTS = np.array([1.5, -1.0])


def _population(rng, n, shift=0.0, concept=False):
    """Two features; P(y=1|x) fixed (a logistic curve) unless ``concept``."""
    x = rng.normal(0.0, 1.0, (n, 2)) + np.array([shift, 0.5 * shift])
    w = np.array([-1.0, 1.5]) if concept else WEIGHTS
    p = 1.0 / (1.0 + np.exp(-(x @ w)))
    return x, (rng.random(n) < p).astype(int)


@pytest.fixture(scope="module")
def model_and_holdout():
    rng = np.random.default_rng(0)
    x, y = _population(rng, 6000)
    model = LogisticRegression().fit(x[:4000], y[:4000])
    return model, x[4000:], y[4000:]


def test_cbpe_follows_a_covariate_shift_within_its_interval(model_and_holdout):
    model, hx, hy = model_and_holdout
    calibration = fit_calibration(model.predict_proba(hx), hy)
    rng = np.random.default_rng(1)
    realised_by_shift = {}
    for shift in (0.0, 2.0):
        x, y = _population(rng, 5000, shift=shift)
        proba = model.predict_proba(x)
        estimate = estimate_performance(proba, calibration=calibration, seed=3)
        realised = accuracy_score(y, proba.argmax(axis=1))
        realised_by_shift[shift] = realised
        assert estimate.contains(realised), (shift, estimate, realised)
        assert abs(estimate.value - realised) < 0.02
        assert estimate.calibrated and estimate.method == "CBPE" and estimate.n == 5000
    # the shift moved the realised accuracy, and the estimate followed it
    assert abs(realised_by_shift[0.0] - realised_by_shift[2.0]) > 0.04


def test_cbpe_cannot_see_a_concept_shift_and_says_what_it_assumes(model_and_holdout):
    model, _, _ = model_and_holdout
    x, y = _population(np.random.default_rng(2), 5000, concept=True)
    proba = model.predict_proba(x)
    estimate = estimate_performance(proba)
    realised = accuracy_score(y, proba.argmax(axis=1))
    assert realised < estimate.lower - 0.1  # the estimate is blind to P(y|x) changing
    assert estimate.assumption == ASSUMPTION
    assert "no concept shift" in estimate.assumption


def test_interval_covers_the_realised_accuracy_about_as_often_as_it_says():
    rng = np.random.default_rng(4)
    inside = 0
    trials = 200
    for seed in range(trials):
        p = rng.beta(2, 2, 400)
        y = (rng.random(400) < p).astype(int)
        estimate = estimate_performance(p, seed=seed, simulations=400)
        inside += estimate.contains(accuracy_score(y, p > 0.5))
    assert 0.90 <= inside / trials <= 0.99


@pytest.mark.parametrize("metric", ["f1", "roc_auc"])
def test_f1_and_auc_estimates_match_calibrated_scores(metric):
    rng = np.random.default_rng(5)
    p = rng.beta(2, 3, 20000)
    y = (rng.random(20000) < p).astype(int)
    estimate = estimate_performance(np.column_stack([1 - p, p]), metric=metric, seed=1)
    realised = f1_score(y, p > 0.5) if metric == "f1" else roc_auc_score(y, p)
    assert estimate.contains(realised)
    assert abs(estimate.value - realised) < 0.015
    assert estimate.upper - estimate.lower < 0.05


def _logit(p):
    return np.log(p / (1 - p))


@pytest.mark.parametrize(
    ("method", "distort", "rows"),
    [
        # boosted trees' usual flaw: too confident (a temperature): Platt's two parameters fix it
        ("platt", lambda p: 1 / (1 + np.exp(-3.0 * _logit(p))), 6000),
        # any monotone distortion: isotonic fixes it, given rows enough
        ("isotonic", lambda p: 1 / (1 + np.exp(-16.0 * (p - 0.5))), 20000),
    ],
)
def test_uncalibrated_scores_mislead_and_calibration_on_a_holdout_fixes_it(method, distort, rows):
    rng = np.random.default_rng(6)
    true_p = rng.beta(2, 2, rows + 8000)
    y = (rng.random(rows + 8000) < true_p).astype(int)
    scores = distort(true_p)  # same ranking, not calibrated
    holdout, window = slice(0, rows), slice(rows, None)
    realised = accuracy_score(y[window], scores[window] > 0.5)
    raw = estimate_performance(scores[window])
    assert raw.value - realised > 0.1 and not raw.contains(realised)
    calibration = fit_calibration(scores[holdout], y[holdout], method=method)
    assert calibration.method == method
    fixed = estimate_performance(scores[window], calibration=calibration)
    assert fixed.contains(realised) and abs(fixed.value - realised) < 0.015
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration


def test_multiclass_accuracy_and_class_names():
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 2, (8000, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in proba])
    estimate = estimate_performance(proba, classes=["a", "b", "c"])
    assert estimate.contains(accuracy_score(y, proba.argmax(axis=1)))
    labels = np.array(["a", "b", "c"])[y]
    calibration = fit_calibration(proba[:3000], labels[:3000], classes=["a", "b", "c"])
    calibrated = calibration.apply(proba[3000:])
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert np.allclose(calibration.apply_replicate(proba[3000:], 0).sum(axis=1), 1.0)
    calibrated_estimate = estimate_performance(proba[3000:], calibration=calibration)
    assert calibrated_estimate.contains(accuracy_score(y[3000:], proba[3000:].argmax(axis=1)))


def test_a_large_window_draws_on_a_subsample_and_scales_the_spread():
    rng = np.random.default_rng(8)
    p = rng.beta(2, 2, 300_000)
    y = (rng.random(300_000) < p).astype(int)
    estimate = estimate_performance(p, simulations=1000)
    assert "subsample" in estimate.interval_method
    assert estimate.contains(accuracy_score(y, p > 0.5))
    # the interval has the width of 300,000 rows, not of the subsample
    assert estimate.upper - estimate.lower < 0.006


def test_estimate_round_trips_as_json():
    estimate = estimate_performance(np.array([0.9, 0.2, 0.7, 0.4]), seed=0, simulations=50)
    again = PerformanceEstimate.from_dict(json.loads(json.dumps(estimate.to_dict())))
    assert again == estimate
    assert estimate.interval == (estimate.lower, estimate.upper)
    assert estimate.value == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    with pytest.raises(ValueError, match="unknown fields"):
        PerformanceEstimate.from_dict({**estimate.to_dict(), "extra": 1})


@pytest.mark.parametrize(
    ("probabilities", "kwargs", "message"),
    [
        (np.array([0.2, np.nan]), {}, "NaN"),
        (np.array([[0.2, 0.5]]), {}, "sum to 1"),
        (np.array([1.2]), {}, r"\[0, 1\]"),
        (np.empty(0), {}, "no rows"),
        (np.array([0.2, 0.8]), {"metric": "rmse"}, "cannot be estimated"),
        (np.full((2, 3), 1 / 3), {"metric": "f1"}, "binary"),
        (np.array([0.2, 0.8]), {"confidence": 1.5}, "confidence"),
        (np.array([0.2, 0.8]), {"classes": ["a", "b", "c"]}, "classes"),
        (np.array([0.2, 0.8]), {"simulations": 1}, "simulations"),
    ],
)
def test_bad_input_is_named(probabilities, kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_performance(probabilities, **kwargs)


def test_calibration_refuses_bad_labels():
    p = np.linspace(0.01, 0.99, 40)
    with pytest.raises(ValueError, match="not one of the classes"):
        fit_calibration(p, ["x"] * 40)
    with pytest.raises(ValueError, match="two classes"):
        fit_calibration(p, [1] * 40)
    with pytest.raises(ValueError, match="at least 20"):
        fit_calibration(p[:5], [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="one per probability row"):
        fit_calibration(p, [0, 1])


def test_a_small_calibration_holdout_widens_the_interval_to_cover_its_own_error():
    rng = np.random.default_rng(9)
    covered = {"with": 0, "without": 0}
    trials = 20
    for trial in range(trials):
        # each trial: its own 300-row holdout, one 5,000-row window
        true_p = rng.beta(2, 2, 5300)
        y = (rng.random(true_p.size) < true_p).astype(int)
        scores = 1 / (1 + np.exp(-3.0 * _logit(true_p)))  # overconfident
        calibration = fit_calibration(scores[:300], y[:300], seed=trial)
        assert len(calibration.replicates) == 100
        narrow = dataclasses.replace(calibration, replicates=())
        realised = accuracy_score(y[300:], scores[300:] > 0.5)
        wide = estimate_performance(scores[300:], calibration=calibration, seed=trial)
        bare = estimate_performance(scores[300:], calibration=narrow, seed=trial)
        assert (
            "calibration's uncertainty (100 bootstrap refits on 300 rows)" in wide.interval_method
        )
        assert wide.upper - wide.lower > 1.5 * (bare.upper - bare.lower)
        covered["with"] += wide.contains(realised)
        covered["without"] += bare.contains(realised)
    # label noise alone understates the error of a 300-row calibration; with it, ~95% coverage
    assert covered["with"] >= 18
    assert covered["without"] <= covered["with"] - 3
