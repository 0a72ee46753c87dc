"""Steps that change what is live: register a version, promote it."""

from __future__ import annotations

from typing import Any

from refit.deploy import get_target
from refit.registry import ModelRegistry
from refit.steps.common import scalar_metrics


def register_model(
    model_dir: str,
    store_uri: str,
    model_name: str,
    snapshot_sha256: str,
    metrics: dict[str, Any],
    *,
    run_id: str = "",
    run_label: str = "",
) -> int:
    """Register a blessed challenger as a new immutable version.

    Args:
        model_dir: The challenger's model folder.
        store_uri: Root of refit's store.
        model_name: Model to register under.
        snapshot_sha256: Snapshot the challenger was trained on (its lineage and drift reference).
        metrics: The challenger's evaluation metrics.
        run_id: Pipeline run that produced it.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The new version number.
    """
    registry = ModelRegistry(store_uri, model_name)
    champion = registry.champion()
    version = registry.register(
        model_dir,
        metrics=scalar_metrics(metrics),
        snapshot_sha256=snapshot_sha256,
        parent_version=None if champion is None else champion.version,
        run_id=run_id or run_label,
        audit={"run_label": run_label},
    )
    return version.version


def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    *,
    target: str = "local",
    reason: str = "",
    run_label: str = "",
) -> int:
    """Promote a registered version through a deployment target.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to promote.
        version: Registered version to make live.
        target: Name of a registered deployment target.
        reason: Why (recorded in the audit log).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The live version after promotion.
    """
    registry = ModelRegistry(store_uri, model_name)
    deploy = get_target(target, registry)
    rollout = deploy.promote(
        version, reason=reason or f"blessed in run {run_label}", audit={"run_label": run_label}
    )
    return int(rollout.version)
