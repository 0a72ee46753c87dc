"""Steps that judge a window: drift against the champion's data, the retrain decision."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from refit import drift as drift_lib
from refit.drift.explain import explain_drift
from refit.drift.profile import Profile, load_profile, profile_table, profile_uri, save_profile
from refit.drift.report import render_drift_html
from refit.errors import RefitError, SchemaError
from refit.evaluation.metrics import evaluate
from refit.io import uri as uri_lib
from refit.io.tables import read_table
from refit.policy import Observation, PolicyState, RetrainPolicy, decide
from refit.registry import ModelRegistry
from refit.steps.common import reference_table

POLICY_STATE_KEY = "policy"


@dataclass
class DriftOutput:
    """What ``detect_drift`` reports."""

    result: dict[str, Any] | None
    drift_share: float
    html: str


def detect_drift(
    snapshot_path: str,
    store_uri: str,
    model_name: str,
    target: str,
    *,
    time_column: str = "",
    run_label: str = "",
) -> DriftOutput:
    """Compare a window's features with the champion's training data.

    Args:
        snapshot_path: Parquet file of the window.
        store_uri: Root of refit's store.
        model_name: Model whose champion supplies the reference.
        target: Label column (excluded from feature drift).
        time_column: Time column (excluded from feature drift).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The drift result as a dict (None before the first promotion), its drift share
        (0 without a reference) and the HTML report.
    """
    registry = ModelRegistry(store_uri, model_name)
    reference = reference_profile(registry)
    if reference is None:
        payload: dict[str, Any] | None = None
        share = 0.0
        html = (
            "<!doctype html><meta charset='utf-8'><title>Drift</title>"
            "<p>No champion yet: there is no reference to compare this window with.</p>"
        )
    else:
        columns = [c for c in reference.columns if c not in {target, time_column}]
        current = profile_uri(snapshot_path)
        result = drift_lib.detect_drift(
            reference, current, columns=[c for c in columns if c in current.columns]
        )
        result = replace(result, explanation=_explanation(registry, snapshot_path))
        payload = result.to_dict()
        share = float(payload["drift_share"])
        html = render_drift_html(result, title=f"Drift of {model_name} features")
    registry.audit.append(
        "drift",
        {
            "run_label": run_label,
            "drift_share": share if payload is not None else None,
            "drifted": [n for n, f in (payload or {}).get("features", {}).items() if f["drifted"]],
        },
    )
    return DriftOutput(result=payload, drift_share=share, html=html)


def _explanation(registry: ModelRegistry, snapshot_path: str) -> dict[str, Any]:
    """Which features moved the champion's predictions (XGBoost champions only; else empty)."""
    champion = registry.champion()
    if champion is None:
        return {}
    try:
        model = registry.load_model(champion.version)
        if model.trainer != "xgboost":
            return {}
        reference = reference_table(registry)
        if reference is None:
            return {}
        return explain_drift(model, reference, read_table(snapshot_path))
    except RefitError as exc:
        return {"error": f"no explanation: {exc}"}


def reference_profile(registry: ModelRegistry) -> Profile | None:
    """The champion's training-data profile, computed once and stored beside its snapshot.

    Stored at ``{store}/profiles/{snapshot_sha256}.json``; a missing or outdated (other format
    version) profile is recomputed from the snapshot and stored. None before the first promotion.
    """
    champion = registry.champion()
    if champion is None:
        return None
    path = uri_lib.join(registry.store_uri, "profiles", f"{champion.snapshot_sha256}.json")
    if uri_lib.exists(path):
        try:
            return load_profile(path)
        except SchemaError:
            pass  # written by another refit version: profile the snapshot again
    table = reference_table(registry)
    assert table is not None
    profile = profile_table(table, source=f"snapshot {champion.snapshot_sha256}")
    save_profile(profile, path)
    return profile


@dataclass
class DecisionOutput:
    """What ``decide_retrain`` reports."""

    retrain: bool
    reasons: list[str]
    champion_metric: float | None


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
) -> DecisionOutput:
    """Apply the retrain policy to this window and persist the policy's state.

    The champion is scored on the window's labels, so decay of its metric over consecutive
    windows counts toward a retrain even where the features did not drift.

    Args:
        snapshot_path: Parquet file of the window.
        drift_result: Output of ``detect_drift`` (None before the first promotion).
        store_uri: Root of refit's store.
        model_name: Model the decision is for.
        target: Label column.
        policy: Retrain policy as a dict (see ``RetrainPolicy``).
        now: Current time, ISO 8601.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        Whether to retrain, the reasons, and the champion's metric on this window.
    """
    retrain_policy = RetrainPolicy.from_dict(policy)
    registry = ModelRegistry(store_uri, model_name)
    current = read_table(snapshot_path)
    champion = registry.champion()
    metric_value: float | None = None
    if champion is not None and target in current.column_names:
        scores = evaluate(registry.load_model(champion.version), current).to_dict()
        value = scores.get(retrain_policy.metric)
        metric_value = None if value is None else float(value)
    state = PolicyState.from_dict(registry.read_state(POLICY_STATE_KEY) or {})
    observation = Observation(
        drift_share=None if drift_result is None else float(drift_result["drift_share"]),
        metric_value=metric_value,
        new_rows=current.num_rows,
        now=now,
        has_champion=champion is not None,
    )
    decision = decide(retrain_policy, state, observation)
    registry.write_state(POLICY_STATE_KEY, decision.state.to_dict())
    registry.audit.append(
        "decision",
        {
            "run_label": run_label,
            "retrain": decision.retrain,
            "reasons": decision.reasons,
            "champion_version": None if champion is None else champion.version,
            "champion_metric": metric_value,
            "metric": retrain_policy.metric,
        },
    )
    return DecisionOutput(
        retrain=decision.retrain, reasons=decision.reasons, champion_metric=metric_value
    )


def decision_markdown(decision: DecisionOutput) -> str:
    """Render a retrain decision and its reasons as Markdown for the KFP UI."""
    verdict = "**Retrain.**" if decision.retrain else "**No retrain.**"
    metric = (
        ""
        if decision.champion_metric is None
        else f"\n\nChampion on this window: {decision.champion_metric:.4f}"
    )
    return verdict + metric + "\n\n" + "\n".join(f"- {r}" for r in decision.reasons) + "\n"
