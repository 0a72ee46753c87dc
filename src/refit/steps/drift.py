"""The step that judges a window's drift against the champion's data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from refit import drift as drift_lib
from refit.defaults import DRIFT_SHARE_THRESHOLD, policy_drift_threshold
from refit.drift.accumulate import profile_table
from refit.drift.explain import explain_drift
from refit.drift.multivariate import (
    MultivariateConfig,
    MultivariateDrift,
    multivariate_drift,
    render_multivariate_html,
)
from refit.drift.profile import Profile
from refit.drift.profile_io import load_profile, profile_uri
from refit.drift.report import render_drift_html
from refit.drift.result import DriftResult
from refit.errors import RefitError
from refit.steps.common import dict_param
from refit.steps.data import check_engine
from refit.steps.watch import LazyTable, watch_window, with_watch_section
from refit.tfdv.drift import tfdv_drift
from refit.training.artifacts import load_model

#: The report before the first promotion.
NO_REFERENCE_HTML = (
    "<!doctype html><meta charset='utf-8'><title>Drift</title>"
    "<p>No reference (no champion yet): there is nothing to compare this window with.</p>"
)


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

    def write(self, drift_path: str, report_path: str) -> dict[str, Any]:
        """Write the drift JSON and the HTML report; return the drift artifact's metadata.

        ``detect_drift`` and ``profile_drift`` (the sharded path) write their DriftReport
        artifacts through this one method, so the two are read the same way downstream.
        """
        with open(drift_path, "w", encoding="utf-8") as f:
            json.dump(self.result, f, sort_keys=True)
        with open(report_path, "w", encoding="utf-8") as f:
            f.write(self.html)
        return {
            **self.engine_metadata,
            "refit_type": "DriftReport",
            "drift_share": self.drift_share,
            "audit": json.dumps(self.audit, sort_keys=True),
        }


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
    own interpreter (:func:`refit.tfdv.drift.tfdv_drift`) on the reference data: L-infinity on
    categorical features, Jensen-Shannon divergence on numeric ones. Given the model trained on
    the reference (an XGBoost model) and the reference data, the result also says which features
    moved its predictions. The window and the reference are each read at most once as a table
    (when the TFDV engine, the explanation, the multivariate check or prediction drift needs
    their rows); the native engine profiles the window streaming, memory flat in its rows.

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
    excluded = {target, time_column}
    # Each file is read at most once, when a part of the check first needs its rows.
    window = LazyTable(snapshot_path)
    reference = LazyTable(reference_path) if reference_path else None
    compared: tuple[DriftResult, tuple[Profile, Profile]] | None = None
    if ran == "native":
        compared = _native_drift(
            reference_profile_path, reference, snapshot_path, excluded, share_threshold
        )
    elif reference is not None:
        compared = _tfdv_engine_drift(
            reference, window, excluded, beam_pipeline_args, share_threshold, metadata
        )
        metadata["engine"] = ran
        metadata["engine_requested"] = engine
    payload: dict[str, Any] | None = None
    html = NO_REFERENCE_HTML
    if compared is not None:
        payload, html = _report(
            *compared,
            target=target,
            excluded=excluded,
            model_dir=model_dir,
            reference=reference,
            window=window,
            multivariate=multivariate,
            title=f"Drift of {name} features ({ran} engine)",
            engine=ran,
        )
    return DriftOutput(
        result=payload,
        drift_share=0.0 if payload is None else float(payload["drift_share"]),
        html=html,
        engine=ran,
        engine_metadata=metadata,
        audit=_audit(payload, ran, engine, metadata),
    )


def _native_drift(
    reference_profile_path: str | None,
    reference: LazyTable | None,
    snapshot_path: str,
    excluded: set[str],
    share_threshold: float,
) -> tuple[DriftResult, tuple[Profile, Profile]] | None:
    """Refit's tests on the reference's profile (stored, else of its rows) and the window's."""
    if reference_profile_path:
        reference_profile = load_profile(reference_profile_path)
    elif reference is not None:
        reference_profile = profile_table(reference.get(), source=reference.path)
    else:
        return None
    columns = [c for c in reference_profile.columns if c not in excluded]
    current = profile_uri(snapshot_path)  # streamed: memory flat in the window's rows
    result = drift_lib.detect_drift(
        reference_profile,
        current,
        columns=[c for c in columns if c in current.columns],
        drift_share_threshold=share_threshold,
    )
    return result, (reference_profile, current)


def _tfdv_engine_drift(
    reference: LazyTable,
    window: LazyTable,
    excluded: set[str],
    beam_pipeline_args: list[str] | None,
    share_threshold: float,
    metadata: dict[str, Any],
) -> tuple[DriftResult, tuple[Profile, Profile]]:
    """TFDV's drift comparators on the reference's and the window's rows (metadata updated)."""
    reference_data = reference.get()
    current_data = window.get()
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
    metadata.update(tfdv_metadata)
    return result, (profile_table(reference_data), profile_table(current_data))


def _report(
    result: DriftResult,
    profiles: tuple[Profile, Profile],
    *,
    target: str,
    excluded: set[str],
    model_dir: str | None,
    reference: LazyTable | None,
    window: LazyTable,
    multivariate: Mapping[str, Any] | None,
    title: str,
    engine: str,
) -> tuple[dict[str, Any], str]:
    """The result dict and the HTML report: feature drift, its explanation, what is watched."""
    if model_dir and reference is not None:
        result = replace(result, explanation=_explanation(model_dir, reference, window))
    payload = result.to_dict()
    payload["engine"] = engine
    section = ""
    if multivariate:
        joint = _multivariate_check(multivariate, reference, window, excluded)
        payload["multivariate"] = joint.to_dict()
        section = render_multivariate_html(joint)
    html = render_drift_html(result, title=title, extra_html=section)
    payload.update(
        watch_window(
            *profiles,
            target,
            [c for c in payload["features"] if c not in excluded],
            model_dir=model_dir,
            reference=reference,
            reference_path=None if reference is None else reference.path,
            window=window,
        )
    )
    return payload, with_watch_section(html, payload)


def _audit(
    payload: dict[str, Any] | None, ran: str, requested: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """The summary the ``drift`` audit record holds."""
    watched = payload or {}
    audit = {
        "drift_share": None if payload is None else float(payload["drift_share"]),
        "drifted": [n for n, f in watched.get("features", {}).items() if f["drifted"]],
        "label_drift": (watched.get("label_drift") or {}).get("statistic"),
        "prediction_drift": (watched.get("prediction_drift") or {}).get("statistic"),
        "engine": ran,
        "engine_requested": requested,
        **({"tfdv_version": metadata.get("tfdv_version")} if ran == "tfdv" else {}),
    }
    if "multivariate" in watched:
        joint = watched["multivariate"]
        audit["multivariate"] = {k: joint[k] for k in ("drifted", "statistic", "p_value")}
    return audit


def _multivariate_check(
    settings: Mapping[str, Any],
    reference: LazyTable | None,
    window: LazyTable,
    excluded: set[str],
) -> MultivariateDrift:
    """The multivariate check on the reference data, or a result saying why it did not run."""
    config = MultivariateConfig.from_dict(dict_param(settings, "multivariate"))
    if reference is None:
        return MultivariateDrift(
            method=config.method,
            note="not run: no reference data (only a profile), and the check needs rows",
        )
    reference_data = reference.get()
    current = window.get()
    columns = [
        c for c in reference_data.column_names if c not in excluded and c in current.column_names
    ]
    return multivariate_drift(reference_data, current, columns, config)


def _explanation(model_dir: str, reference: LazyTable, window: LazyTable) -> dict[str, Any]:
    """Which features moved the model's predictions (XGBoost models only; else empty)."""
    try:
        model = load_model(model_dir)
        if model.trainer != "xgboost":
            return {}
        return explain_drift(model, reference.get(), window.get())
    except RefitError as exc:
        return {"error": f"no explanation: {exc}"}
