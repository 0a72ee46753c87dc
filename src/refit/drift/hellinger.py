"""Hellinger distance ``sqrt(1 - sum_i sqrt(p_i * q_i))`` (in [0, 1]).

Over reference-decile bins (numeric) or categories (categorical); no smoothing is needed.
Equivalently ``||sqrt(p) - sqrt(q)||_2 / sqrt(2)``.
"""

from __future__ import annotations

import math

import numpy as np

from refit.drift.base import TestOutcome, register_distance
from refit.drift.binning import binned, proportions

NAME = "hellinger"
DEFAULT_THRESHOLD = 0.1


def hellinger_summary(reference: object, current: object, feature_type: str) -> TestOutcome:
    """Hellinger distance of the two binned distributions."""
    # (ignore below) the registry passes the summaries binned() takes, typed object
    ref, cur = binned(reference, current, feature_type)  # type: ignore[arg-type]
    bc = float(np.sum(np.sqrt(proportions(ref) * proportions(cur))))
    return TestOutcome(statistic=math.sqrt(min(max(1.0 - bc, 0.0), 1.0)), p_value=None)


SPEC = register_distance(
    NAME,
    hellinger_summary,
    DEFAULT_THRESHOLD,
    "Hellinger distance of binned / category frequencies",
)
