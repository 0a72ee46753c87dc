"""Steps that read a window: snapshot it, validate it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refit.audit.events import AuditEvent
from refit.defaults import RANGE_TOLERANCE
from refit.errors import SchemaError
from refit.io.snapshot import create_snapshot
from refit.io.tables import read_table, write_parquet
from refit.privacy import load_schema, pii_columns
from refit.registry import open_registry
from refit.steps.common import list_param, write_text
from refit.tfdv.engine import complete_anomalies, require_tfdv
from refit.validation import ValidationOptions
from refit.validation.anomalies import ValidationResult
from refit.validation.engines import resolve_engine, run_validation
from refit.validation.report import render_validation_html
from refit.validation.schema import schema_to_text


@dataclass
class SnapshotOutput:
    """What ``snapshot_data`` reports.

    Attributes:
        sha256: The snapshot's content hash.
        rows: Row count.
        columns: Column names.
        pii: Its columns the model's curated schema tags ``pii`` (training refuses them unless
            an ``anonymize_data`` step handled them).
    """

    sha256: str
    rows: int
    columns: list[str]
    pii: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """Return the metadata of the snapshot's KFP artifact."""
        return {"sha256": self.sha256, "rows": self.rows, "columns": self.columns, "pii": self.pii}


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
        The snapshot's sha256, row count, columns and PII-marked columns.

    Raises:
        DataError: The data cannot be read.
    """
    table = read_table(data_uri)
    schema = load_schema(store_uri, model_name)
    pii = [c for c in pii_columns(schema) if c in table.column_names] if schema else []
    snap = create_snapshot(table, store_uri, source=data_uri, time_column=time_column or None)
    write_parquet(table, output_path)
    open_registry(store_uri, model_name).audit.append(
        AuditEvent.SNAPSHOT,
        {"run_label": run_label, "sha256": snap.sha256, "rows": snap.rows, "source": data_uri},
    )
    return SnapshotOutput(sha256=snap.sha256, rows=snap.rows, columns=list(snap.columns), pii=pii)


@dataclass
class ValidationOutput:
    """What ``validate_data`` reports.

    Attributes:
        passed: Whether the window has no anomaly.
        anomalies: One dict per anomaly reason (``feature``, ``kind``, ``description``).
        html: refit's self-contained validation report.
        metrics: Number of anomalies and rows.
        engine: The engine that ran (``"native"`` or ``"tfdv"``).
        engine_metadata: What the engine records: ``engine``, ``engine_requested``,
            ``ignored_schema_fields`` and, for TFDV, its version, Beam args and timings.
        facets_html: Statistics view: TFDV's Facets overview (``get_statistics_html``) with
            the TFDV engine, else refit's self-contained statistics report.
        audit: The summary the ``validation`` audit record holds (recorded by a stateful step:
            ``decide_retrain``, or ``record_results`` when the window is blocked).
        labelled: Whether the window holds labels (False only with ``late_labels``: the
            label column is missing or all null and that was allowed).
    """

    passed: bool
    anomalies: list[dict[str, Any]]
    html: str
    metrics: dict[str, float]
    engine: str = "native"
    engine_metadata: dict[str, Any] = field(default_factory=dict)
    facets_html: str = ""
    audit: dict[str, Any] = field(default_factory=dict)
    labelled: bool = True


def parse_beam_pipeline_args(value: Sequence[str] | None) -> list[str] | None:
    """Check a component's ``beam_pipeline_args`` (a list of Beam flags).

    Args:
        value: The component's parameter: a list of strings, or None.

    Returns:
        The flags, or None for an empty list (TFDV then computes statistics in-process,
        without Beam; any flag makes the statistics a Beam pipeline with those options).

    Raises:
        SchemaError: The value is not a list of strings (Beam flags such as
            ``--runner=DataflowRunner``).
    """
    return list_param(value, "beam_pipeline_args") or None


def check_engine(engine: str) -> str:
    """Resolve ``engine`` and, for ``"tfdv"``, check a TFDV environment is configured.

    Called before a step reads anything, so a task asked to run TFDV where there is none fails
    at once, with the library's message saying how to make one.

    Args:
        engine: ``"native"``, ``"tfdv"`` or ``"auto"`` (the native engine).

    Returns:
        The engine that will run.

    Raises:
        SchemaError: Unknown engine.
        TfdvUnavailableError: ``"tfdv"`` without a usable ``REFIT_TFDV_PYTHON``.
    """
    ran = resolve_engine(engine)
    if ran == "tfdv":
        require_tfdv()
    return ran


def validate_data(
    snapshot_path: str,
    target: str,
    *,
    reference_path: str | None = None,
    schema_path: str | None = None,
    anomalies_path: str | None = None,
    engine: str = "native",
    beam_pipeline_args: list[str] | None = None,
    name: str = "the window",
    late_labels: bool = False,
) -> ValidationOutput:
    """Validate a window against reference data and a schema (anomalies, TFDV formats).

    With no reference and no schema (the first run) the schema is inferred from the window
    itself, so only dataset-level checks (empty window, missing target, all-null columns) apply.

    With ``engine="tfdv"`` TFDV (in its own interpreter, ``REFIT_TFDV_PYTHON``) computes the
    statistics, infers the schema from the reference and validates; refit adds the empty-window
    and missing-target reasons TFDV does not raise. The native engine's range checks against the
    reference's observed values (``RANGE_TOLERANCE``) are native only; see
    docs/decisions/0012-native-and-tfdv-differ-by-design.md for the differences by design.

    Args:
        snapshot_path: Parquet file of the window.
        target: Label column; its absence is an anomaly.
        reference_path: Parquet file of the reference data (the champion's training data),
            or None.
        schema_path: Schema text proto (tensorflow-metadata ``Schema``) to validate against,
            or None to infer one from the reference, else the window.
        anomalies_path: If given, the Anomalies text proto is written there (the schema beside
            it as ``.schema.pbtxt``).
        engine: ``"native"`` (default), ``"tfdv"`` or ``"auto"`` (native); the engine that ran
            is in the output.
        beam_pipeline_args: TFDV engine: Beam flags; given (non-empty), the statistics run as a
            Beam pipeline with them (Dataflow, Flink, Spark; a remote runner's inputs and
            outputs are staged under the flags' ``gs://`` ``--temp_location``). None: TFDV
            in-process.
        name: What the reports call the data.
        late_labels: Labels arrive after the window: a label column that is missing or all
            null is not an anomaly. The window is then validated without the label column
            (dropped from the window, the reference and the schema; every other check as
            usual) and the output says it is unlabelled (``labelled``, the audit summary and a
            line of the report). False (default): such a window is an anomaly.

    Returns:
        Whether the window passed, its anomalies, the HTML report, the statistics view, summary
        metrics, the engine that ran and the summary the audit log records.

    Raises:
        SchemaError: Unknown engine, or a schema file that is not a Schema text proto.
        TfdvUnavailableError: ``engine="tfdv"`` without a TFDV environment (says how to make
            one).
    """
    check_engine(engine)
    if not isinstance(late_labels, bool):
        raise SchemaError(f"late_labels must be true or false, got {late_labels!r}")
    current = read_table(snapshot_path)
    reference = None if not reference_path else read_table(reference_path)
    schema = None
    if schema_path:
        from refit.validation.schema import schema_from_text

        schema = schema_from_text(Path(schema_path).read_text(encoding="utf-8"))
    labelled = target in current.column_names and (
        current.column(target).null_count < current.num_rows or current.num_rows == 0
    )
    notes: list[str] = []
    if late_labels and not labelled:
        how = "is not in the data" if target not in current.column_names else "is entirely null"
        # an unlabelled window: every check but the label's (the window is empty or not, its
        # features valid or not, exactly as with labels)
        if target in current.column_names:
            current = current.drop_columns([target])
        if reference is not None and target in reference.column_names:
            reference = reference.drop_columns([target])
        if schema is not None:
            kept = [f for f in schema.feature if f.name != target]
            del schema.feature[:]
            schema.feature.extend(kept)
        notes.append(
            f"Unlabelled window: label column {target!r} {how} (late_labels: labels arrive "
            "later; not an anomaly, the label checks are skipped)."
        )
    result = run_validation(
        current,
        reference=reference,
        schema=schema,
        engine=engine,
        options=ValidationOptions(
            required_columns=() if notes else (target,), range_tolerance=RANGE_TOLERANCE
        ),
        beam_pipeline_args=beam_pipeline_args,
        facets=True,
    )
    if result.engine == "tfdv":
        complete_anomalies(result, current, "" if notes else target)
    view = ValidationResult(
        result.anomalies, result.statistics, result.schema, result.reference_statistics
    )
    anomalies = view.summary()
    if anomalies_path:
        from google.protobuf import text_format

        write_text(anomalies_path, text_format.MessageToString(result.anomalies))
        write_text(
            str(Path(anomalies_path).with_suffix(".schema.pbtxt")), schema_to_text(result.schema)
        )
    metadata = json.loads(json.dumps(result.metadata, default=str))
    facets_html = result.facets_html or render_validation_html(
        view, title=f"Statistics of {name} ({result.engine} engine)"
    )
    return ValidationOutput(
        passed=not anomalies,
        anomalies=anomalies,
        html=render_validation_html(view, title=f"Validation of {name}", notes=notes),
        metrics={"anomalies": float(len(anomalies)), "rows": float(current.num_rows)},
        engine=result.engine,
        engine_metadata=metadata,
        facets_html=facets_html,
        labelled=not notes,
        audit={
            "passed": not anomalies,
            "anomalies": anomalies,
            "rows": current.num_rows,
            "engine": result.engine,
            "engine_requested": engine,
            "labelled": not notes,
            **({"tfdv_version": metadata.get("tfdv_version")} if result.engine == "tfdv" else {}),
        },
    )
