"""KFP component: apply the retrain policy to a window (keeps the policy's state)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from refit.components.types import Anomalies, DriftReport
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def decide_retrain(
    window: Input[Dataset],
    drift: Input[DriftReport],
    store_uri: str,
    model_name: str,
    label_column: str,
    policy: dict,
    decision: Output[Markdown],
    champion: Input[Model] = None,
    validation: Input[Anomalies] = None,
    now: str = "",
    run_label: str = "",
) -> bool:
    """Decide by policy whether to retrain; every decision carries its reasons.

    Stateful: the policy's state (consecutive windows, cooldown) lives in refit's store, so
    caching stays off. It also records in the model's audit log what the pure steps found
    (the summaries in the ``audit`` metadata of ``validation`` and ``drift``), then its
    decision.

    Args:
        window: The window (Parquet); the champion is scored on its labels. Without labels
            (the label column missing or all null) its metric is estimated from its
            probabilities (CBPE, assumes no concept shift; the estimate and its interval are
            in the reasons and the decision record), and the policy's state lists the window
            as unlabelled.
        drift: Output of detect_drift (feature drift share, label drift, prediction drift,
            mean shifts, the champion's calibration).
        store_uri: Root of refit's store (the policy's state and the audit log are kept there).
        model_name: Model the decision is for.
        label_column: Label column.
        policy: Retrain policy (a dict): drift_share_threshold, metric, metric_threshold,
            consecutive_windows, max_model_age_days, new_data_fraction, cooldown_windows,
            label_drift_threshold, prediction_drift_threshold, mean_shift_sd, max_retrains,
            max_cost, retrain_cost, budget_period_days, combine (any, all or a nested
            expression; see refit.policy).
        champion: The champion (from resolve_champion); absent before the first promotion.
        validation: Output of validate_data (its summary is recorded); optional.
        now: Decision time, ISO 8601; empty means the current time.
        run_label: Label of this run in the audit log.

    Returns:
        decision: The decision and its reasons (Markdown; reasons also in its metadata).
        Output: ``retrain``: whether to retrain (a single boolean return, as kfp.local 2.17
            branches on no other output).
    """
    import json

    from refit import steps

    def given(artifact):  # an optional input; resolver's "absent"
        return None if artifact is None or artifact.metadata.get("absent") else artifact.path

    with open(drift.path, encoding="utf-8") as f:
        drift_result = json.load(f)
    champion_dir = given(champion)
    version = None if champion_dir is None else champion.metadata.get("version")
    out = steps.decide_retrain(
        window.path,
        drift_result,
        store_uri,
        model_name,
        label_column,
        policy,
        now=now or steps.utc_now(),
        run_label=run_label,
        champion_dir=champion_dir,
        champion_version=None if version is None else int(version),
        validation=None if validation is None else json.loads(validation.metadata["audit"]),
        drift=json.loads(drift.metadata["audit"]),
    )
    with open(decision.path, "w", encoding="utf-8") as f:
        f.write(steps.decision_markdown(out))
    decision.metadata.update({"retrain": out.retrain, "reasons": out.reasons})
    return out.retrain
