"""Two-sample Kolmogorov-Smirnov test for numeric features (``scipy.stats.ks_2samp``)."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

from refit.drift.base import TestOutcome, TestSpec, register

NAME = "ks"
DEFAULT_THRESHOLD = 0.05


def ks_test(reference: np.ndarray, current: np.ndarray, feature_type: str) -> TestOutcome:
    """Two-sided two-sample KS test (exact or asymptotic as scipy chooses).

    Identical constant columns give statistic 0 and p-value 1.
    """
    result = ks_2samp(reference, current)
    statistic = float(result.statistic)
    p_value = float(result.pvalue)
    if not np.isfinite(p_value):  # defensive: degenerate inputs
        p_value = 1.0 if statistic == 0.0 else 0.0
    return TestOutcome(statistic=statistic, p_value=min(max(p_value, 0.0), 1.0))


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"numeric"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="p_value",
        fn=ks_test,
    )
)
