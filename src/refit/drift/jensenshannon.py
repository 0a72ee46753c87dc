"""Jensen-Shannon distance (base 2, so in [0, 1]) for numeric and categorical features.

* Categorical: the category frequencies of each side over the union of categories.
* Numeric: both sides are binned on common bins taken from the reference's quantiles
  (:data:`N_BINS` quantile levels; repeated edges merged, open-ended outer bins catch current
  values outside the reference range), and the bin frequencies are compared. Quantile bins keep
  the distance meaningful for skewed data where equal-width bins would put nearly every value in
  one bin. Ten bins keep the sampling noise low: on 2000 vs 2000 normal draws the distance
  between unshifted samples averages about 0.05 (threshold 0.1), a 0.5 sd shift about 0.21.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

from refit.drift.base import TestOutcome, TestSpec, register
from refit.drift.chisquare import category_counts

NAME = "jensenshannon"
DEFAULT_THRESHOLD = 0.1
N_BINS = 10


def numeric_bin_counts(
    reference: np.ndarray, current: np.ndarray, n_bins: int = N_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram both sides on common bins from the reference quantiles.

    Bin ``i`` holds values in ``[edges[i-1], edges[i])``; bin 0 holds values below ``edges[0]``
    and the last bin values at or above ``edges[-1]``.

    Returns:
        ``(edges, reference_counts, current_counts)``.
    """
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, n_bins + 1)))
    k = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=k)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=k)
    return edges, ref_counts, cur_counts


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Base-2 Jensen-Shannon distance between two count vectors (normalised here)."""
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    value = float(jensenshannon(p, q, base=2))
    if not np.isfinite(value):  # rounding can give sqrt of a tiny negative number
        return 0.0
    return min(max(value, 0.0), 1.0)


def jensenshannon_test(
    reference: np.ndarray, current: np.ndarray, feature_type: str
) -> TestOutcome:
    """Jensen-Shannon distance of the two distributions (no p-value)."""
    if feature_type == "numeric":
        _, ref_counts, cur_counts = numeric_bin_counts(reference, current)
    else:
        _, ref_counts, cur_counts = category_counts(reference, current)
    return TestOutcome(statistic=js_distance(ref_counts, cur_counts), p_value=None)


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"numeric", "categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="distance",
        fn=jensenshannon_test,
    )
)
