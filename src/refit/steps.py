"""One function per pipeline step: what each KFP component does, importable and testable.

Components in ``components/`` are thin wrappers: they pass their artifact paths and parameters to
the function of the same name here and copy the returned values into KFP outputs. Everything a
step records (rows, anomalies, drift share, decisions, versions) also goes to the model's
append-only audit log, tagged with ``run_label``, so a timeline can be read back from the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from refit import drift as drift_lib
from refit.deploy import get_target
from refit.drift.report import render_drift_html
from refit.errors import DataError
from refit.evaluation.gate import GateConfig, gate
from refit.evaluation.metrics import evaluate
from refit.io.snapshot import create_snapshot, load_snapshot
from refit.io.tables import read_table, write_parquet
from refit.policy import Observation, PolicyState, RetrainPolicy, decide
from refit.registry import ModelRegistry
from refit.training.artifacts import load_model, save_model
from refit.training.trainers import train
from refit.validation import ValidationOptions, validate_table
from refit.validation.report import render_validation_html
from refit.validation.schema import schema_to_text

POLICY_STATE_KEY = "policy"

#: Values may leave the reference's [min, max] by this share of its width before validation
#: flags them. Extremes of heavy-tailed columns move between windows, and a shifted population
#: is drift's business, not a data error; a value far outside (a negative age, a unit change)
#: still stops the run.
RANGE_TOLERANCE = 1.0


def _write_text(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _feature_columns(table: pa.Table, target: str, time_column: str) -> list[str]:
    return [c for c in table.column_names if c not in {target, time_column}]


def _reference(registry: ModelRegistry) -> pa.Table | None:
    """Return the champion's training snapshot, or None before the first promotion."""
    champion = registry.champion()
    if champion is None:
        return None
    table, _ = load_snapshot(registry.store_uri, champion.snapshot_sha256)
    return table


@dataclass
class SnapshotOutput:
    """What ``snapshot_data`` reports."""

    sha256: str
    rows: int
    columns: list[str]


def snapshot_data(
    data_uri: str,
    store_uri: str,
    model_name: str,
    output_path: str,
    *,
    time_column: str = "",
    run_label: str = "",
) -> SnapshotOutput:
    """Read a window of data and store it as a content-addressed snapshot.

    Args:
        data_uri: CSV or Parquet path or URI of the window.
        store_uri: Root of refit's store (snapshots, registry, audit log).
        model_name: Model whose audit log records the snapshot.
        output_path: Where the snapshot's Parquet copy is written (the KFP Dataset output).
        time_column: Optional column holding event times; recorded as the snapshot's window.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The snapshot's sha256, row count and columns.

    Raises:
        DataError: The data cannot be read.
    """
    table = read_table(data_uri)
    snap = create_snapshot(table, store_uri, source=data_uri, time_column=time_column or None)
    write_parquet(table, output_path)
    ModelRegistry(store_uri, model_name).audit.append(
        "snapshot",
        {"run_label": run_label, "sha256": snap.sha256, "rows": snap.rows, "source": data_uri},
    )
    return SnapshotOutput(sha256=snap.sha256, rows=snap.rows, columns=list(snap.columns))


@dataclass
class ValidationOutput:
    """What ``validate_data`` reports."""

    passed: bool
    anomalies: list[dict[str, Any]]
    html: str
    metrics: dict[str, float]


def validate_data(
    snapshot_path: str,
    store_uri: str,
    model_name: str,
    target: str,
    *,
    anomalies_path: str | None = None,
    run_label: str = "",
) -> ValidationOutput:
    """Validate a window against the champion's training data (schema and anomalies).

    Before the first promotion there is no reference: the schema is inferred from the window
    itself, so only dataset-level checks (empty window, missing target, all-null columns) apply.

    Args:
        snapshot_path: Parquet file of the window.
        store_uri: Root of refit's store.
        model_name: Model whose champion supplies the reference.
        target: Label column; its absence is an anomaly.
        anomalies_path: If given, the Anomalies text proto is written there.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        Whether the window passed, its anomalies, the HTML report and summary metrics.
    """
    registry = ModelRegistry(store_uri, model_name)
    current = read_table(snapshot_path)
    result = validate_table(
        current,
        _reference(registry),
        options=ValidationOptions(required_columns=(target,), range_tolerance=RANGE_TOLERANCE),
    )
    anomalies = result.summary()
    if anomalies_path:
        from google.protobuf import text_format

        _write_text(anomalies_path, text_format.MessageToString(result.anomalies))
        _write_text(
            str(Path(anomalies_path).with_suffix(".schema.pbtxt")), schema_to_text(result.schema)
        )
    registry.audit.append(
        "validation",
        {
            "run_label": run_label,
            "passed": result.ok,
            "anomalies": anomalies,
            "rows": current.num_rows,
        },
    )
    return ValidationOutput(
        passed=result.ok,
        anomalies=anomalies,
        html=render_validation_html(result, title=f"Validation of {model_name} data"),
        metrics={"anomalies": float(len(anomalies)), "rows": float(current.num_rows)},
    )


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
    current = read_table(snapshot_path)
    reference = _reference(registry)
    if reference is None:
        payload: dict[str, Any] | None = None
        share = 0.0
        html = (
            "<!doctype html><meta charset='utf-8'><title>Drift</title>"
            "<p>No champion yet: there is no reference to compare this window with.</p>"
        )
    else:
        columns = _feature_columns(reference, target, time_column)
        result = drift_lib.detect_drift(reference, current, columns=columns)
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


@dataclass
class TrainOutput:
    """What ``train_model`` reports."""

    sha256: str
    train_rows: int
    holdout_rows: int
    trainer: str


def split_holdout(table: pa.Table, fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Split a table into train and holdout rows, seeded.

    Args:
        table: Rows to split.
        fraction: Share of rows held out, in (0, 1).
        seed: Seed of the permutation.

    Returns:
        The training rows and the holdout rows.

    Raises:
        DataError: The fraction is out of range or leaves either side empty.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout_fraction must be in (0, 1), got {fraction}")
    n_holdout = int(round(table.num_rows * fraction))
    if n_holdout < 1 or n_holdout >= table.num_rows:
        raise DataError(
            f"holdout_fraction {fraction} of {table.num_rows} rows leaves an empty side"
        )
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return table.take(np.sort(order[n_holdout:])), table.take(np.sort(order[:n_holdout]))


def train_model(
    snapshot_path: str,
    target: str,
    model_dir: str,
    holdout_path: str,
    *,
    store_uri: str,
    model_name: str,
    trainer: str = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    run_label: str = "",
) -> TrainOutput:
    """Train a challenger on a window, keeping a seeded holdout for its evaluation.

    Args:
        snapshot_path: Parquet file of the training window.
        target: Label column.
        model_dir: Folder the model (safe format + ``model.json``) is written to.
        holdout_path: Parquet file the holdout rows are written to.
        store_uri: Root of refit's store.
        model_name: Model the challenger is for.
        trainer: Name of a registered trainer.
        params: Trainer hyper-parameters.
        seed: Seed for the split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Time column, excluded from the features.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The model file's sha256 and the row counts.
    """
    table = read_table(snapshot_path)
    train_rows, holdout_rows = split_holdout(table, holdout_fraction, seed)
    exclude = (time_column,) if time_column else ()
    model = train(train_rows, target, trainer=trainer, params=params, seed=seed, exclude=exclude)
    artifact = save_model(model, model_dir)
    write_parquet(holdout_rows, holdout_path)
    ModelRegistry(store_uri, model_name).audit.append(
        "training",
        {
            "run_label": run_label,
            "trainer": trainer,
            "params": params or {},
            "sha256": artifact.sha256,
            "train_rows": train_rows.num_rows,
        },
    )
    return TrainOutput(
        sha256=artifact.sha256,
        train_rows=train_rows.num_rows,
        holdout_rows=holdout_rows.num_rows,
        trainer=trainer,
    )


@dataclass
class EvaluationOutput:
    """What ``evaluate_model`` reports."""

    blessed: bool
    reasons: list[str]
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    first_run: bool = False
    champion_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_model(
    model_dir: str,
    holdout_path: str,
    store_uri: str,
    model_name: str,
    gate_config: dict[str, Any],
    *,
    run_label: str = "",
) -> EvaluationOutput:
    """Score challenger and champion on the same holdout rows and apply the promotion gate.

    Args:
        model_dir: The challenger's model folder.
        holdout_path: Parquet file of held-out rows of the current window: unseen by the
            challenger, and newer than anything the champion trained on.
        store_uri: Root of refit's store.
        model_name: Model whose champion is compared.
        gate_config: Gate configuration as a dict (see ``GateConfig``).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The blessing with every reason and both models' metrics.
    """
    config = GateConfig.from_dict(gate_config)
    registry = ModelRegistry(store_uri, model_name)
    holdout = read_table(holdout_path)
    challenger = evaluate(load_model(model_dir), holdout).to_dict()
    champion_version = registry.champion()
    champion = None
    if champion_version is not None:
        champion = evaluate(registry.load_model(champion_version.version), holdout).to_dict()
    result = gate(challenger, champion, config)
    registry.audit.append(
        "evaluation",
        {
            "run_label": run_label,
            "blessed": result.blessed,
            "reasons": result.reasons,
            "first_run": result.first_run,
            "challenger": scalar_metrics(challenger),
            "champion": None if champion is None else scalar_metrics(champion),
        },
    )
    return EvaluationOutput(
        blessed=result.blessed,
        reasons=result.reasons,
        challenger=challenger,
        champion=champion,
        first_run=result.first_run,
        champion_version=None if champion_version is None else champion_version.version,
    )


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Keep the numeric, scalar entries of a metrics dict (drop curves and matrices)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v is not None
    }


def register_model(
    model_dir: str,
    store_uri: str,
    model_name: str,
    snapshot_sha256: str,
    metrics: dict[str, Any],
    *,
    run_id: str = "",
    run_label: str = "",
) -> int:
    """Register a blessed challenger as a new immutable version.

    Args:
        model_dir: The challenger's model folder.
        store_uri: Root of refit's store.
        model_name: Model to register under.
        snapshot_sha256: Snapshot the challenger was trained on (its lineage and drift reference).
        metrics: The challenger's evaluation metrics.
        run_id: Pipeline run that produced it.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The new version number.
    """
    registry = ModelRegistry(store_uri, model_name)
    champion = registry.champion()
    version = registry.register(
        model_dir,
        metrics=scalar_metrics(metrics),
        snapshot_sha256=snapshot_sha256,
        parent_version=None if champion is None else champion.version,
        run_id=run_id or run_label,
        audit={"run_label": run_label},
    )
    return version.version


def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    *,
    target: str = "local",
    reason: str = "",
    run_label: str = "",
) -> int:
    """Promote a registered version through a deployment target.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to promote.
        version: Registered version to make live.
        target: Name of a registered deployment target.
        reason: Why (recorded in the audit log).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The live version after promotion.
    """
    registry = ModelRegistry(store_uri, model_name)
    deploy = get_target(target, registry)
    rollout = deploy.promote(
        version, reason=reason or f"blessed in run {run_label}", audit={"run_label": run_label}
    )
    return int(rollout.version)


def dumps(value: Any) -> str:
    """JSON-encode a step's output for a KFP string parameter."""
    return json.dumps(value, sort_keys=True, default=str)


def utc_now() -> str:
    """Return the current UTC time, ISO 8601."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
