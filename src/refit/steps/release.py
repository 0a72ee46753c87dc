"""Steps that change what is live: register a version, promote it."""

from __future__ import annotations

from typing import Any

from refit.deploy import get_target
from refit.registry import ANY, ModelRegistry
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
    parent_version: Any = ANY,
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
        parent_version: The champion the challenger was evaluated against (None: there was
            none); `ANY` (default) takes the current champion. Promotion later requires the
            champion to still be this version.

    Returns:
        The new version number.
    """
    registry = ModelRegistry(store_uri, model_name)
    if parent_version is ANY:
        champion = registry.champion()
        parent_version = None if champion is None else champion.version
    version = registry.register(
        model_dir,
        metrics=scalar_metrics(metrics),
        snapshot_sha256=snapshot_sha256,
        parent_version=parent_version,
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

    The promotion is a compare-and-swap on the champion the version was evaluated against
    (its ``parent_version``): if another run promoted meanwhile, this one raises ConflictError
    rather than replace a champion it was never compared with.

    Returns:
        The live version after promotion.

    Raises:
        ConflictError: The champion moved since this version was evaluated.
    """
    registry = ModelRegistry(store_uri, model_name)
    deploy = get_target(target, registry)
    expected = registry.get(version).parent_version
    rollout = deploy.promote(
        version,
        reason=reason or f"blessed in run {run_label}",
        audit={"run_label": run_label},
        expected_champion=expected,
    )
    return int(rollout.version)
