"""The retrain decision: the policy applied to a window, its state kept in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from refit.audit.events import AuditEvent
from refit.evaluation.metrics import evaluate
from refit.io.tables import read_table
from refit.monitoring import ESTIMABLE_METRICS, Calibration, estimate_performance
from refit.policy import Observation, PolicyState, RetrainPolicy, decide
from refit.registry import open_registry
from refit.steps.common import dict_param
from refit.steps.resolve import record_results
from refit.steps.watch import has_labels
from refit.training.artifacts import load_model
from refit.training.trainers import TrainedModel

POLICY_STATE_KEY = "policy"


@dataclass
class DecisionOutput:
    """What ``decide_retrain`` reports.

    Attributes:
        retrain: Whether to retrain.
        reasons: The policy's reasons.
        champion_metric: The champion's realised metric on the window's labels (None when
            the window has no labels or there is no champion).
        labelled: Whether the window held labels.
        estimate: The champion's metric estimated without labels
            (:class:`refit.monitoring.PerformanceEstimate` as a dict) on an unlabelled window;
            None otherwise.
        label_drift: The label drift statistic the policy saw (None: not measured).
        prediction_drift: The prediction drift statistic the policy saw (None: not measured).
    """

    retrain: bool
    reasons: list[str]
    champion_metric: float | None
    labelled: bool = True
    estimate: dict[str, Any] | None = None
    label_drift: float | None = None
    prediction_drift: float | None = None


def estimate_champion(
    model: TrainedModel,
    window: pa.Table,
    metric: str,
    drift_result: dict[str, Any] | None,
    *,
    seed: int = 0,
) -> tuple[dict[str, Any] | None, str]:
    """The champion's metric on an unlabelled window, estimated from its probabilities (CBPE).

    The probabilities are calibrated with the calibration ``detect_drift`` fitted on the
    champion's holdout (``drift_result["prediction_drift"]["calibration"]``) when there is one,
    else taken as they are (the estimate says ``calibrated: false``).

    Returns:
        ``(estimate as a dict, "")``, or ``(None, why not)``.
    """
    if model.task == "regression":
        return None, f"{metric} cannot be estimated without labels for a regressor"
    if metric not in ESTIMABLE_METRICS:
        return None, (
            f"{metric} cannot be estimated without labels (estimable: "
            f"{', '.join(ESTIMABLE_METRICS)})"
        )
    if window.num_rows == 0:
        return None, "no rows to estimate on"
    prediction = (drift_result or {}).get("prediction_drift") or {}
    calibration = None
    if prediction.get("calibration"):
        calibration = Calibration.from_dict(prediction["calibration"])
    try:
        estimate = estimate_performance(
            model.predict_proba(window),
            metric=metric,
            classes=model.classes,
            seed=seed,
            calibration=calibration,
        )
    except ValueError as exc:
        return None, f"{metric} not estimated: {exc}"
    return estimate.to_dict(), ""


def _statistic(drift_result: dict[str, Any] | None, key: str) -> float | None:
    value = ((drift_result or {}).get(key) or {}).get("statistic")
    return None if value is None else float(value)


def decide_retrain(
    snapshot_path: str,
    drift_result: dict[str, Any] | None,
    store_uri: str,
    model_name: str,
    target: str,
    policy: dict[str, Any],
    *,
    now: str,
    run_label: str = "",
    champion_dir: str | None = None,
    champion_version: int | None = None,
    validation: dict[str, Any] | None = None,
    drift: dict[str, Any] | None = None,
) -> DecisionOutput:
    """Apply the retrain policy to this window and persist the policy's state.

    The champion is scored on the window's labels (rows without a label left out), so decay of
    its metric over consecutive windows counts toward a retrain even where the features did not
    drift. A window without labels (the label column missing or all null) gets the champion's
    metric estimated from its predicted probabilities instead (CBPE, which assumes no concept
    shift; see :mod:`refit.monitoring.estimate`), and the policy's state lists the window as
    still unlabelled. Label drift, prediction drift and feature mean shifts come from
    ``detect_drift``'s result. This step keeps state (the policy's, in the store) and so it
    also records, before its decision, what the pure steps found: the window's validation and
    drift summaries. The decision record holds the estimate, to be compared with the realised
    metric once the labels land. Training needs labels, and the challenger's holdout (its
    evaluation gate) is drawn from this window, so a retrain an unlabelled window calls for is
    deferred (``retrain`` false, reasons saying so; the policy state keeps it) and the next
    labelled window retrains for it.

    Args:
        snapshot_path: Parquet file of the window.
        drift_result: Output of ``detect_drift`` (None before the first promotion).
        store_uri: Root of refit's store.
        model_name: Model the decision is for.
        target: Label column.
        policy: Retrain policy as a dict (see ``RetrainPolicy``).
        now: Current time, ISO 8601.
        run_label: Label of this pipeline run in the audit log (and in the state's list of
            unlabelled windows).
        champion_dir: The champion's model folder (from ``resolve_champion``); None: no
            champion.
        champion_version: The champion's registered version (recorded with the decision).
        validation: The validation summary to record (``ValidationOutput.audit``), or None.
        drift: The drift summary to record (``DriftOutput.audit``), or None.

    Returns:
        Whether to retrain, the reasons, the champion's metric on this window (realised, or
        estimated on an unlabelled window) and what the policy saw.
    """
    retrain_policy = RetrainPolicy.from_dict(dict_param(policy, "policy"))
    registry = open_registry(store_uri, model_name)
    record_results(
        store_uri,
        model_name,
        {AuditEvent.VALIDATION: validation, AuditEvent.DRIFT: drift},
        run_label=run_label,
    )
    current = read_table(snapshot_path)
    labelled = has_labels(current, target)
    metric_value: float | None = None
    estimate: dict[str, Any] | None = None
    estimate_note = ""
    if champion_dir is not None:
        model = load_model(champion_dir)
        if labelled:
            rows = current.filter(pc.is_valid(current.column(target)))
            scores = evaluate(model, rows).to_dict()
            value = scores.get(retrain_policy.metric)
            metric_value = None if value is None else float(value)
        else:
            estimate, estimate_note = estimate_champion(
                model, current, retrain_policy.metric, drift_result
            )
    state = PolicyState.from_dict(registry.read_state(POLICY_STATE_KEY) or {})
    shifts = (drift_result or {}).get("mean_shift") or {}
    observation = Observation(
        drift_share=None if drift_result is None else float(drift_result["drift_share"]),
        metric_value=metric_value,
        new_rows=current.num_rows,
        now=now,
        has_champion=champion_dir is not None,
        label_drift=_statistic(drift_result, "label_drift"),
        prediction_drift=_statistic(drift_result, "prediction_drift"),
        mean_shifts={name: float(v["shift_sd"]) for name, v in shifts.items()},
        estimated_metric=None if estimate is None else float(estimate["value"]),
        estimated_interval=None
        if estimate is None
        else (float(estimate["lower"]), float(estimate["upper"])),
        window=run_label,
        labelled=labelled,
        trainable=labelled,
    )
    decision = decide(retrain_policy, state, observation)
    reasons = list(decision.reasons)
    if estimate_note and champion_dir is not None:
        reasons.append(estimate_note)
    registry.write_state(
        POLICY_STATE_KEY,
        decision.state.to_dict(),
        event=AuditEvent.DECISION,
        payload={
            "run_label": run_label,
            "retrain": decision.retrain,
            "reasons": reasons,
            "champion_version": champion_version if champion_dir is not None else None,
            "champion_metric": metric_value,
            "metric": retrain_policy.metric,
            "labelled": labelled,
            "estimate": estimate,
            "label_drift": observation.label_drift,
            "prediction_drift": observation.prediction_drift,
            "unlabelled_windows": list(decision.state.unlabelled_windows),
            "deferred_retrain": decision.state.deferred_retrain,
        },
    )
    return DecisionOutput(
        retrain=decision.retrain,
        reasons=reasons,
        champion_metric=metric_value,
        labelled=labelled,
        estimate=estimate,
        label_drift=observation.label_drift,
        prediction_drift=observation.prediction_drift,
    )


def decision_markdown(decision: DecisionOutput) -> str:
    """Render a retrain decision and its reasons as Markdown for the KFP UI."""
    verdict = "**Retrain.**" if decision.retrain else "**No retrain.**"
    metric = ""
    if decision.champion_metric is not None:
        metric = f"\n\nChampion on this window: {decision.champion_metric:.4f}"
    elif decision.estimate is not None:
        e = decision.estimate
        metric = (
            f"\n\nNo labels in this window. Champion's {e['metric']} estimated without labels "
            f"({e['method']}): {e['value']:.4f}, {e['confidence']:.0%} interval "
            f"[{e['lower']:.4f}, {e['upper']:.4f}]"
            f"{'' if e.get('calibrated') else ' (probabilities not calibrated)'}. "
            f"Assumes {e['assumption']}."
        )
    watched = [
        f"{what} {value:.4f}"
        for what, value in (
            ("label drift", decision.label_drift),
            ("prediction drift", decision.prediction_drift),
        )
        if value is not None
    ]
    if watched:
        metric += "\n\n" + "; ".join(watched) + " (apart from the features' drift share)"
    return verdict + metric + "\n\n" + "\n".join(f"- {r}" for r in decision.reasons) + "\n"
