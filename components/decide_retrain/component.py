"""KFP component: apply the retrain policy to a window."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def decide_retrain(
    snapshot: Input[Dataset],
    drift: Input[Artifact],
    store_uri: str,
    model_name: str,
    target: str,
    policy_json: str,
    decision: Output[Markdown],
    now: str = "",
    run_label: str = "",
) -> bool:
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
        decision: The decision and its reasons (Markdown; reasons also in its metadata).
        Output: Whether to retrain.
    """
    import json

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
    with open(decision.path, "w", encoding="utf-8") as f:
        f.write(steps.decision_markdown(out))
    decision.metadata.update({"retrain": out.retrain, "reasons": out.reasons})
    return out.retrain
