"""Two-sample Kolmogorov-Smirnov test for numeric features.

From summaries the statistic is ``D = max |F_ref - F_cur|`` over the common support:

* both summaries exact (at most ``EXACT_LIMIT`` distinct values each): ``D`` is exact;
* otherwise the CDFs are compared at the bucket boundaries of the profile's fixed grid. This
  evaluates the two empirical CDFs at a subset of points, so ``D_binned <= D`` always (the
  approximation never raises a false alarm), and inside one bucket the two CDFs move by at most
  that bucket's mass, so ``D - D_binned <= max over buckets of max(p_ref(b), p_cur(b))``. That
  bound is computed for every comparison and reported as ``error_bound`` (with 10 mantissa bits a
  standard normal's largest bucket holds about 0.0003 of the mass).

With at most 10,000 values per side, both sides are rebuilt on the common support and
``scipy.stats.ks_2samp`` computes ``D`` and its p-value (exact method), so exact summaries give
scipy's results exactly. Above that the p-value is the asymptotic one scipy uses for large
samples: ``kstwo.sf(D, round(n * m / (n + m)))``.
"""

from __future__ import annotations

import warnings

import numpy as np

from refit.drift.base import TestOutcome, TestSpec, from_summary_fn, register
from refit.drift.binning import aligned_numeric
from refit.drift.profile import NumericSummary

NAME = "ks"
DEFAULT_THRESHOLD = 0.05
#: Largest sample (per side) for which exact summaries go through scipy's exact p-value.
SCIPY_EXACT_MAX = 10_000


def _clip(p: float, statistic: float) -> float:
    if not np.isfinite(p):  # defensive: degenerate inputs
        return 1.0 if statistic == 0.0 else 0.0
    return min(max(p, 0.0), 1.0)


def ks_summary(
    reference: NumericSummary, current: NumericSummary, feature_type: str
) -> TestOutcome:
    """KS statistic and p-value from two numeric summaries (see the module docstring)."""
    n, m = reference.count, current.count
    points, ref, cur, exact = aligned_numeric(reference, current)
    pr, pc = ref / n, cur / m
    bound = 0.0 if exact else float(np.max(np.maximum(pr, pc)))
    if max(n, m) <= SCIPY_EXACT_MAX:
        # both sides rebuilt on the common support: scipy sees the same ECDF gap (the values
        # themselves when exact, one representative per bucket otherwise) and picks its method
        support = points if exact else np.arange(len(points), dtype=np.float64)
        from scipy.stats import ks_2samp  # imported on use: scipy.stats takes ~1 s to import

        with warnings.catch_warnings():  # scipy falls back to asymp itself and says so
            warnings.simplefilter("ignore", RuntimeWarning)
            result = ks_2samp(
                np.repeat(support, ref.astype(np.int64)), np.repeat(support, cur.astype(np.int64))
            )
        d = float(result.statistic)
        return TestOutcome(statistic=d, p_value=_clip(float(result.pvalue), d), error_bound=bound)
    d = float(np.max(np.abs(np.cumsum(pr) - np.cumsum(pc))))
    d = min(max(d, 0.0), 1.0)
    from scipy.stats import kstwo

    p = float(kstwo.sf(d, np.round(n * m / (n + m))))
    return TestOutcome(statistic=d, p_value=_clip(p, d), error_bound=bound)


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"numeric"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="p_value",
        fn=from_summary_fn(ks_summary),
        summary_fn=ks_summary,
        description="Kolmogorov-Smirnov D: largest gap between the two CDFs",
    )
)
