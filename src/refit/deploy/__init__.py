"""Deployment: targets, rollout plans, canary analysis and the rollout controller.

Targets: the local alias target, the local model server canary, KServe. Checks read Prometheus;
the controller promotes or rolls back.
"""

from refit.deploy.analysis import CheckContext, CheckResult, run_analysis
from refit.deploy.analyzers import prometheus_analyzer
from refit.deploy.local import (
    DeployTarget,
    LocalTarget,
    Rollout,
    available_targets,
    get_target,
    register_target,
)
from refit.deploy.local_server_target import LocalCanaryTarget
from refit.deploy.plan import DEFAULT_PLAN, CheckSpec, RolloutPlan
from refit.deploy.prometheus import PrometheusClient
from refit.deploy.rollout import run_canary
from refit.deploy.rollout_types import RolloutResult
from refit.deploy.sequential import error_rate_sprt
from refit.deploy.target import CanaryTarget, TrafficSplit

__all__ = [
    "DEFAULT_PLAN",
    "CanaryTarget",
    "CheckContext",
    "CheckResult",
    "CheckSpec",
    "DeployTarget",
    "LocalCanaryTarget",
    "LocalTarget",
    "PrometheusClient",
    "Rollout",
    "RolloutPlan",
    "RolloutResult",
    "TrafficSplit",
    "available_targets",
    "error_rate_sprt",
    "get_target",
    "prometheus_analyzer",
    "register_target",
    "run_analysis",
    "run_canary",
]
