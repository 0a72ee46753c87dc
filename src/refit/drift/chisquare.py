"""Chi-square test of homogeneity for categorical features.

Counts are taken over the union of the categories seen in the reference and in the current
data, so categories unseen in the reference count (and a category that vanished counts too).
The test is Pearson's chi-square on the 2 x K contingency table (reference row, current row), as
``scipy.stats.chi2_contingency`` without Yates' continuity correction computes it (p-value from
``scipy.special.chdtrc``, imported on first use: importing scipy costs time and memory that a
check without a chi-square test need not pay; ``scipy.stats`` alone costs about a second). The
contingency form needs no smoothing: every column of the table has a non-zero total because each
category was seen on at least one side, so expected counts are never zero. One category on both
sides gives statistic 0 and p-value 1. Category counts in profiles are exact, so the result is the
same from a profile.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, TestSpec, from_summary_fn, register
from refit.drift.binning import aligned_categorical
from refit.drift.profile import CategoricalSummary

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


def chisquare_summary(
    reference: CategoricalSummary, current: CategoricalSummary, feature_type: str
) -> TestOutcome:
    """Chi-square test on the 2 x K table of category counts."""
    _, ref_counts, cur_counts = aligned_categorical(reference, current)
    if len(ref_counts) < 2:
        return TestOutcome(statistic=0.0, p_value=1.0, error_bound=0.0)
    # Pearson's statistic on the 2 x K table, as scipy's chi2_contingency(correction=False)
    table = np.vstack([ref_counts, cur_counts])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    from scipy.special import chdtrc  # imported on use: scipy costs ~0.4 s and 20 MB to import

    p_value = float(chdtrc(len(ref_counts) - 1, statistic))
    return TestOutcome(statistic=statistic, p_value=min(max(p_value, 0.0), 1.0), error_bound=0.0)


chisquare_test = from_summary_fn(chisquare_summary)

SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="p_value",
        fn=chisquare_test,
        summary_fn=chisquare_summary,
        description="Pearson chi-square on the 2 x K table of category counts",
    )
)
