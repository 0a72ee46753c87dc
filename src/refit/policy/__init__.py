"""Declarative retrain policy: drift, metric decay, model age, data volume, cooldown."""

from refit.policy.policy import Decision, Observation, PolicyState, RetrainPolicy, decide

__all__ = ["Decision", "Observation", "PolicyState", "RetrainPolicy", "decide"]
