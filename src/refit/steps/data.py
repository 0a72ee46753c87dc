"""Steps that read a window: snapshot it, validate it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa  # noqa: F401

from refit.io.snapshot import create_snapshot
from refit.io.tables import read_table, write_parquet
from refit.registry import ModelRegistry
from refit.steps.common import reference_table, write_text
from refit.validation import ValidationOptions, validate_table
from refit.validation.report import render_validation_html
from refit.validation.schema import schema_to_text

#: Values may leave the reference's [min, max] by this share of its width before validation
#: flags them. Extremes of heavy-tailed columns move between windows, and a shifted population
#: is drift's business, not a data error; a value far outside (a negative age, a unit change)
#: still stops the run.
RANGE_TOLERANCE = 1.0


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
        reference_table(registry),
        options=ValidationOptions(required_columns=(target,), range_tolerance=RANGE_TOLERANCE),
    )
    anomalies = result.summary()
    if anomalies_path:
        from google.protobuf import text_format

        write_text(anomalies_path, text_format.MessageToString(result.anomalies))
        write_text(
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
