"""Chi-square test of homogeneity for categorical features.

Counts are taken over the union of the categories seen in the reference and in the current
data, so categories unseen in the reference count (and a category that vanished counts too).
The test is Pearson's chi-square on the 2 x K contingency table (reference row, current row) via
``scipy.stats.chi2_contingency`` without Yates' continuity correction. The contingency form needs
no smoothing: every column of the table has a non-zero total because each category was seen on at
least one side, so expected counts are never zero. One category on both sides gives statistic 0
and p-value 1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2_contingency

from refit.drift.base import TestOutcome, TestSpec, register

NAME = "chisquare"
DEFAULT_THRESHOLD = 0.05


def category_counts(
    reference: np.ndarray, current: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count each side over the sorted union of categories.

    Returns:
        ``(categories, reference_counts, current_counts)``.
    """
    both = np.concatenate([reference, current])
    categories, codes = np.unique(both, return_inverse=True)
    k = len(categories)
    ref_counts = np.bincount(codes[: len(reference)], minlength=k)
    cur_counts = np.bincount(codes[len(reference) :], minlength=k)
    return categories, ref_counts, cur_counts


def chisquare_test(reference: np.ndarray, current: np.ndarray, feature_type: str) -> TestOutcome:
    """Chi-square test on the 2 x K table of category counts."""
    _, ref_counts, cur_counts = category_counts(reference, current)
    if len(ref_counts) < 2:
        return TestOutcome(statistic=0.0, p_value=1.0)
    table = np.vstack([ref_counts, cur_counts])
    result = chi2_contingency(table, correction=False)
    return TestOutcome(statistic=float(result.statistic), p_value=float(result.pvalue))


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="p_value",
        fn=chisquare_test,
    )
)
