"""One window through the retraining pipeline under kfp.local, for the pipeline tests; the retrain
policy most of them use, and the audit events of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet
from refit.pipelines.local import run_pipeline
from refit.pipelines.retraining import DEFAULT_GATE
from refit.registry import ModelRegistry

#: Retrain when 30% of the features drift, or accuracy stays under 0.75 for two windows.
POLICY = {
    "drift_share_threshold": 0.3,
    "metric": "accuracy",
    "metric_threshold": 0.75,
    "consecutive_windows": 2,
}


def run_events(registry: ModelRegistry, label: str) -> dict[str, dict[str, Any]]:
    """The payload of each audit event of run ``label`` (the last one of each kind)."""
    records = registry.audit.records()
    return {r["event"]: r["payload"] for r in records if r["payload"].get("run_label") == label}


def window_parameters(
    store_uri: str,
    data_uri: str,
    *,
    model: str,
    policy: dict[str, Any] | None = None,
    n_estimators: int = 30,
    **parameters: Any,
) -> dict[str, Any]:
    """The pipeline's arguments for one demo window.

    Args:
        store_uri: The store.
        data_uri: The window's file.
        model: The model name.
        policy: The retrain policy (the pipeline's default when None).
        n_estimators: XGBoost rounds (depth 3).
        **parameters: Further pipeline parameters (``run_label``, ``late_labels``...).

    Returns:
        The demo's columns and gate, a fixed decision time, and the arguments given.
    """
    arguments: dict[str, Any] = {
        "data_uri": data_uri,
        "store_uri": store_uri,
        "model_name": model,
        "label_column": TARGET,
        "time_column": TIME_COLUMN,
        "gate": DEFAULT_GATE,
        "params": {"n_estimators": n_estimators, "max_depth": 3},
        "now": "2026-02-01T00:00:00",
        **parameters,
    }
    if policy is not None:
        arguments["policy"] = policy
    return arguments


def run_window(
    store: Path,
    table_or_uri: pa.Table | str,
    label: str,
    *,
    model: str,
    policy: dict[str, Any],
    n_estimators: int = 30,
    **parameters: Any,
) -> None:
    """Run the pipeline on one demo window (a table, written beside the store, or a URI).

    Args:
        store: The store folder; a table is written beside it as ``<store>-<label>.parquet``.
        table_or_uri: The window, or the URI of a file holding it.
        label: The run label.
        model: The model name.
        policy: The retrain policy.
        n_estimators: XGBoost rounds (depth 3).
        **parameters: Further pipeline parameters (``late_labels``, ``training_window``...).
    """
    if isinstance(table_or_uri, pa.Table):
        uri = str(store.parent / f"{store.name}-{label}.parquet")
        write_parquet(table_or_uri, uri)
    else:
        uri = table_or_uri
    run_pipeline(
        **window_parameters(
            str(store),
            uri,
            model=model,
            policy=policy,
            n_estimators=n_estimators,
            run_label=label,
            **parameters,
        )
    )
