"""Declarative retrain policy: which rules, how combined, and what gates a retrain.

Rules: feature drift share, label and prediction drift, metric decay (estimated without labels
where labels are late), model age, data volume, feature mean shift; combined by any/all; gated
by a cooldown and a retraining budget.
"""

from refit.policy.policy import (
    Decision,
    Observation,
    PolicyState,
    RetrainPolicy,
    decide,
    mark_labelled,
)

__all__ = ["Decision", "Observation", "PolicyState", "RetrainPolicy", "decide", "mark_labelled"]
