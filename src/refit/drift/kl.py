"""Kullback-Leibler divergence ``KL(reference || current)`` (natural log).

Over reference-decile bins (numeric) or categories (categorical); empty bins count as
``EPSILON`` (1e-4) so the divergence stays finite when a category is unseen on one side. Equal to
``scipy.stats.entropy(p, q)`` on the smoothed proportions.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, register_distance
from refit.drift.binning import EPSILON, binned, proportions

NAME = "kl"
DEFAULT_THRESHOLD = 0.1


def kl_summary(reference: object, current: object, feature_type: str) -> TestOutcome:
    """KL divergence of the binned reference from the binned current distribution."""
    # (ignore below) the registry passes the summaries binned() takes, typed object
    ref, cur = binned(reference, current, feature_type)  # type: ignore[arg-type]
    p, q = proportions(ref, EPSILON), proportions(cur, EPSILON)
    p, q = p / p.sum(), q / q.sum()
    return TestOutcome(statistic=max(float(np.sum(p * np.log(p / q))), 0.0), p_value=None)


SPEC = register_distance(
    NAME,
    kl_summary,
    DEFAULT_THRESHOLD,
    "Kullback-Leibler divergence KL(reference || current), natural log",
)
