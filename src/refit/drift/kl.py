"""Kullback-Leibler divergence ``KL(reference || current)`` (natural log).

Over reference-decile bins (numeric) or categories (categorical); empty bins count as
``EPSILON`` (1e-4) so the divergence stays finite when a category is unseen on one side. Equal to
``scipy.stats.entropy(p, q)`` on the smoothed proportions.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, TestSpec, from_summary_fn, register
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


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"numeric", "categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="distance",
        fn=from_summary_fn(kl_summary),
        summary_fn=kl_summary,
        description="Kullback-Leibler divergence KL(reference || current), natural log",
    )
)
