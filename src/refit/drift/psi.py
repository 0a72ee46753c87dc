"""Population Stability Index for numeric and categorical features.

``PSI = sum_i (q_i - p_i) * ln(q_i / p_i)`` with ``p`` the reference and ``q`` the current
proportions over reference-decile bins (numeric) or categories (categorical); empty bins count as
``EPSILON`` (1e-4) so unseen categories contribute instead of dividing by zero. PSI equals
``KL(p || q) + KL(q || p)``. Usual reading: < 0.1 stable, 0.1-0.2 moderate, >= 0.2 (the default
threshold) a significant shift.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, register_distance
from refit.drift.binning import EPSILON, binned, proportions

NAME = "psi"
DEFAULT_THRESHOLD = 0.2


def psi_summary(reference: object, current: object, feature_type: str) -> TestOutcome:
    """PSI of the two binned distributions."""
    # (ignore below) the registry passes the summaries binned() takes, typed object
    ref, cur = binned(reference, current, feature_type)  # type: ignore[arg-type]
    p, q = proportions(ref, EPSILON), proportions(cur, EPSILON)
    return TestOutcome(statistic=float(np.sum((q - p) * np.log(q / p))), p_value=None)


SPEC = register_distance(
    NAME,
    psi_summary,
    DEFAULT_THRESHOLD,
    "Population Stability Index over reference deciles / categories",
)
