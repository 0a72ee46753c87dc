"""What the features' drift share leaves out: label drift, prediction drift, mean shifts.

The drift share counts features only; the label and the model's predictions are watched here,
apart from it, each with a statistic the retrain policy has its own threshold for
(:mod:`refit.policy.rules`):

* **label drift** (prior shift): a class label's shares on the window against the reference,
  from their profiles. The statistic is the largest change of one class's share (refit's
  ``linf`` test: a positive rate falling from 0.67 to 0.54 reads 0.13); the chi-square test of
  the same counts gives its p-value, so a reader sees whether a small window's change is noise.
  A continuous (regression) label is compared by ``psi`` over the reference's deciles. A window
  whose label column is missing or all null has no label drift (``None``): it is unlabelled.
* **prediction drift**: the champion's scores on the window against its scores on reference
  rows (its holdout, when known: scores on its own training rows are more confident than on any
  new data). Binary classifiers: the positive class's probability; multiclass: the predicted
  class; regressors: the predicted value. The statistic is the PSI (``psi`` test: reference
  deciles / classes).
* **mean shift**: per numeric feature, ``|mean(window) - mean(reference)| / std(reference)``
  from the profiles (exact: profiles keep sums and squared deviations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from refit.drift.accumulate import profile_table as _profile_table
from refit.drift.chisquare import chisquare_summary
from refit.drift.detect import compare_profiles
from refit.drift.linf import linf_summary
from refit.drift.profile import CategoricalSummary, FeatureProfile, NumericSummary, Profile

#: A numeric label with at most this many distinct values is taken as class labels.
MAX_LABEL_CLASSES = 50
#: Test giving the label drift statistic of class labels (largest change of a class share).
LABEL_DRIFT_TEST = "linf"
#: Test giving the label drift statistic of a continuous label, and the prediction drift's.
DISTRIBUTION_TEST = "psi"
#: Column name the scores get in a prediction drift result.
PREDICTION = "prediction"


def _class_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def class_counts(feature: FeatureProfile) -> dict[str, int] | None:
    """A label's count per class from its profile, or None when it is continuous."""
    summary = feature.summary
    if isinstance(summary, CategoricalSummary):
        return dict(summary.counts)
    if (
        isinstance(summary, NumericSummary)
        and summary.exact
        and 0 < len(summary.points) <= MAX_LABEL_CLASSES
    ):
        return {
            _class_name(float(p)): int(c)
            for p, c in zip(summary.points, summary.counts, strict=True)
        }
    return None


def _shares(counts: dict[str, int], classes: list[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {c: (counts.get(c, 0) / total if total else 0.0) for c in classes}


def label_drift(reference: Profile, current: Profile, column: str) -> dict[str, Any] | None:
    """Label drift (prior shift) of ``column`` between two profiles.

    Args:
        reference: Profile of the reference data (the champion's training data).
        current: Profile of the window.
        column: The label column.

    Returns:
        ``None`` when the label is missing from a side or has no values on it (an unlabelled
        window); else a dict with ``column``, ``kind`` (``classes`` or ``continuous``),
        ``test``, ``statistic``, ``p_value`` (chi-square, classes only), the counts and, for
        classes, ``reference_shares`` and ``current_shares``.
    """
    ref_f, cur_f = reference.features.get(column), current.features.get(column)
    if ref_f is None or cur_f is None or ref_f.summary is None or cur_f.summary is None:
        return None
    if ref_f.summary.count == 0 or cur_f.summary.count == 0:
        return None
    ref_counts, cur_counts = class_counts(ref_f), class_counts(cur_f)
    common = {
        "column": column,
        "n_reference": int(ref_f.summary.count),
        "n_current": int(cur_f.summary.count),
        "missing_current": int(cur_f.summary.missing),
    }
    if ref_counts is not None and cur_counts is not None:
        ref_s, cur_s = CategoricalSummary(ref_counts), CategoricalSummary(cur_counts)
        linf = linf_summary(ref_s, cur_s, "categorical")
        chi = chisquare_summary(ref_s, cur_s, "categorical")
        classes = sorted(set(ref_counts) | set(cur_counts))
        return {
            **common,
            "kind": "classes",
            "test": LABEL_DRIFT_TEST,
            "statistic": float(linf.statistic),
            "p_value": None if chi.p_value is None else float(chi.p_value),
            "p_value_test": "chisquare",
            "reference_shares": _shares(ref_counts, classes),
            "current_shares": _shares(cur_counts, classes),
        }
    if ref_f.type != "numeric" or cur_f.type != "numeric":
        return None  # a type change is validation's to report
    result = compare_profiles(
        reference, current, columns=[column], tests={column: DISTRIBUTION_TEST}, correction="none"
    )
    feature = result.features[column]
    assert isinstance(ref_f.summary, NumericSummary) and isinstance(cur_f.summary, NumericSummary)
    return {
        **common,
        "kind": "continuous",
        "test": DISTRIBUTION_TEST,
        "statistic": float(feature.statistic),
        "p_value": None,
        "reference_mean": float(ref_f.summary.mean),
        "current_mean": float(cur_f.summary.mean),
    }


def prediction_drift(
    reference_scores: np.ndarray, current_scores: np.ndarray, *, reference: str = ""
) -> dict[str, Any]:
    """Prediction drift: PSI of a model's scores on the window against reference scores.

    Args:
        reference_scores: The model's scores (numbers) or predicted classes (strings) on
            reference rows.
        current_scores: The same on the window.
        reference: What the reference rows are, in words (reported).

    Returns:
        A dict with ``test`` (``psi``), ``statistic``, ``reference`` (the words), the counts,
        the mean score on each side (numeric scores) and the binned ``distribution``.

    Raises:
        DataError: A side has no scores.
    """
    ref_table = pa.table({PREDICTION: np.asarray(reference_scores)})
    cur_table = pa.table({PREDICTION: np.asarray(current_scores)})
    ref_p, cur_p = _profile_table(ref_table), _profile_table(cur_table)
    result = compare_profiles(
        ref_p, cur_p, columns=[PREDICTION], tests={PREDICTION: DISTRIBUTION_TEST}, correction="none"
    )
    feature = result.features[PREDICTION]
    out: dict[str, Any] = {
        "test": DISTRIBUTION_TEST,
        "statistic": float(feature.statistic),
        "reference": reference,
        "n_reference": int(feature.n_reference),
        "n_current": int(feature.n_current),
        "distribution": feature.distribution,
    }
    ref_s, cur_s = ref_p.features[PREDICTION].summary, cur_p.features[PREDICTION].summary
    if isinstance(ref_s, NumericSummary) and isinstance(cur_s, NumericSummary):
        out["reference_mean"] = float(ref_s.mean)
        out["current_mean"] = float(cur_s.mean)
    return out


def mean_shifts(
    reference: Profile, current: Profile, columns: list[str]
) -> dict[str, dict[str, float]]:
    """Each numeric column's mean shift in reference standard deviations.

    Columns that are not numeric on both sides, have fewer than two reference values or a
    constant reference (no spread to measure a shift in), or no current values are left out.

    Returns:
        Column -> ``reference_mean``, ``reference_std``, ``current_mean`` and ``shift_sd``
        (``|current_mean - reference_mean| / reference_std``).
    """
    out: dict[str, dict[str, float]] = {}
    for name in columns:
        ref_f, cur_f = reference.features.get(name), current.features.get(name)
        if ref_f is None or cur_f is None:
            continue
        ref_s, cur_s = ref_f.summary, cur_f.summary
        if not isinstance(ref_s, NumericSummary) or not isinstance(cur_s, NumericSummary):
            continue
        if ref_s.count < 2 or cur_s.count < 1:
            continue
        std = float(ref_s.std)
        if not math.isfinite(std) or std <= 0:
            continue
        shift = abs(float(cur_s.mean) - float(ref_s.mean)) / std
        out[name] = {
            "reference_mean": float(ref_s.mean),
            "reference_std": std,
            "current_mean": float(cur_s.mean),
            "shift_sd": shift,
        }
    return out
