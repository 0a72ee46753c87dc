"""KFP component: register a blessed challenger as an immutable version."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def register_model(
    model: Input[Model],
    store_uri: str,
    model_name: str,
    snapshot_sha256: str,
    metrics_json: str,
    run_id: str = "",
    run_label: str = "",
) -> NamedTuple("Outputs", [("version", int)]):
    """Register the model as a new immutable version with its lineage.

    Args:
        model: The blessed challenger.
        store_uri: Root of refit's store.
        model_name: Model to register under.
        snapshot_sha256: Snapshot it was trained on (lineage, and the next drift reference).
        metrics_json: Its evaluation metrics (JSON).
        run_id: Pipeline run that produced it.
        run_label: Label of this run in the audit log.

    Returns:
        version: The new version number.
    """
    import json
    from collections import namedtuple

    from refit import steps

    version = steps.register_model(
        model.path,
        store_uri,
        model_name,
        snapshot_sha256,
        json.loads(metrics_json),
        run_id=run_id,
        run_label=run_label,
    )
    return namedtuple("Outputs", ["version"])(version)
