"""The step that judges a window's drift against the champion's data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from refit import drift as drift_lib
from refit.defaults import DRIFT_SHARE_THRESHOLD, policy_drift_threshold
from refit.drift.detect import DriftResult
from refit.drift.explain import explain_drift
from refit.drift.multivariate import (
    MultivariateConfig,
    MultivariateDrift,
    multivariate_drift,
    render_multivariate_html,
)
from refit.drift.profile import Profile, load_profile, profile_table, profile_uri
from refit.drift.report import render_drift_html
from refit.errors import RefitError
from refit.io.tables import read_table
from refit.steps.common import dict_param
from refit.steps.data import check_engine
from refit.steps.watch import watch_window, with_watch_section
from refit.tfdv.drift import tfdv_drift
from refit.training.artifacts import load_model


@dataclass
class DriftOutput:
    """What ``detect_drift`` reports.

    Attributes:
        result: The drift result as a dict (``DriftResult.to_dict()`` plus ``engine``), None
            before the first promotion.
        drift_share: Share of compared features that drifted (0 without a reference).
        html: Self-contained HTML report.
        engine: The engine that ran (``"native"`` or ``"tfdv"``).
        engine_metadata: ``engine``, ``engine_requested`` and, for TFDV, its version, Beam
            args and timings.
        audit: The summary the ``drift`` audit record holds (recorded by ``decide_retrain``).
    """

    result: dict[str, Any] | None
    drift_share: float
    html: str
    engine: str = "native"
    engine_metadata: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)


def detect_drift(
    snapshot_path: str,
    target: str,
    *,
    reference_profile_path: str | None = None,
    reference_path: str | None = None,
    model_dir: str | None = None,
    time_column: str = "",
    engine: str = "native",
    beam_pipeline_args: list[str] | None = None,
    name: str = "the window",
    policy: dict[str, Any] | None = None,
    multivariate: Mapping[str, Any] | None = None,
) -> DriftOutput:
    """Compare a window's features with reference data (the champion's training data).

    The native engine runs refit's per-feature tests on the reference's profile
    (:func:`refit.drift.detect_drift`), read from ``reference_profile_path`` or computed from
    ``reference_path``. The TFDV engine (``engine="tfdv"``) runs TFDV's drift comparators in its
    own interpreter (:func:`tfdv_drift`) on the reference data: L-infinity on categorical
    features, Jensen-Shannon divergence on numeric ones. Given the model trained on the
    reference (an XGBoost model) and the reference data, the result also says which features
    moved its predictions.

    Args:
        snapshot_path: Parquet file of the window.
        target: Label column (excluded from feature drift).
        reference_profile_path: Drift profile (JSON) of the reference, or None.
        reference_path: Parquet file of the reference data, or None.
        model_dir: Folder of the model trained on the reference (the champion), or None.
        time_column: Time column (excluded from feature drift).
        engine: ``"native"`` (default), ``"tfdv"`` or ``"auto"`` (native); the engine that ran
            is in the output and the result dict.
        beam_pipeline_args: TFDV engine: Beam flags; given (non-empty), TFDV's statistics run
            as a Beam pipeline with them (a remote runner's inputs and outputs are staged under
            the flags' ``gs://`` ``--temp_location``). None: TFDV in-process.
        name: What the report calls the data.
        policy: The retrain policy the run decides by (default
            :data:`refit.defaults.DEFAULT_POLICY`): the dataset verdict ("dataset drift" or not)
            uses its ``drift_share_threshold``, so the report says what the decision does.
        multivariate: Settings of the multivariate check
            (:class:`refit.drift.multivariate.MultivariateConfig` as a dict; ``{"method":
            "pca_reconstruction"}`` runs it with the defaults); None or ``{}``: off. It needs
            the reference data (``reference_path``); its result goes to the result dict's and
            the audit's ``multivariate`` and to the report, apart from the drift share.

    Returns:
        The drift result as a dict (None without a reference: the first run), its drift share
        (0 without a reference), the HTML report, the engine that ran and the summary the
        audit log records.

    Raises:
        SchemaError: Unknown engine.
        TfdvUnavailableError: ``engine="tfdv"`` without a TFDV environment (says how to make
            one).
    """
    ran = check_engine(engine)
    share_threshold = policy_drift_threshold(policy)
    if share_threshold is None:  # the policy's drift trigger is off: the report's own default
        share_threshold = DRIFT_SHARE_THRESHOLD
    metadata: dict[str, Any] = {"engine": ran, "engine_requested": engine}
    result: DriftResult | None = None
    payload: dict[str, Any] | None = None
    share = 0.0
    html = (
        "<!doctype html><meta charset='utf-8'><title>Drift</title>"
        "<p>No reference (no champion yet): there is nothing to compare this window with.</p>"
    )
    excluded = {target, time_column}
    reference_data: pa.Table | None = None
    # Profiles of both sides, for what the drift share leaves out (label, mean shifts).
    profiles: tuple[Profile, Profile] | None = None
    if ran == "native":
        reference: Profile | None = None
        if reference_profile_path:
            reference = load_profile(reference_profile_path)
        elif reference_path:
            reference_data = read_table(reference_path)
            reference = profile_table(reference_data, source=reference_path)
        if reference is not None:
            columns = [c for c in reference.columns if c not in excluded]
            current = profile_uri(snapshot_path)
            result = drift_lib.detect_drift(
                reference,
                current,
                columns=[c for c in columns if c in current.columns],
                drift_share_threshold=share_threshold,
            )
            profiles = (reference, current)
    elif reference_path:
        reference_data = read_table(reference_path)
        current_data = read_table(snapshot_path)
        columns = [
            c
            for c in reference_data.column_names
            if c not in excluded and c in current_data.column_names
        ]
        result, tfdv_metadata = tfdv_drift(
            reference_data,
            current_data,
            columns,
            beam_pipeline_args=beam_pipeline_args,
            drift_share_threshold=share_threshold,
        )
        profiles = (profile_table(reference_data), profile_table(current_data))
        metadata.update(tfdv_metadata)
        metadata["engine"] = ran
        metadata["engine_requested"] = engine
    if result is not None:
        if model_dir and reference_path:
            ref = reference_data if reference_data is not None else reference_path
            explanation = _explanation(model_dir, ref, snapshot_path)
            result = replace(result, explanation=explanation)
        payload = result.to_dict()
        payload["engine"] = ran
        share = float(payload["drift_share"])
        section = ""
        if multivariate:
            joint = _multivariate_check(
                multivariate, reference_data, reference_path, snapshot_path, excluded
            )
            payload["multivariate"] = joint.to_dict()
            section = render_multivariate_html(joint)
        html = render_drift_html(
            result, title=f"Drift of {name} features ({ran} engine)", extra_html=section
        )
        assert profiles is not None
        payload.update(
            watch_window(
                *profiles,
                target,
                [c for c in payload["features"] if c not in excluded],
                model_dir=model_dir,
                reference=reference_data if reference_data is not None else reference_path,
                reference_path=reference_path,
                snapshot_path=snapshot_path,
            )
        )
        html = with_watch_section(html, payload)
    watched = payload or {}
    audit = {
        "drift_share": share if payload is not None else None,
        "drifted": [n for n, f in watched.get("features", {}).items() if f["drifted"]],
        "label_drift": (watched.get("label_drift") or {}).get("statistic"),
        "prediction_drift": (watched.get("prediction_drift") or {}).get("statistic"),
        "engine": ran,
        "engine_requested": engine,
        **({"tfdv_version": metadata.get("tfdv_version")} if ran == "tfdv" else {}),
    }
    if payload is not None and "multivariate" in payload:
        joint_dict = payload["multivariate"]
        audit["multivariate"] = {k: joint_dict[k] for k in ("drifted", "statistic", "p_value")}
    return DriftOutput(
        result=payload,
        drift_share=share,
        html=html,
        engine=ran,
        engine_metadata=metadata,
        audit=audit,
    )


def _multivariate_check(
    settings: Mapping[str, Any],
    reference_data: pa.Table | None,
    reference_path: str | None,
    snapshot_path: str,
    excluded: set[str],
) -> MultivariateDrift:
    """The multivariate check on the reference data, or a result saying why it did not run."""
    config = MultivariateConfig.from_dict(dict_param(settings, "multivariate"))
    reference = reference_data
    if reference is None:
        if not reference_path:
            return MultivariateDrift(
                method=config.method,
                note="not run: no reference data (only a profile), and the check needs rows",
            )
        reference = read_table(reference_path)
    current = read_table(snapshot_path)
    columns = [c for c in reference.column_names if c not in excluded and c in current.column_names]
    return multivariate_drift(reference, current, columns, config)


def _explanation(model_dir: str, reference: pa.Table | str, snapshot_path: str) -> dict[str, Any]:
    """Which features moved the model's predictions (XGBoost models only; else empty)."""
    try:
        model = load_model(model_dir)
        if model.trainer != "xgboost":
            return {}
        if isinstance(reference, str):
            reference = read_table(reference)
        return explain_drift(model, reference, read_table(snapshot_path))
    except RefitError as exc:
        return {"error": f"no explanation: {exc}"}
