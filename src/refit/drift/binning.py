"""Aligning two summaries on common support: CDF grids, reference-quantile bins, categories.

Shared by the test modules. Numeric summaries are compared on the union of their points: the
exact distinct values when both summaries are exact, else the bucket grid of
:mod:`refit.drift.profile` (both sides bucketed the same way, so masses per bucket are exact).
"""

from __future__ import annotations

import numpy as np

from refit.drift.profile import CategoricalSummary, NumericSummary

#: Quantile bins of the reference used by the binned tests (JS, PSI, KL, Hellinger).
N_BINS = 10
#: Proportion that replaces an empty bin's zero in PSI and KL (as Evidently and others do).
EPSILON = 1e-4


def aligned_numeric(
    reference: NumericSummary, current: NumericSummary
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Counts of both sides on their common sorted support.

    Returns:
        ``(points, reference_counts, current_counts, exact)``: points are the distinct values
        when ``exact`` else bucket keys; counts are float64.
    """
    if reference.exact and current.exact:
        ra, rc, ca, cc, exact = reference.points, reference.counts, *_pc(current), True
    else:
        ra, rc = reference.buckets()
        ca, cc = current.buckets()
        exact = False
    points = _union_sorted(ra, ca)
    ref = np.zeros(len(points))
    cur = np.zeros(len(points))
    ref[np.searchsorted(points, ra)] = rc
    cur[np.searchsorted(points, ca)] = cc
    return points, ref, cur, exact


def _union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``a`` and ``b`` (as ``np.union1d``).

    Profile supports are already sorted, so a stable sort of their concatenation merges two runs
    in linear time, where ``np.union1d`` hashes and sorts from scratch (it took most of a drift
    check's comparison time on 30,000-bucket histograms).
    """
    if len(a) == len(b) and np.array_equal(a, b):
        return np.unique(a) if len(a) > 1 and not np.all(a[1:] > a[:-1]) else a
    both = np.concatenate([a, b])
    both.sort(kind="stable")
    if len(both) < 2:
        return both
    keep = np.empty(len(both), dtype=bool)
    keep[0] = True
    np.not_equal(both[1:], both[:-1], out=keep[1:])
    return both[keep]


def _pc(summary: NumericSummary) -> tuple[np.ndarray, np.ndarray]:
    return summary.points, summary.counts


def reference_quantile_bins(
    reference: NumericSummary, current: NumericSummary, n_bins: int = N_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both sides in bins cut at the reference's quantiles.

    Bin boundaries fall after the support points where the reference CDF first reaches
    ``1/n_bins, 2/n_bins, ...`` (repeated cuts merged), so each bin holds about ``1/n_bins`` of
    the reference; the outer bins are open-ended and catch current values outside the reference
    range. On exact summaries the cuts are data values; on bucketed ones bucket boundaries, and
    bin masses are then exact sums of buckets.

    Returns:
        ``(reference_counts, current_counts)`` per bin.
    """
    _, ref, cur, _ = aligned_numeric(reference, current)
    cdf = np.cumsum(ref) / ref.sum()
    levels = np.arange(1, n_bins) / n_bins
    cuts = np.unique(np.searchsorted(cdf, levels - 1e-12, side="left"))
    starts = np.concatenate([[0], cuts + 1])
    starts = np.unique(starts[starts < len(ref)])
    return np.add.reduceat(ref, starts), np.add.reduceat(cur, starts)


def aligned_categorical(
    reference: CategoricalSummary, current: CategoricalSummary
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts of both sides over the sorted union of categories.

    Returns:
        ``(categories, reference_counts, current_counts)``; counts float64.
    """
    categories = sorted(set(reference.counts) | set(current.counts))
    ref = np.array([reference.counts.get(c, 0) for c in categories], dtype=np.float64)
    cur = np.array([current.counts.get(c, 0) for c in categories], dtype=np.float64)
    return categories, ref, cur


def binned(
    reference: NumericSummary | CategoricalSummary,
    current: NumericSummary | CategoricalSummary,
    feature_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin: reference-quantile bins for numeric, categories for categorical."""
    if feature_type == "numeric":
        # (ignore below) feature_type says which summary kind both sides are
        return reference_quantile_bins(reference, current)  # type: ignore[arg-type]
    # (ignore below) feature_type says which summary kind both sides are
    _, ref, cur = aligned_categorical(reference, current)  # type: ignore[arg-type]
    return ref, cur


def proportions(counts: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """Counts as proportions; zeros replaced by ``epsilon`` when it is > 0."""
    p = counts / counts.sum()
    if epsilon > 0:
        p = np.where(p == 0, epsilon, p)
    return p
