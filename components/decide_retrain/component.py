"""KFP component: apply the retrain policy to a window."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def decide_retrain(
    snapshot: Input[Dataset],
    drift: Input[Artifact],
    store_uri: str,
    model_name: str,
    target: str,
    policy_json: str,
    now: str = "",
    run_label: str = "",
) -> NamedTuple("Outputs", [("retrain", bool), ("reasons", str)]):
    """Decide by policy whether to retrain; every decision carries its reasons.

    Args:
        snapshot: The window (Parquet); the champion is scored on its labels.
        drift: Output of detect_drift.
        store_uri: Root of refit's store (the policy's state is kept there).
        model_name: Model the decision is for.
        target: Label column.
        policy_json: Retrain policy (JSON): drift_share_threshold, metric, metric_threshold,
            consecutive_windows, max_model_age_days, new_data_fraction, cooldown_windows.
        now: Decision time, ISO 8601; empty means the current time.
        run_label: Label of this run in the audit log.

    Returns:
        retrain: Whether to retrain.
        reasons: JSON list of readable reasons.
    """
    import json
    from collections import namedtuple

    from refit import steps

    with open(drift.path, encoding="utf-8") as f:
        drift_result = json.load(f)
    out = steps.decide_retrain(
        snapshot.path,
        drift_result,
        store_uri,
        model_name,
        target,
        json.loads(policy_json),
        now=now or steps.utc_now(),
        run_label=run_label,
    )
    return namedtuple("Outputs", ["retrain", "reasons"])(out.retrain, json.dumps(out.reasons))
