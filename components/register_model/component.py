"""KFP component: register a blessed challenger as an immutable version."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from refit.components.types import Evaluation
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def register_model(
    model: Input[Model],
    store_uri: str,
    model_name: str,
    snapshot_sha256: str,
    evaluation: Input[Evaluation],
    run_label: str = "",
    approval: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    run_id: str = "",
) -> NamedTuple("Outputs", version=int):
    """Register the model as a new immutable version with its lineage.

    Args:
        model: The blessed challenger.
        store_uri: Root of refit's store.
        model_name: Model to register under.
        snapshot_sha256: Snapshot it was trained on (lineage, and the next drift reference).
        evaluation: Output of evaluate_model (its metrics are recorded with the version, and
            the champion it was compared with becomes the parent: promotion then requires that
            champion to still be live).
        run_label: Label of the run that produced it, recorded with the version and in the
            audit log (in the pipeline: start_run's ``label``, the KFP run id unless set).
        approval: Human approval policy (a dict: required, timeout_hours, approvers); when
            ``required``, the version waits with status ``awaiting_approval`` and is not
            promoted until ``refit registry approve``. Empty: no approval.
        run_id: Deprecated: use ``run_label``. Kept for one release so pipelines that pass it
            still compile; used as the run label when ``run_label`` is empty.

    Returns:
        version: The new version number.
    """
    import json
    from collections import namedtuple

    from refit import steps
    from refit.governance.approval import ApprovalPolicy
    from refit.steps.common import dict_param

    policy = ApprovalPolicy.from_dict(dict_param(approval, "approval")) if approval else None
    with open(evaluation.path, encoding="utf-8") as f:
        summary = json.load(f)
    metrics = summary["metrics"]
    version = steps.register_model(
        model.path,
        store_uri,
        model_name,
        snapshot_sha256,
        metrics,
        run_label=run_label or run_id,
        parent_version=summary.get("champion_version"),
        approval=policy,
    )
    return namedtuple("Outputs", ["version"])(version)
