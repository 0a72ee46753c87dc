"""Metrics with confidence intervals, and paired challenger-vs-champion tests.

Every metric is computed by a vectorised function of a matrix of row indices (one row per
bootstrap resample), so the point value (indices ``0..n-1``), the bootstrap distribution and the
paired bootstrap of a difference all share one code path.

- Proportions (accuracy; binary precision and recall) get Wilson score intervals.
- Every other metric (F1, ROC AUC, log loss, expected calibration error, MAE, RMSE, R2) gets a
  seeded percentile bootstrap interval.
- Paired tests on the same rows: McNemar on the correct/incorrect pairs (exact binomial when the
  discordant count is small, chi-square with continuity correction otherwise), a paired bootstrap
  interval of each metric's difference (the same resampling as ``scipy.stats.bootstrap`` with
  ``paired=True`` and ``method="percentile"``), and DeLong's test for correlated ROC AUCs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeGuard

import numpy as np

from refit.errors import DataError

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "MIN_ROWS",
    "REGRESSION_METRICS",
    "Interval",
    "PairedData",
    "bootstrap_interval",
    "compute_metric",
    "delong_test",
    "higher_is_better",
    "is_number",
    "mcnemar_test",
    "metric_intervals",
    "paired_bootstrap",
    "wilson_interval",
]


def is_number(value: Any) -> TypeGuard[float]:
    """Return whether ``value`` is a real number (int, float, numpy number), bools excluded."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class _LazyScipyStats:
    """``scipy.stats``, imported on first use.

    Importing scipy.stats takes most of a second, and every pipeline task imports this module
    (through ``refit.steps``) while few of them test anything: each kfp.local task is a new
    process, so the import is paid per task (benchmarks/window_overhead.py).
    """

    def __getattr__(self, name: str) -> Any:
        from scipy import stats

        return getattr(stats, name)


sps: Any = _LazyScipyStats()

#: Classification metrics with an interval; regression metrics likewise.
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "calibration_error",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")

#: Direction of every known metric (unknown metrics are higher-is-better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "calibration_error": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}

#: Fewest rows for an interval or a paired test to mean anything.
MIN_ROWS = 30

#: Exact binomial McNemar below this many discordant pairs, chi-square above.
EXACT_MCNEMAR_BELOW = 25

_CALIBRATION_BINS = 10
_LOG_EPS = 1e-15


def higher_is_better(metric: str) -> bool:
    """Return whether larger values of ``metric`` are better (unknown metrics: True)."""
    return HIGHER_IS_BETTER.get(metric, True)


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a metric.

    Attributes:
        value: The point estimate.
        low: Lower bound.
        high: Upper bound.
        method: ``"wilson"`` or ``"bootstrap"``.
        confidence: The confidence level, e.g. 0.95.
    """

    value: float
    low: float
    high: float
    method: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "method": self.method,
            "confidence": self.confidence,
        }


@dataclass
class PairedData:
    """Per-row data of one model on a holdout, from which every metric is computed.

    Attributes:
        y_true: Class index (classification) or target value (regression), shape (n,).
        proba: Class probabilities, shape (n, k), for classification; None for regression.
        y_pred: Predicted value for regression; None for classification (argmax of proba).
    """

    y_true: np.ndarray
    proba: np.ndarray | None = None
    y_pred: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(len(self.y_true))

    @property
    def kind(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return "regression" if self.proba is None else "classification"

    @property
    def class_proba(self) -> np.ndarray:
        """The class probabilities of classification data.

        Raises:
            DataError: The data is regression data (it has no class probabilities).
        """
        if self.proba is None:
            raise DataError("regression data has no class probabilities")
        return self.proba

    def metric_names(self) -> tuple[str, ...]:
        """Metrics this data supports."""
        return REGRESSION_METRICS if self.proba is None else CLASSIFICATION_METRICS


# --------------------------------------------------------------------------- metric kernels


def _rows(idx: np.ndarray) -> np.ndarray:
    return idx if idx.ndim == 2 else idx[None, :]


def _mean_over(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[idx].mean(axis=1)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _class_counts(data: PairedData, idx: np.ndarray, c: int) -> tuple[np.ndarray, ...]:
    pred = np.argmax(data.class_proba, axis=1)
    truth = data.y_true == c
    guess = pred == c
    tp = (truth & guess)[idx].sum(axis=1).astype(np.float64)
    fp = (~truth & guess)[idx].sum(axis=1).astype(np.float64)
    fn = (truth & ~guess)[idx].sum(axis=1).astype(np.float64)
    return tp, fp, fn


def _per_class(data: PairedData, idx: np.ndarray, fn: Callable[..., np.ndarray]) -> np.ndarray:
    k = data.class_proba.shape[1]
    if k == 2:
        return fn(*_class_counts(data, idx, 1))
    return np.mean([fn(*_class_counts(data, idx, c)) for c in range(k)], axis=0)


def _precision(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_div(tp, tp + fp)


def _recall(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_div(tp, tp + fn)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def _auc_binary(labels: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each resample (midranks handle ties); NaN with one class."""
    y = labels[idx].astype(np.float64)
    s = scores[idx]
    ranks = sps.rankdata(s, axis=1)
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    u = (ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def _roc_auc(data: PairedData, idx: np.ndarray) -> np.ndarray:
    k = data.class_proba.shape[1]
    if k == 2:
        return _auc_binary(data.y_true == 1, data.class_proba[:, 1], idx)
    aucs = np.stack([_auc_binary(data.y_true == c, data.class_proba[:, c], idx) for c in range(k)])
    with np.errstate(invalid="ignore"):
        return np.nanmean(aucs, axis=0) if np.any(np.isfinite(aucs)) else aucs[0]


def _log_loss(data: PairedData, idx: np.ndarray) -> np.ndarray:
    p = data.class_proba[np.arange(data.n), data.y_true.astype(np.int64)]
    losses = -np.log(np.clip(p, _LOG_EPS, 1.0))
    return _mean_over(losses, idx)


def _calibration_error(data: PairedData, idx: np.ndarray) -> np.ndarray:
    """Expected calibration error: |confidence - accuracy| over 10 equal-width bins, weighted."""
    conf = data.class_proba.max(axis=1)
    correct = (np.argmax(data.class_proba, axis=1) == data.y_true).astype(np.float64)
    bins = np.minimum((conf * _CALIBRATION_BINS).astype(np.int64), _CALIBRATION_BINS - 1)
    gap = conf - correct
    total = np.zeros(idx.shape[0])
    for b in np.unique(bins):
        total += np.abs(np.where(bins == b, gap, 0.0)[idx].sum(axis=1))
    return total / idx.shape[1]


def _residuals(data: PairedData) -> np.ndarray:
    return np.asarray(data.y_pred, dtype=np.float64) - np.asarray(data.y_true, dtype=np.float64)


def _r2(data: PairedData, idx: np.ndarray) -> np.ndarray:
    y = np.asarray(data.y_true, dtype=np.float64)[idx]
    sse = (_residuals(data) ** 2)[idx].sum(axis=1)
    sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1), np.nan)


_KERNELS: dict[str, Callable[[PairedData, np.ndarray], np.ndarray]] = {
    "accuracy": lambda d, i: _mean_over(
        (np.argmax(d.class_proba, axis=1) == d.y_true).astype(float), i
    ),
    "precision": lambda d, i: _per_class(d, i, _precision),
    "recall": lambda d, i: _per_class(d, i, _recall),
    "f1": lambda d, i: _per_class(d, i, _f1),
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
    "calibration_error": _calibration_error,
    "mae": lambda d, i: _mean_over(np.abs(_residuals(d)), i),
    "rmse": lambda d, i: np.sqrt(_mean_over(_residuals(d) ** 2, i)),
    "r2": _r2,
}


def compute_metric(name: str, data: PairedData, idx: np.ndarray | None = None) -> np.ndarray:
    """Compute a metric on the rows in ``idx`` (each row of a 2-D ``idx`` is one resample).

    Args:
        name: A metric of :data:`CLASSIFICATION_METRICS` or :data:`REGRESSION_METRICS`.
        data: The model's per-row data.
        idx: Row indices, shape (n,) or (B, n); None means all rows once.

    Returns:
        The metric per resample, shape (B,) (shape (1,) for a 1-D or absent ``idx``).

    Raises:
        DataError: The metric is unknown or does not apply to the data's kind.
    """
    if name not in data.metric_names():
        raise DataError(
            f"metric {name!r} is not a {data.kind} metric; known: {list(data.metric_names())}"
        )
    rows = np.arange(data.n)[None, :] if idx is None else _rows(np.asarray(idx))
    return np.asarray(_KERNELS[name](data, rows), dtype=np.float64)


# --------------------------------------------------------------------------- intervals


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Args:
        successes: Count of successes.
        n: Count of trials (> 0).
        confidence: Two-sided confidence level.

    Returns:
        ``(low, high)``.

    Raises:
        DataError: ``n`` is not positive or ``successes`` is outside ``[0, n]``.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise DataError(f"Wilson interval needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


#: Most indices held in memory at once (resamples x rows); bigger jobs run in batches.
MAX_BATCH_ELEMENTS = 8_000_000


def _resample_batches(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the bootstrap row indices in batches of resamples, bounded in memory.

    The draws are those of ``scipy.stats.bootstrap``: ``rng.integers(0, n, (n_resamples, n))``
    from ``np.random.default_rng(seed)``; drawing them batch by batch consumes the generator in
    the same order, so the indices are identical.
    """
    rng = np.random.default_rng(seed)
    step = max(1, MAX_BATCH_ELEMENTS // max(n, 1))
    done = 0
    while done < n_resamples:
        size = min(step, n_resamples - done)
        yield rng.integers(0, n, (size, n))
        done += size


def _distribution(
    fn: Callable[[np.ndarray], np.ndarray], n: int, n_resamples: int, seed: int
) -> np.ndarray:
    return np.concatenate([fn(idx) for idx in _resample_batches(n, n_resamples, seed)])


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    low, high = np.percentile(finite, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def bootstrap_interval(
    name: str,
    data: PairedData,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Seeded percentile bootstrap interval of one metric.

    Args:
        name: Metric name.
        data: The model's per-row data.
        confidence: Two-sided confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        The interval around the metric's value on all rows.
    """
    value = float(compute_metric(name, data)[0])
    dist = _distribution(lambda i: compute_metric(name, data, i), data.n, n_resamples, seed)
    low, high = _percentile(dist, confidence)
    return Interval(value, low, high, "bootstrap", confidence)


def _proportion_counts(name: str, data: PairedData) -> tuple[int, int] | None:
    if data.proba is None:
        return None
    pred = np.argmax(data.proba, axis=1)
    if name == "accuracy":
        return int((pred == data.y_true).sum()), data.n
    if data.proba.shape[1] != 2:
        return None  # macro averages are not proportions
    if name == "precision":
        return int(((pred == 1) & (data.y_true == 1)).sum()), int((pred == 1).sum())
    if name == "recall":
        return int(((pred == 1) & (data.y_true == 1)).sum()), int((data.y_true == 1).sum())
    return None


def metric_intervals(
    data: PairedData,
    *,
    metrics: tuple[str, ...] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Interval]:
    """Every metric of ``data`` with its confidence interval.

    Proportions (accuracy; binary precision and recall) get Wilson intervals, the others a
    seeded bootstrap (one shared set of resamples). Metrics undefined on the data (e.g. ROC AUC
    with one class) are left out.

    Args:
        data: The model's per-row data.
        metrics: Metrics to compute (default: all of the data's kind).
        confidence: Two-sided confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        Metric name -> :class:`Interval`.
    """
    names = metrics or data.metric_names()
    out: dict[str, Interval] = {}
    for name in names:
        value = float(compute_metric(name, data)[0])
        if not math.isfinite(value):
            continue
        counts = _proportion_counts(name, data)
        if counts is not None and counts[1] > 0:
            low, high = wilson_interval(counts[0], counts[1], confidence)
            out[name] = Interval(value, low, high, "wilson", confidence)
            continue
        dist = _distribution(partial(compute_metric, name, data), data.n, n_resamples, seed)
        low, high = _percentile(dist, confidence)
        out[name] = Interval(value, low, high, "bootstrap", confidence)
    return out


# --------------------------------------------------------------------------- paired tests


def paired_bootstrap(
    name: str,
    challenger: PairedData,
    champion: PairedData,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric(challenger) - metric(champion)`` on paired rows.

    Both models are scored on the same resampled rows each time, which is what
    ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` does.

    Args:
        name: Metric name.
        challenger: Challenger's per-row data.
        champion: Champion's per-row data on the same rows.
        confidence: Two-sided confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        The interval of the raw difference (challenger minus champion).

    Raises:
        DataError: The two have a different number of rows.
    """
    if challenger.n != champion.n:
        raise DataError(
            f"paired test needs the same rows: challenger has {challenger.n}, champion {champion.n}"
        )
    value = float(compute_metric(name, challenger)[0] - compute_metric(name, champion)[0])
    diffs = _distribution(
        lambda i: compute_metric(name, challenger, i) - compute_metric(name, champion, i),
        challenger.n,
        n_resamples,
        seed,
    )
    low, high = _percentile(diffs, confidence)
    return Interval(value, low, high, "bootstrap", confidence)


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test of paired correctness (model A vs model B on the same rows).

    Exact (two-sided binomial, p = 0.5 on the discordant pairs) when fewer than
    ``EXACT_MCNEMAR_BELOW`` discordant pairs, else chi-square with continuity correction; the
    same numbers as ``statsmodels.stats.contingency_tables.mcnemar`` with ``exact`` set
    accordingly.

    Args:
        correct_a: Boolean per row: model A right.
        correct_b: Boolean per row: model B right.

    Returns:
        ``{"b": A right & B wrong, "c": A wrong & B right, "discordant", "statistic",
        "p_value", "method": "exact" | "chi2"}``.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "discordant": 0, "statistic": 0.0, "p_value": 1.0,
                "method": "exact"}  # fmt: skip
    if n < EXACT_MCNEMAR_BELOW:
        statistic = float(min(b, c))
        p = float(min(1.0, 2 * sps.binom.cdf(min(b, c), n, 0.5)))
        method = "exact"
    else:
        statistic = float((abs(b - c) - 1) ** 2 / n)
        p = float(sps.chi2.sf(statistic, 1))
        method = "chi2"
    return {"b": b, "c": c, "discordant": n, "statistic": statistic, "p_value": p,
            "method": method}  # fmt: skip


def _placements(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placement values (V10 for positives, V01 for negatives), midranks for ties."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    r_all = sps.rankdata(scores)
    r_pos = sps.rankdata(pos)
    r_neg = sps.rankdata(neg)
    v10 = (r_all[positive] - r_pos) / n
    v01 = 1.0 - (r_all[~positive] - r_neg) / m
    return v10, v01


def delong_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict[str, Any]:
    """DeLong's test of two correlated ROC AUCs on the same rows (binary labels).

    Args:
        y_true: Boolean (or 0/1) labels, True = positive.
        scores_a: Model A's positive-class scores.
        scores_b: Model B's positive-class scores.

    Returns:
        ``{"auc_a", "auc_b", "difference", "se", "z", "p_value"}`` (two-sided).

    Raises:
        DataError: Fewer than two positives or two negatives.
    """
    y = np.asarray(y_true).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise DataError(
            f"DeLong's test needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    v10a, v01a = _placements(np.asarray(scores_a, dtype=np.float64), y)
    v10b, v01b = _placements(np.asarray(scores_b, dtype=np.float64), y)
    auc_a, auc_b = float(v10a.mean()), float(v10b.mean())
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    if var <= 0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p = 1.0 if diff == 0 else 0.0
        se = 0.0
    else:
        se = math.sqrt(var)
        z = diff / se
        p = float(2 * sps.norm.sf(abs(z)))
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": diff, "se": se, "z": z, "p_value": p}
