"""Steps that judge a window: drift against the champion's data, the retrain decision."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from html import escape
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit import drift as drift_lib
from refit.audit.events import AuditEvent
from refit.defaults import DRIFT_SHARE_THRESHOLD, policy_drift_threshold
from refit.drift import watch
from refit.drift.detect import DriftResult, FeatureDrift, not_comparable_feature
from refit.drift.explain import explain_drift
from refit.drift.multivariate import (
    MultivariateConfig,
    MultivariateDrift,
    multivariate_drift,
    render_multivariate_html,
)
from refit.drift.profile import Profile, load_profile, profile_table, profile_uri
from refit.drift.report import render_drift_html
from refit.errors import DataError, RefitError
from refit.evaluation.metrics import evaluate
from refit.io import uri as uri_lib
from refit.io.tables import read_table
from refit.monitoring import ESTIMABLE_METRICS, Calibration, estimate_performance, fit_calibration
from refit.policy import Observation, PolicyState, RetrainPolicy, decide
from refit.registry import open_registry
from refit.steps.common import dict_param
from refit.steps.data import check_engine
from refit.steps.resolve import record_results
from refit.training.artifacts import load_model, read_metadata
from refit.training.features import encode_target
from refit.training.trainers import TrainedModel

POLICY_STATE_KEY = "policy"

#: TFDV engine: the ``infinity_norm`` threshold refit sets on each categorical feature (as
#: refit's own ``linf`` test).
TFDV_LINF_THRESHOLD = 0.1
#: TFDV engine: the ``jensen_shannon_divergence`` threshold refit sets on each numeric feature.
#: TFDV bins on its 10 equal-width histogram buckets, whose noise floor on unshifted windows of
#: a few hundred to a few thousand rows reaches 0.02-0.04 (refit's demo data: unshifted <= 0.036,
#: the demo's shifted features >= 0.11 at 800 rows); 0.05 flags the features refit's native
#: tests flag there (see also ``tests/e2e/test_tfdv_parity.py``).
TFDV_JS_DIVERGENCE_THRESHOLD = 0.05


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


def champion_holdout(
    model_dir: str, reference: pa.Table, reference_path: str | None
) -> tuple[pa.Table, bool, str]:
    """The champion's holdout rows within its training data, when they can be told apart.

    ``train_model`` holds out a seeded permutation's first rows; its model card records the
    seed, the training rows, the holdout's size ("the seeded holdout, N rows") and the training
    file's sha256. When all agree with ``reference`` (same file, same row count), the same
    permutation gives back the holdout. Otherwise the whole reference is returned, and the words
    say its scores are in-sample.

    Returns:
        ``(rows, is_holdout, what the rows are in words)``.
    """
    card = read_metadata(model_dir).get("card") or {}
    source = str((card.get("validation") or {}).get("source", ""))
    match = re.fullmatch(r"the seeded holdout, (\d+) rows", source)
    if match and reference_path and isinstance(card.get("seed"), int):
        n_holdout = int(match.group(1))
        same_rows = reference.num_rows - int(card.get("train_rows") or 0) == n_holdout
        if same_rows and 0 < n_holdout < reference.num_rows:
            digest = hashlib.sha256(uri_lib.read_bytes(reference_path)).hexdigest()
            if digest == card.get("data_sha256"):
                order = np.random.default_rng(card["seed"]).permutation(reference.num_rows)
                rows = reference.take(np.sort(order[:n_holdout]))
                return rows, True, f"the champion's seeded holdout ({n_holdout} rows)"
    return (
        reference,
        False,
        f"the champion's training data ({reference.num_rows} rows; in-sample scores, more "
        "confident than on new data: its holdout could not be recovered)",
    )


def model_scores(model: TrainedModel, table: pa.Table) -> np.ndarray:
    """The scores prediction drift compares.

    A binary classifier's positive-class probability, a multiclass classifier's predicted class
    (as text), a regressor's predicted value.
    """
    if model.task == "regression":
        return np.asarray(model.predict(table), dtype=np.float64)
    proba = model.predict_proba(table)
    if proba.shape[1] == 2:
        return proba[:, 1]
    return np.asarray([str(c) for c in model.predict(table)], dtype=object)


def has_labels(table: pa.Table, target: str) -> bool:
    """Whether a window holds at least one label (the column exists and is not all null)."""
    return target in table.column_names and table.column(target).null_count < table.num_rows


def watch_window(
    reference_profile: Profile,
    current_profile: Profile,
    target: str,
    features: list[str],
    *,
    model_dir: str | None = None,
    reference: pa.Table | str | None = None,
    reference_path: str | None = None,
    snapshot_path: str = "",
) -> dict[str, Any]:
    """Label drift, prediction drift and feature mean shifts of a window (see refit.drift.watch).

    Prediction drift needs the champion (``model_dir``), its training data (``reference``: a
    table, or its path) and the window (``snapshot_path``); its reference scores are on the
    champion's holdout when :func:`champion_holdout` recovers it, and then a calibration of the
    champion's probabilities is fitted on the holdout's labels (for the label-free estimate
    ``decide_retrain`` makes on unlabelled windows).

    Returns:
        ``label_drift`` (None when the window is unlabelled), ``prediction_drift`` (None
        without a champion; ``{"error": ...}`` when it could not be scored) and ``mean_shift``.
    """
    out: dict[str, Any] = {
        "label_drift": watch.label_drift(reference_profile, current_profile, target),
        "prediction_drift": None,
        "mean_shift": watch.mean_shifts(reference_profile, current_profile, features),
    }
    if not (model_dir and reference is not None and snapshot_path):
        return out
    try:
        model = load_model(model_dir)
        table = read_table(reference) if isinstance(reference, str) else reference
        rows, is_holdout, what = champion_holdout(
            model_dir, table, reference_path or (reference if isinstance(reference, str) else None)
        )
        window = read_table(snapshot_path)
        drift = watch.prediction_drift(
            model_scores(model, rows), model_scores(model, window), reference=what
        )
        drift["calibration"] = None
        if model.task != "regression" and is_holdout and has_labels(rows, target):
            labelled = rows.filter(pc.is_valid(rows.column(target)))
            try:
                calibration = fit_calibration(
                    model.predict_proba(labelled), encode_target(labelled, model.spec)
                )
                drift["calibration"] = calibration.to_dict()
            except ValueError as exc:  # too few rows, one class: the estimate goes uncalibrated
                drift["calibration_note"] = f"no calibration: {exc}"
        out["prediction_drift"] = drift
    except (RefitError, ValueError) as exc:
        out["prediction_drift"] = {"error": f"no prediction drift: {exc}"}
    return out


def with_watch_section(html: str, payload: dict[str, Any]) -> str:
    """Add the label and prediction drift to a drift report, apart from the features."""
    rows = []
    label = payload.get("label_drift")
    if label is None:
        rows.append("<tr><th>label drift</th><td>not measured: the window has no labels</td></tr>")
    else:
        detail = ""
        if label.get("kind") == "classes":
            shares = ", ".join(
                f"{escape(c)}: {label['reference_shares'][c]:.3f} &rarr; "
                f"{label['current_shares'][c]:.3f}"
                for c in label["current_shares"]
            )
            p_value = label.get("p_value")
            p_text = "" if p_value is None else f"; chi-square p = {p_value:.3g}"
            detail = f" (class shares {shares}{p_text})"
        statistic = f"{label['test']} {label['statistic']:.4f}"
        rows.append(f"<tr><th>label drift</th><td>{statistic}{detail}</td></tr>")
    prediction = payload.get("prediction_drift")
    if prediction is None:
        rows.append("<tr><th>prediction drift</th><td>not measured: no champion</td></tr>")
    elif "error" in prediction:
        rows.append(f"<tr><th>prediction drift</th><td>{escape(prediction['error'])}</td></tr>")
    else:
        means = ""
        if "reference_mean" in prediction:
            means = (
                f"; mean score {prediction['reference_mean']:.4f} &rarr; "
                f"{prediction['current_mean']:.4f}"
            )
        rows.append(
            f"<tr><th>prediction drift</th><td>{prediction['test']} "
            f"{prediction['statistic']:.4f} against {escape(prediction['reference'])}{means}"
            "</td></tr>"
        )
    section = (
        "<section id='label-prediction-drift'><h2>Label and prediction drift</h2>"
        "<p>Apart from the features' drift share; the retrain policy judges them by its own "
        "thresholds.</p><table>" + "".join(rows) + "</table></section>"
    )
    if "</body>" in html:
        return html.replace("</body>", section + "</body>", 1)
    return html + section


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


def _for_tfdv(table: pa.Table) -> pa.Table:
    """Booleans as strings, so TFDV sees a categorical feature (``infinity_norm``)."""
    columns = [c.cast(pa.string()) if pa.types.is_boolean(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _category_shares(stats: Any) -> dict[str, float]:
    """Category -> share from a feature's TFDV string statistics (top values)."""
    if stats is None or not stats.HasField("string_stats"):
        return {}
    values = stats.string_stats.top_values
    total = sum(v.frequency for v in values) or 1.0
    return {v.value: v.frequency / total for v in values}


def tfdv_drift(
    reference: pa.Table,
    current: pa.Table,
    columns: list[str],
    *,
    beam_pipeline_args: list[str] | None = None,
    drift_share_threshold: float = 0.5,
    tfdv_python: str | None = None,
    staging_uri: str | None = None,
) -> tuple[DriftResult, dict[str, Any]]:
    """Feature drift judged by TFDV's drift comparators, as a refit :class:`DriftResult`.

    A schema is inferred from the reference (refit's inference, as the parity tests use) and
    given ``infinity_norm`` (threshold :data:`TFDV_LINF_THRESHOLD`) on categorical features
    and ``jensen_shannon_divergence`` (:data:`TFDV_JS_DIVERGENCE_THRESHOLD`) on numeric ones;
    TFDV's ``validate_statistics(..., previous_statistics=reference)`` measures them. A
    Jensen-Shannon feature's ``statistic`` is the distance (the square root of TFDV's
    divergence, as refit's ``jensenshannon`` test reports it; threshold likewise), and a
    feature drifted when TFDV raised its ``COMPARATOR_*_HIGH`` anomaly.

    Args:
        reference: Reference data (the champion's training snapshot).
        current: The window.
        columns: Columns to compare (present on both sides).
        beam_pipeline_args: Beam flags for TFDV's statistics (None: in-process).
        drift_share_threshold: The dataset drifted when this share of features drifted.
        tfdv_python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        staging_uri: ``gs://`` location for a remote Beam runner's inputs and outputs
            (default: the ``--temp_location`` flag; see
            :func:`refit.tfdv.client.staging_location`).

    Returns:
        The drift result and the engine's metadata (TFDV version, Beam args, timings).

    Raises:
        DataError: No column can be compared. TfdvUnavailableError: no TFDV environment.
    """
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    from refit.drift.profile import feature_type
    from refit.validation import compute_statistics, infer_schema
    from refit.validation.engines import drift_measurements, run_validation
    from refit.validation.statistics import common_stats, feature_stats

    features: dict[str, FeatureDrift] = {}
    skipped: dict[str, str] = {}
    types: dict[str, str] = {}
    for name in columns:
        ref_type = feature_type(reference.column(name).type)
        cur_type = feature_type(current.column(name).type)
        if ref_type is None:
            skipped[name] = f"no drift comparator for type {reference.column(name).type}"
        elif ref_type != cur_type:
            features[name] = not_comparable_feature(
                name,
                ref_type,
                f"type changed from {reference.column(name).type} to {current.column(name).type}",
            )
        else:
            types[name] = ref_type
    if not types:
        raise DataError(
            f"no feature can be compared for drift with TFDV (columns {columns}; skipped: "
            f"{skipped or 'none'})"
        )
    tested = list(types)
    ref = _for_tfdv(reference.select(tested))
    cur = _for_tfdv(current.select(tested))
    schema = infer_schema(compute_statistics(ref))
    for feature in schema.feature:
        if types.get(feature.name) == "categorical":
            feature.drift_comparator.infinity_norm.threshold = TFDV_LINF_THRESHOLD
        elif feature.name in types:
            threshold = TFDV_JS_DIVERGENCE_THRESHOLD
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
    result = run_validation(
        cur,
        reference=ref,
        schema=schema,
        engine="tfdv",
        beam_pipeline_args=beam_pipeline_args,
        tfdv_python=tfdv_python,
        staging_uri=staging_uri,
    )
    measured = drift_measurements(result.anomalies)
    comparator_reasons = {
        anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
        anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    }
    flagged = {
        name
        for name, info in result.anomalies.anomaly_info.items()
        if any(r.type in comparator_reasons for r in info.reason)
    }
    cur_stats = feature_stats(result.statistics)
    ref_stats = (
        feature_stats(result.reference_statistics)
        if result.reference_statistics is not None
        else {}
    )
    for name, ftype in types.items():
        counts: dict[str, Any] = {}
        for side, stats in (("reference", ref_stats.get(name)), ("current", cur_stats.get(name))):
            common = common_stats(stats) if stats is not None else None
            counts[f"n_{side}"] = int(common.num_non_missing) if common is not None else 0
            counts[f"missing_{side}"] = int(common.num_missing) if common is not None else 0
        if name not in measured:
            features[name] = not_comparable_feature(
                name, ftype, "TFDV measured no drift (no values on a side?)", **counts
            )
            continue
        kind, value, threshold = measured[name]
        distribution: dict[str, Any] = {}
        if kind == "L_INFTY":
            test, statistic = "linf", value
            ref_shares = _category_shares(ref_stats.get(name))
            cur_shares = _category_shares(cur_stats.get(name))
            labels = sorted(set(ref_shares) | set(cur_shares))
            if labels:
                distribution = {
                    "kind": "categories",
                    "labels": labels,
                    "reference": [ref_shares.get(k, 0.0) for k in labels],
                    "current": [cur_shares.get(k, 0.0) for k in labels],
                }
        else:
            test, statistic = "jensenshannon", math.sqrt(max(value, 0.0))
            threshold = math.sqrt(max(threshold, 0.0))
        features[name] = FeatureDrift(
            name=name,
            test=test,
            type=ftype,
            statistic=statistic,
            p_value=None,
            threshold=threshold,
            drifted=name in flagged,
            kind="distance",
            error_bound=None,
            distribution=distribution,
            **counts,
        )
    comparable = [f for f in features.values() if f.comparable]
    if not comparable:
        raise DataError(f"TFDV measured the drift of no feature (columns {tested}): empty window?")
    n_drifted = sum(f.drifted for f in comparable)
    share = n_drifted / len(comparable)
    drift = DriftResult(
        drifted=share >= drift_share_threshold,
        drift_share=share,
        n_features=len(comparable),
        n_drifted=n_drifted,
        features=dict(sorted(features.items())),
        drift_share_threshold=float(drift_share_threshold),
        skipped=skipped,
    )
    return drift, dict(result.metadata)


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
