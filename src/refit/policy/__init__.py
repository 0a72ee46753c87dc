"""Declarative retrain policy: which rules, how combined, and what gates a retrain.

Rules: feature drift share, label and prediction drift, metric decay (estimated without labels
where labels are late), model age, data volume, feature mean shift; combined by any/all; gated
by a cooldown and a retraining budget (docs/decisions/0014-declarative-retrain-policy.md).
Modules: :mod:`~refit.policy.rules` (the settings and each rule's verdict),
:mod:`~refit.policy.combine` (the ``combine`` expression), :mod:`~refit.policy.state` (the state
between windows, a window's observation), :mod:`~refit.policy.decision` (:func:`decide` and the
gates); their field checks are :mod:`refit.fields`'s.
"""

from refit.policy.decision import Decision, decide
from refit.policy.rules import RetrainPolicy
from refit.policy.state import Observation, PolicyState, mark_labelled

__all__ = ["Decision", "Observation", "PolicyState", "RetrainPolicy", "decide", "mark_labelled"]
