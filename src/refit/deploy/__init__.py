"""Deployment targets (local alias-based target; KServe comes later)."""

from refit.deploy.local import (
    DeployTarget,
    LocalTarget,
    Rollout,
    available_targets,
    get_target,
    register_target,
)

__all__ = [
    "DeployTarget",
    "LocalTarget",
    "Rollout",
    "available_targets",
    "get_target",
    "register_target",
]
