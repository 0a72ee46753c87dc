"""L-infinity distance of category frequencies (TFDV's categorical ``infinity_norm`` comparator).

``max_i |p_i - q_i|`` over the union of categories: the largest change in one category's share.
Categorical features only, as in TFDV.
"""

from __future__ import annotations

import numpy as np

from refit.drift.base import TestOutcome, TestSpec, from_summary_fn, register
from refit.drift.binning import aligned_categorical, proportions
from refit.drift.profile import CategoricalSummary

NAME = "linf"
DEFAULT_THRESHOLD = 0.1


def linf_summary(
    reference: CategoricalSummary, current: CategoricalSummary, feature_type: str
) -> TestOutcome:
    """Largest absolute difference of one category's share."""
    _, ref, cur = aligned_categorical(reference, current)
    value = float(np.max(np.abs(proportions(ref) - proportions(cur))))
    return TestOutcome(statistic=value, p_value=None, error_bound=0.0)


SPEC = register(
    TestSpec(
        name=NAME,
        feature_types=frozenset({"categorical"}),
        default_threshold=DEFAULT_THRESHOLD,
        kind="distance",
        fn=from_summary_fn(linf_summary),
        summary_fn=linf_summary,
        description="L-infinity: largest change of one category's share (TFDV infinity_norm)",
    )
)
