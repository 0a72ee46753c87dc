"""Jensen-Shannon distance (base 2, so in [0, 1]) for numeric and categorical features.

* Categorical: the category frequencies of each side over the union of categories.
* Numeric: both sides are counted in bins cut at the reference's deciles
  (:func:`refit.drift.binning.reference_quantile_bins`; open-ended outer bins catch current values
  outside the reference range). Quantile bins keep the distance meaningful for skewed data where
  equal-width bins would put nearly every value in one bin, and ten bins keep the sampling noise
  low: on 2000 vs 2000 normal draws the distance between unshifted samples averages about 0.05
  (threshold 0.1), a 0.5 sd shift about 0.2.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, TestSpec, from_summary_fn, register
from refit.drift.binning import binned

NAME = "jensenshannon"
DEFAULT_THRESHOLD = 0.1


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Base-2 Jensen-Shannon distance between two count vectors (normalised here)."""
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.sum(np.where(p > 0, p * np.log2(p / m), 0.0))
        kl_qm = np.sum(np.where(q > 0, q * np.log2(q / m), 0.0))
    # as scipy.spatial.distance.jensenshannon(p, q, base=2)
    value = float(np.sqrt(max((kl_pm + kl_qm) / 2, 0.0)))
    if not np.isfinite(value):  # rounding can give sqrt of a tiny negative number
        return 0.0
    return min(max(value, 0.0), 1.0)


def jensenshannon_summary(reference: object, current: object, feature_type: str) -> TestOutcome:
    """Jensen-Shannon distance of the two binned distributions (no p-value)."""
    # (ignore below) the registry passes the summaries binned() takes, typed object
    ref_counts, cur_counts = binned(reference, current, feature_type)  # type: ignore[arg-type]
    return TestOutcome(statistic=js_distance(ref_counts, cur_counts), p_value=None)


jensenshannon_test = from_summary_fn(jensenshannon_summary)

SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"numeric", "categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="distance",
        fn=jensenshannon_test,
        summary_fn=jensenshannon_summary,
        description="Jensen-Shannon distance (base 2) of binned / category frequencies",
    )
)
