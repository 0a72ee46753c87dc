"""Estimated performance without labels: confidence-based performance estimation (CBPE).

When a window's labels have not arrived (they often land days or weeks later, or never), a
classifier's performance can still be estimated from its own predicted probabilities: if the
probabilities are calibrated, a row predicted class ``c`` with probability ``p`` is right with
probability ``p``, so the expected accuracy over a window is the mean of the predicted class's
probability, and the expected confusion matrix (and from it F1 or ROC AUC) follows the same way.
This is CBPE as NannyML describes it.

The estimate rests on one assumption, which every :class:`PerformanceEstimate` carries in words:
**no concept shift** — ``P(y | x)`` is the same on the window as where the probabilities were
calibrated (the reference). A covariate shift (``P(x)`` moves) is what CBPE handles; a concept
change (the same ``x`` now means another label) is invisible to it, and only realised labels or
label/prediction drift reveal it.

Calibration (:class:`Calibration`, :func:`fit_calibration`): :mod:`refit.monitoring.calibration`.

Interval: labels are drawn from the (calibrated) probabilities many times and the realised metric
computed for each draw; the interval is the central ``confidence`` quantile range of those draws,
that is, where the realised metric should fall once the labels land if the assumption holds. On a
large window the draws run on a random subsample and their spread is scaled to the window's size
(a metric's sampling spread falls as ``1/sqrt(n)``). A Platt calibration also brings bootstrap
refits of itself, and the metric's expected value under a random refit is added to each draw, so
the interval also covers the calibration's error (a holdout of 500 rows moves the expected
accuracy by about a point, the same way in every window). ``interval_method`` says what was done.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from refit.monitoring.calibration import Calibration, as_probabilities

ASSUMPTION = "no concept shift: P(y|x) unchanged; probabilities calibrated on the reference"
ESTIMABLE_METRICS = ("accuracy", "f1", "roc_auc")
METHOD = "CBPE"
MAX_SIMULATIONS = 10_000
# Simulated labels drawn per estimate at most (rows x draws); above it the draws use a subsample.
SIMULATION_BUDGET = 20_000_000


@dataclass(frozen=True)
class PerformanceEstimate:
    """A classifier's performance on a window, estimated without labels.

    Attributes:
        value: the expected metric under the assumption.
        lower: lower end of the interval for the realised metric.
        upper: upper end of the interval for the realised metric.
        metric: ``accuracy``, ``f1`` (binary, positive class = last column) or ``roc_auc`` (binary).
        n: rows the estimate is made on.
        confidence: the interval's coverage, e.g. 0.95.
        calibrated: whether the probabilities went through a fitted :class:`Calibration`.
        interval_method: how the interval was computed, in words.
        method: always ``CBPE``.
        assumption: what the estimate assumes, in words.
    """

    value: float
    lower: float
    upper: float
    metric: str
    n: int
    confidence: float
    calibrated: bool = False
    interval_method: str = ""
    method: str = METHOD
    assumption: str = ASSUMPTION

    @property
    def interval(self) -> tuple[float, float]:
        """The interval as ``(lower, upper)``."""
        return (self.lower, self.upper)

    def contains(self, realised: float) -> bool:
        """Whether a realised value falls inside the interval (bounds included)."""
        return self.lower <= realised <= self.upper

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PerformanceEstimate":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"performance estimate: unknown fields {sorted(unknown)}")
        return cls(**dict(data))


def estimate_performance(
    probabilities: np.ndarray,
    *,
    metric: str = "accuracy",
    classes: Sequence[Any] | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    calibration: Calibration | None = None,
    simulations: int = 1000,
) -> PerformanceEstimate:
    """Estimate a classifier's metric on unlabelled rows from its predicted probabilities.

    The predicted class is the column with the highest probability (for 1-D scores: positive when
    the score is above 0.5), as scikit-learn and XGBoost predict. Ranking for ``roc_auc`` uses the
    raw scores; expected labels use the calibrated probabilities.

    Args:
        probabilities: ``(n,)`` positive-class scores or ``(n, k)`` class probabilities (rows
            sum to 1).
        metric: one of :data:`ESTIMABLE_METRICS`; ``f1`` and ``roc_auc`` need binary probabilities.
        classes: the class of each column (only checked against the shape: the estimate does not
            depend on class names).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of the simulated labels behind the interval.
        calibration: a :func:`fit_calibration` result to apply first; without it the probabilities
            are taken as calibrated.
        simulations: label draws behind the interval (at most :data:`MAX_SIMULATIONS`).

    Returns:
        The :class:`PerformanceEstimate`.

    Raises:
        ValueError: bad probabilities, an unknown metric, a multiclass F1/AUC, or an AUC on rows
            where one class has no expected weight.
    """
    _check_estimate_arguments(metric, confidence, simulations)
    raw = as_probabilities(probabilities, "probabilities")
    k = 2 if raw.ndim == 1 else raw.shape[1]
    if classes is not None and len(classes) != k:
        raise ValueError(f"classes: {len(classes)} given for {k} probability columns")
    if metric != "accuracy" and k != 2:
        raise ValueError(
            f"metric: {metric} is estimated for binary classifiers only, got {k} classes"
        )
    probs = calibration.apply(raw) if calibration is not None else raw
    n = raw.shape[0]
    parts = _expected_parts(raw, probs, k)
    value = _expected(metric, *parts)

    rng = np.random.default_rng(seed)
    deviations, interval_method = _simulated_deviations(metric, parts, simulations, rng)
    if calibration is not None and calibration.replicates:
        # The calibration's own uncertainty: the expected metric under each bootstrap refit.
        values = np.array(
            [
                _expected(metric, *_expected_parts(raw, calibration.apply_replicate(raw, r), k))
                for r in range(len(calibration.replicates))
            ]
        )
        values = values[np.isfinite(values)]
        if values.size:
            pick = rng.integers(0, values.size, deviations.size)
            deviations = deviations + (values - values.mean())[pick]
            interval_method += (
                f", plus the calibration's uncertainty ({values.size} bootstrap refits on "
                f"{calibration.n} rows)"
            )
    alpha = (1.0 - float(confidence)) / 2.0
    lo_q, hi_q = np.quantile(deviations, [alpha, 1.0 - alpha])
    lower, upper = value + float(lo_q), value + float(hi_q)
    return PerformanceEstimate(
        value=value,
        lower=max(0.0, min(lower, value)),
        upper=min(1.0, max(upper, value)),
        metric=metric,
        n=n,
        confidence=float(confidence),
        calibrated=calibration is not None,
        interval_method=interval_method,
    )


def _check_estimate_arguments(metric: str, confidence: float, simulations: int) -> None:
    """Refuse an unknown metric, a confidence outside (0, 1) or a bad number of simulations."""
    if metric not in ESTIMABLE_METRICS:
        raise ValueError(
            f"metric: {metric!r} cannot be estimated; choose one of {list(ESTIMABLE_METRICS)}"
        )
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    if not (isinstance(simulations, int) and 10 <= simulations <= MAX_SIMULATIONS):
        raise ValueError(
            f"simulations: must be an integer in [10, {MAX_SIMULATIONS}], got {simulations!r}"
        )


def _simulated_deviations(
    metric: str,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    simulations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """The simulated metrics' deviations from their mean, and how they were drawn.

    On a large window the draws run on a subsample and their spread is scaled to the window.

    Raises:
        ValueError: If the metric is undefined on most draws.
    """
    score, positive, predicted_positive, correct = parts
    n = correct.shape[0]
    rows = n
    subset = None
    if n * simulations > SIMULATION_BUDGET:
        rows = max(SIMULATION_BUDGET // simulations, 1000)
        subset = np.sort(rng.choice(n, size=rows, replace=False))
    whole = subset is None or metric == "accuracy"  # accuracy uses only `correct`
    draws = _simulate(
        metric,
        correct if subset is None else correct[subset],
        positive if whole else positive[subset],
        predicted_positive if whole else predicted_positive[subset],
        score if whole else score[subset],
        simulations,
        rng,
    )
    draws = draws[np.isfinite(draws)]
    if draws.size < simulations // 2:
        raise ValueError(
            f"{metric}: undefined on most simulated label draws (one class is too rare in {n} rows)"
        )
    deviations = draws - float(draws.mean())
    interval_method = f"{draws.size} simulated label draws"
    if subset is not None:
        deviations = deviations * math.sqrt(rows / n)
        interval_method += f" on a {rows}-row subsample, spread scaled to {n} rows"
    return deviations, interval_method


def _expected_parts(
    raw: np.ndarray, probs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ranking score, positive probability, predicted positive, probability of being right."""
    if k == 2:
        score = raw if raw.ndim == 1 else raw[:, 1]
        positive = probs if probs.ndim == 1 else probs[:, 1]
        predicted_positive = score > 0.5
        correct = np.where(predicted_positive, positive, 1.0 - positive)
        return score, positive, predicted_positive, correct
    predicted = np.argmax(raw, axis=1)
    empty = np.empty(0)
    return empty, empty, empty.astype(bool), probs[np.arange(raw.shape[0]), predicted]


def _expected(
    metric: str,
    score: np.ndarray,
    positive: np.ndarray,
    predicted_positive: np.ndarray,
    correct: np.ndarray,
) -> float:
    """The metric's expected value when labels follow the probabilities."""
    if metric == "accuracy":
        return float(correct.mean())
    if metric == "f1":
        return _expected_f1(positive, predicted_positive)
    return _expected_auc(score, positive)


def _expected_f1(positive: np.ndarray, predicted_positive: np.ndarray) -> float:
    tp = float(positive[predicted_positive].sum())
    fp = float((1.0 - positive[predicted_positive]).sum())
    fn = float(positive[~predicted_positive].sum())
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else 0.0


def _expected_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """AUC of the expected ROC curve: each row is positive with weight p, negative with 1 - p."""
    weight_pos = float(positive.sum())
    weight_neg = float((1.0 - positive).sum())
    if weight_pos <= 0 or weight_neg <= 0:
        raise ValueError("roc_auc: the probabilities expect only one class in the window")
    # Weighted Mann-Whitney: sum over pairs (i pos, j neg) of [s_i > s_j] + 0.5 [s_i == s_j].
    order = np.argsort(score, kind="mergesort")
    s_sorted = score[order]
    neg_sorted = (1.0 - positive)[order]
    cum_neg = np.concatenate([[0.0], np.cumsum(neg_sorted)])
    left = np.searchsorted(s_sorted, score, side="left")
    right = np.searchsorted(s_sorted, score, side="right")
    below = cum_neg[left]
    tied = cum_neg[right] - cum_neg[left] - (1.0 - positive)  # other rows at the same score
    concordant = float((positive * (below + 0.5 * tied)).sum())
    return concordant / (weight_pos * weight_neg)


def _simulate(
    metric: str,
    correct: np.ndarray,
    positive: np.ndarray,
    predicted_positive: np.ndarray,
    score: np.ndarray,
    simulations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Realised metric on ``simulations`` label draws, computed in chunks of bounded memory."""
    from scipy.stats import rankdata

    n = correct.shape[0]
    chunk = max(1, min(simulations, 2_000_000 // max(n, 1)))
    ranks = rankdata(score) if metric == "roc_auc" else None
    pred = predicted_positive.astype(float) if metric == "f1" else None
    out = np.empty(simulations)
    done = 0
    while done < simulations:
        m = min(chunk, simulations - done)
        u = rng.random((m, n))
        if metric == "accuracy":
            out[done : done + m] = (u < correct).mean(axis=1)
        else:
            y = (u < positive).astype(float)
            n_pos = y.sum(axis=1)
            if metric == "f1":
                assert pred is not None  # set above for f1
                tp = y @ pred
                fp = pred.sum() - tp
                fn = n_pos - tp
                denominator = 2 * tp + fp + fn
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[done : done + m] = np.where(denominator > 0, 2 * tp / denominator, 0.0)
            else:
                n_neg = n - n_pos
                with np.errstate(invalid="ignore", divide="ignore"):
                    u_stat = y @ ranks - n_pos * (n_pos + 1) / 2
                    out[done : done + m] = np.where(
                        (n_pos > 0) & (n_neg > 0), u_stat / (n_pos * n_neg), np.nan
                    )
        done += m
    return out
