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

Calibration: raw model scores are often not calibrated (boosted trees in particular). Fit a
:class:`Calibration` with :func:`fit_calibration` on labelled reference data the model did not
train on (the holdout), and pass it to :func:`estimate_performance`; it maps each class's score
through a monotone curve (Platt's sigmoid by default, isotonic on request) and renormalises the
rows. Never calibrate on the training rows: a model is surest of the rows it has seen.

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

ASSUMPTION = "no concept shift: P(y|x) unchanged; probabilities calibrated on the reference"
ESTIMABLE_METRICS = ("accuracy", "f1", "roc_auc")
METHOD = "CBPE"
MAX_ROWS = 50_000_000
MAX_SIMULATIONS = 10_000
# Simulated labels drawn per estimate at most (rows x draws); above it the draws use a subsample.
SIMULATION_BUDGET = 20_000_000
MIN_CALIBRATION_ROWS = 20
CALIBRATION_METHODS = ("platt", "isotonic")
# Bootstrap refits of a Platt calibration kept to carry its uncertainty into the interval.
CALIBRATION_REPLICATES = 100
_PLATT_EPS = 1e-6
_PLATT_RIDGE = 1e-6
# Scores Platt's curve is tabulated at: 0, 1 and a logit grid fine enough that linear
# interpolation between knots is within 1e-3 of the sigmoid.
_PLATT_GRID = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-np.linspace(-14, 14, 561))), [1.0]])
_ROW_SUM_TOLERANCE = 1e-3


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


@dataclass(frozen=True)
class Calibration:
    """Per-class monotone maps from a model's scores to calibrated probabilities.

    Attributes:
        curves: one ``(x, y)`` pair of knot tuples per probability column (a single curve for
            binary scores: the positive class), applied by linear interpolation, clipped at the
            ends.
        n: labelled rows the curves were fitted on.
        method: ``platt`` or ``isotonic`` (how the curves were fitted).
        replicates: Platt only: the ``(a, b)`` of each class's sigmoid refitted on bootstrap
            resamples of the calibration rows, one tuple per resample. They carry the
            calibration's own uncertainty (a holdout of a few hundred rows moves the expected
            accuracy by about a point) into :func:`estimate_performance`'s interval.
    """

    curves: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]
    n: int
    method: str = "platt"
    replicates: tuple[tuple[tuple[float, float], ...], ...] = ()

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrate probabilities shaped like those the calibration was fitted on.

        Args:
            probabilities: ``(n,)`` positive-class scores or ``(n, k)`` class probabilities.

        Returns:
            Calibrated probabilities of the same shape; rows of a 2-D array sum to 1.

        Raises:
            ValueError: the shape does not match the fitted curves.
        """
        probs = _as_probabilities(probabilities, "probabilities")
        if probs.ndim == 1 or probs.shape[1] == 2:
            if len(self.curves) != 1:
                raise ValueError(
                    f"calibration: fitted for {len(self.curves)} classes, got binary probabilities"
                )
            x, y = self.curves[0]
            positive = np.interp(probs if probs.ndim == 1 else probs[:, 1], x, y)
            if probs.ndim == 1:
                return positive
            return np.column_stack([1.0 - positive, positive])
        if probs.shape[1] != len(self.curves):
            raise ValueError(
                f"calibration: fitted for {len(self.curves)} classes, "
                f"got {probs.shape[1]} probability columns"
            )
        out = np.column_stack(
            [np.interp(probs[:, j], x, y) for j, (x, y) in enumerate(self.curves)]
        )
        sums = out.sum(axis=1, keepdims=True)
        # A row every curve maps to 0 keeps its raw probabilities rather than dividing by zero.
        return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), probs)

    def apply_replicate(self, probabilities: np.ndarray, index: int) -> np.ndarray:
        """Calibrate with bootstrap replicate ``index`` of a Platt calibration (see ``apply``)."""
        probs = _as_probabilities(probabilities, "probabilities")
        coefficients = self.replicates[index]
        if probs.ndim == 1 or probs.shape[1] == 2:
            ((a, b),) = coefficients
            positive = _sigmoid(a * _logit(probs if probs.ndim == 1 else probs[:, 1]) + b)
            if probs.ndim == 1:
                return positive
            return np.column_stack([1.0 - positive, positive])
        out = np.column_stack(
            [_sigmoid(a * _logit(probs[:, j]) + b) for j, (a, b) in enumerate(coefficients)]
        )
        return out / out.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "method": self.method,
            "n": self.n,
            "curves": [{"x": list(x), "y": list(y)} for x, y in self.curves],
            "replicates": [[list(ab) for ab in r] for r in self.replicates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        """Inverse of :meth:`to_dict`."""
        try:
            curves = tuple(
                (tuple(float(v) for v in c["x"]), tuple(float(v) for v in c["y"]))
                for c in data["curves"]
            )
            replicates = tuple(
                tuple((float(a), float(b)) for a, b in r) for r in data.get("replicates", ())
            )
            return cls(
                curves=curves,
                n=int(data["n"]),
                method=str(data.get("method", "platt")),
                replicates=replicates,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration: malformed dict ({exc})") from exc


def fit_calibration(
    probabilities: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    *,
    classes: Sequence[Any] | None = None,
    method: str = "platt",
    seed: int = 0,
) -> Calibration:
    """Fit calibration curves on labelled data the model did not train on.

    ``platt`` (the default) fits ``sigmoid(a * logit(p) + b)`` per class: two parameters, so a
    holdout of a few hundred rows is enough, and it corrects the usual over- or under-confidence
    of boosted trees and forests. ``isotonic`` fits any monotone curve but needs thousands of
    rows: on a small holdout its noise makes the probabilities more extreme and the expected
    accuracy optimistic (about +0.015 at 2,000 rows on an already calibrated model). Either is
    stored as knots of a piecewise-linear curve (Platt's sigmoid tabulated on a fine grid).

    Args:
        probabilities: the model's ``(n,)`` positive-class scores or ``(n, k)`` class probabilities.
        labels: the true labels of the same rows.
        classes: the class of each probability column (the model's ``classes_``); default
            ``0..k-1`` (for 1-D scores: 0 and 1, booleans accepted).
        method: ``platt`` or ``isotonic``.
        seed: seed of the bootstrap resamples behind ``replicates`` (Platt).

    Returns:
        The fitted :class:`Calibration`.

    Raises:
        ValueError: shapes disagree, too few rows, a label outside ``classes``, or one class only.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method: {method!r} is not one of {list(CALIBRATION_METHODS)}")
    probs = _as_probabilities(probabilities, "probabilities")
    n = probs.shape[0]
    labels_arr = np.asarray(labels)
    if labels_arr.ndim != 1 or labels_arr.shape[0] != n:
        raise ValueError(
            f"labels: expected {n} labels (one per probability row), got shape {labels_arr.shape}"
        )
    if n < MIN_CALIBRATION_ROWS:
        raise ValueError(
            f"calibration needs at least {MIN_CALIBRATION_ROWS} labelled rows, got {n}"
        )
    k = 2 if probs.ndim == 1 else probs.shape[1]
    index = _label_index(labels_arr, _classes(classes, k))
    if np.unique(index).size < 2:
        raise ValueError("labels: calibration needs at least two classes among the labels")
    columns = [1] if k == 2 else list(range(k))
    curves = []
    for j in columns:
        score = probs if probs.ndim == 1 else probs[:, j]
        target = (index == j).astype(float)
        if method == "isotonic":
            curves.append(_isotonic_curve(score, target))
        else:
            a, b = _platt(score, target)
            x = _PLATT_GRID
            curves.append(
                (tuple(float(v) for v in x), tuple(float(v) for v in _sigmoid(a * _logit(x) + b)))
            )
    replicates: list[tuple[tuple[float, float], ...]] = []
    if method == "platt":
        rng = np.random.default_rng(seed)
        while len(replicates) < CALIBRATION_REPLICATES:
            pick = rng.integers(0, n, n)
            if np.unique(index[pick]).size < 2:
                continue  # a resample with one class cannot be fitted; draw again
            replicates.append(
                tuple(
                    _platt(
                        (probs if probs.ndim == 1 else probs[:, j])[pick],
                        (index[pick] == j).astype(float),
                    )
                    for j in columns
                )
            )
    return Calibration(curves=tuple(curves), n=n, method=method, replicates=tuple(replicates))


def _isotonic_curve(
    score: np.ndarray, target: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(score, target)
    return tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _PLATT_EPS, 1.0 - _PLATT_EPS)
    return np.log(p / (1.0 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _platt(score: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` of ``sigmoid(a * logit(score) + b)`` fitted to the targets.

    Newton's method on the (convex) log loss with a tiny ridge, which keeps separable data finite;
    a few iterations converge, far cheaper than a general solver for the bootstrap refits.
    """
    x = np.column_stack([_logit(score), np.ones(score.shape[0])])
    ridge = _PLATT_RIDGE * np.eye(2)

    def loss(w: np.ndarray) -> float:
        z = x @ w
        # log(1 + e^z) - y z, written to stay finite for large |z|
        return float(np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * w @ ridge @ w)

    w = np.array([1.0, 0.0])  # start from "already calibrated"
    current = loss(w)
    for _ in range(100):
        p = _sigmoid(x @ w)
        gradient = x.T @ (p - target) + ridge @ w
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2  # damped Newton: never a step that raises the loss
        w = w - scale * step
        previous, current = current, loss(w)
        if previous - current < 1e-12 * max(1.0, abs(current)):
            break
    return float(w[0]), float(w[1])


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
    raw = _as_probabilities(probabilities, "probabilities")
    k = 2 if raw.ndim == 1 else raw.shape[1]
    if classes is not None and len(classes) != k:
        raise ValueError(f"classes: {len(classes)} given for {k} probability columns")
    if metric != "accuracy" and k != 2:
        raise ValueError(
            f"metric: {metric} is estimated for binary classifiers only, got {k} classes"
        )
    probs = calibration.apply(raw) if calibration is not None else raw
    n = raw.shape[0]
    score, positive, predicted_positive, correct = _expected_parts(raw, probs, k)
    value = _expected(metric, score, positive, predicted_positive, correct)

    rng = np.random.default_rng(seed)
    rows = n
    subset = None
    if n * simulations > SIMULATION_BUDGET:
        rows = max(SIMULATION_BUDGET // simulations, 1000)
        subset = np.sort(rng.choice(n, size=rows, replace=False))
    draws = _simulate(
        metric,
        correct if subset is None else correct[subset],
        positive if subset is None or metric == "accuracy" else positive[subset],
        predicted_positive
        if subset is None or metric == "accuracy"
        else predicted_positive[subset],
        score if subset is None or metric == "accuracy" else score[subset],
        simulations,
        rng,
    )
    draws = draws[np.isfinite(draws)]
    if draws.size < simulations // 2:
        raise ValueError(
            f"{metric}: undefined on most simulated label draws (one class is too rare in {n} rows)"
        )
    alpha = (1.0 - float(confidence)) / 2.0
    deviations = draws - float(draws.mean())
    interval_method = f"{draws.size} simulated label draws"
    if subset is not None:
        deviations = deviations * math.sqrt(rows / n)
        interval_method += f" on a {rows}-row subsample, spread scaled to {n} rows"
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


def _as_probabilities(probabilities: Any, name: str) -> np.ndarray:
    try:
        probs = np.asarray(probabilities, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not numeric ({exc})") from exc
    if probs.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape (n,) or (n, k), got {probs.shape}")
    if probs.shape[0] == 0:
        raise ValueError(f"{name}: no rows")
    if probs.shape[0] > MAX_ROWS:
        raise ValueError(f"{name}: {probs.shape[0]} rows exceed the limit of {MAX_ROWS}")
    if probs.ndim == 2 and probs.shape[1] < 2:
        raise ValueError(f"{name}: need at least two probability columns, got {probs.shape[1]}")
    if not np.isfinite(probs).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError(
            f"{name}: values must lie in [0, 1], got [{probs.min():g}, {probs.max():g}]"
        )
    if probs.ndim == 2:
        sums = probs.sum(axis=1)
        worst = float(np.abs(sums - 1.0).max())
        if worst > _ROW_SUM_TOLERANCE:
            raise ValueError(f"{name}: rows must sum to 1, one is off by {worst:g}")
        probs = probs / sums[:, None]
    return probs


def _classes(classes: Sequence[Any] | None, k: int) -> list[Any]:
    if classes is None:
        return list(range(k))
    values = list(classes)
    if len(values) != k:
        raise ValueError(f"classes: {len(values)} given for {k} probability columns")
    if len(set(values)) != k:
        raise ValueError(f"classes: duplicates in {values}")
    return values


def _label_index(labels: np.ndarray, classes: list[Any]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    if labels.dtype == bool:
        labels = labels.astype(int)
    index = np.empty(labels.shape[0], dtype=int)
    for i, label in enumerate(labels.tolist()):
        try:
            index[i] = lookup[label]
        except (KeyError, TypeError):
            raise ValueError(f"labels: {label!r} is not one of the classes {classes}") from None
    return index
