"""Metrics with intervals and paired tests, each held to an independent reference."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from refit.errors import DataError
from refit.evaluation.stats import (
    PairedData,
    bootstrap_interval,
    compute_metric,
    delong_test,
    mcnemar_test,
    metric_intervals,
    paired_bootstrap,
    wilson_interval,
)


def _binary(n: int, seed: int, sharp: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    logit_a = sharp * (2 * y - 1) + rng.normal(size=n)
    logit_b = 0.8 * sharp * (2 * y - 1) + rng.normal(size=n)
    pa_ = 1 / (1 + np.exp(-logit_a))
    pb = 1 / (1 + np.exp(-logit_b))
    return y, np.column_stack([1 - pa_, pa_]), np.column_stack([1 - pb, pb])


def test_point_metrics_match_sklearn():
    y, pa_, _ = _binary(400, 0)
    d = PairedData(y, pa_)
    pred = pa_.argmax(1)
    got = {m: float(compute_metric(m, d)[0]) for m in d.metric_names()}
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(precision_score(y, pred))
    assert got["recall"] == pytest.approx(recall_score(y, pred))
    assert got["f1"] == pytest.approx(f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, pa_[:, 1]))
    assert got["log_loss"] == pytest.approx(log_loss(y, pa_))
    # calibration error from its definition: 10 equal-width confidence bins
    conf, correct = pa_.max(1), (pred == y)
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(abs((conf - correct)[bins == b].sum()) for b in range(10)) / len(y)
    assert got["calibration_error"] == pytest.approx(ece)


def test_multiclass_macro_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(1, keepdims=True)
    d = PairedData(y, proba)
    pred = proba.argmax(1)
    assert compute_metric("f1", d)[0] == pytest.approx(f1_score(y, pred, average="macro"))
    assert compute_metric("recall", d)[0] == pytest.approx(recall_score(y, pred, average="macro"))
    assert compute_metric("roc_auc", d)[0] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr")
    )


def test_regression_metrics_and_intervals():
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    pred = y + 0.3 * rng.normal(size=200)
    d = PairedData(y, y_pred=pred)
    assert compute_metric("mae", d)[0] == pytest.approx(mean_absolute_error(y, pred))
    assert compute_metric("rmse", d)[0] == pytest.approx(math.sqrt(np.mean((y - pred) ** 2)))
    assert compute_metric("r2", d)[0] == pytest.approx(r2_score(y, pred))
    iv = metric_intervals(d, seed=1)
    assert set(iv) == {"mae", "rmse", "r2"}
    for i in iv.values():
        assert i.method == "bootstrap" and i.low < i.value < i.high
    with pytest.raises(DataError, match="'accuracy' is not a regression metric"):
        compute_metric("accuracy", d)


def test_wilson_matches_statsmodels_and_proportions_use_it():
    for k, n in [(0, 10), (3, 10), (45, 50), (500, 1000), (10, 10)]:
        low, high = wilson_interval(k, n, 0.95)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (low, high) == pytest.approx(ref, abs=1e-12)
    y, pa_, _ = _binary(300, 2)
    iv = metric_intervals(PairedData(y, pa_), seed=0)
    assert iv["accuracy"].method == iv["precision"].method == iv["recall"].method == "wilson"
    assert iv["f1"].method == iv["roc_auc"].method == iv["log_loss"].method == "bootstrap"
    k = int((pa_.argmax(1) == y).sum())
    assert (iv["accuracy"].low, iv["accuracy"].high) == pytest.approx(wilson_interval(k, 300))
    with pytest.raises(DataError):
        wilson_interval(3, 0)


def test_bootstrap_interval_is_seeded_and_matches_scipy():
    y, pa_, _ = _binary(250, 4)
    d = PairedData(y, pa_)
    a = bootstrap_interval("roc_auc", d, seed=11, n_resamples=300)
    assert a == bootstrap_interval("roc_auc", d, seed=11, n_resamples=300)
    ref = sps.bootstrap(
        (y, pa_[:, 1]),
        lambda yy, ss: roc_auc_score(yy, ss),
        paired=True,
        vectorized=False,
        n_resamples=300,
        method="percentile",
        rng=np.random.default_rng(11),
    ).confidence_interval
    assert (a.low, a.high) == pytest.approx((ref.low, ref.high), abs=1e-3)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc", "log_loss"])
def test_paired_bootstrap_difference_matches_scipy_paired(metric):
    y, pa_, pb = _binary(300, 5)
    ours = paired_bootstrap(metric, PairedData(y, pa_), PairedData(y, pb), n_resamples=200, seed=3)
    fns = {
        "accuracy": lambda yy, p: accuracy_score(yy, p.argmax(1)),
        "f1": lambda yy, p: f1_score(yy, p.argmax(1)),
        "roc_auc": lambda yy, p: roc_auc_score(yy, p[:, 1]),
        "log_loss": lambda yy, p: log_loss(yy, p, labels=[0, 1]),
    }
    fn = fns[metric]
    n = len(y)

    def stat(i):
        i = i.astype(int)
        return fn(y[i], pa_[i]) - fn(y[i], pb[i])

    ref = sps.bootstrap(
        (np.arange(n),),
        stat,
        vectorized=False,
        n_resamples=200,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert ours.value == pytest.approx(fn(y, pa_) - fn(y, pb))
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=2e-3)


def test_paired_bootstrap_needs_same_rows():
    y, pa_, pb = _binary(50, 1)
    with pytest.raises(DataError, match="same rows"):
        paired_bootstrap("accuracy", PairedData(y, pa_), PairedData(y[:40], pb[:40]))


@pytest.mark.parametrize(
    ("n", "flip_a", "flip_b"), [(200, 0.05, 0.08), (60, 0.1, 0.12), (1000, 0.2, 0.25), (40, 0, 0)]
)
def test_mcnemar_matches_statsmodels(n, flip_a, flip_b):
    rng = np.random.default_rng(n)
    a = rng.random(n) > flip_a
    b = rng.random(n) > flip_b
    got = mcnemar_test(a, b)
    table = [[int((a & b).sum()), got["b"]], [got["c"], int((~a & ~b).sum())]]
    exact = got["method"] == "exact"
    ref = sm_mcnemar(table, exact=exact, correction=True)
    assert got["p_value"] == pytest.approx(float(ref.pvalue), abs=1e-12)
    assert got["statistic"] == pytest.approx(float(ref.statistic))
    assert exact == (got["discordant"] < 25)


def _delong_from_definition(y, s1, s2):
    """Slow DeLong from the placement values' definition (psi = 1, 1/2 on ties, 0)."""
    pos = [i for i in range(len(y)) if y[i]]
    neg = [i for i in range(len(y)) if not y[i]]

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    def placements(s):
        v10 = [sum(psi(s[i], s[j]) for j in neg) / len(neg) for i in pos]
        v01 = [sum(psi(s[i], s[j]) for i in pos) / len(pos) for j in neg]
        return v10, v01

    a10, a01 = placements(s1)
    b10, b01 = placements(s2)
    auc1, auc2 = sum(a10) / len(pos), sum(b10) / len(pos)

    def cov(u, v):
        mu, mv = sum(u) / len(u), sum(v) / len(v)
        return sum((x - mu) * (z - mv) for x, z in zip(u, v, strict=True)) / (len(u) - 1)

    var = (cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10)) / len(pos) + (
        cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01)
    ) / len(neg)
    z = (auc1 - auc2) / math.sqrt(var)
    return auc1, auc2, 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_definition(seed):
    y, pa_, pb = _binary(120, seed, sharp=0.6)
    s1 = np.round(pa_[:, 1], 2)  # rounding creates ties
    s2 = pb[:, 1]
    got = delong_test(y == 1, s1, s2)
    auc1, auc2, p = _delong_from_definition(list(y == 1), list(s1), list(s2))
    assert got["auc_a"] == pytest.approx(auc1) == pytest.approx(roc_auc_score(y, s1))
    assert got["auc_b"] == pytest.approx(auc2)
    assert got["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-12)


def test_delong_refuses_too_few_of_a_class():
    with pytest.raises(DataError, match="at least 2 positives and 2 negatives"):
        delong_test(np.array([1, 0, 0, 0]), np.arange(4.0), np.arange(4.0))


def test_batched_resampling_gives_the_same_intervals(monkeypatch):
    from refit.evaluation import stats

    y, pa_, pb = _binary(300, 8)
    a, b = PairedData(y, pa_), PairedData(y, pb)
    whole = paired_bootstrap("roc_auc", a, b, n_resamples=300, seed=5)
    single = metric_intervals(a, seed=5, n_resamples=300)
    monkeypatch.setattr(stats, "MAX_BATCH_ELEMENTS", 300 * 7)  # batches of 7 resamples
    assert paired_bootstrap("roc_auc", a, b, n_resamples=300, seed=5) == whole
    assert metric_intervals(a, seed=5, n_resamples=300) == single
