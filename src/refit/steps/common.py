"""Pieces every step uses: the champion's reference data, small file helpers, time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.io.snapshot import load_snapshot
from refit.registry import ModelRegistry


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path``, creating parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def feature_columns(table: pa.Table, target: str, time_column: str) -> list[str]:
    """Columns of ``table`` that are features (not the label, not the time column)."""
    return [c for c in table.column_names if c not in {target, time_column}]


def reference_table(registry: ModelRegistry) -> pa.Table | None:
    """Return the champion's training snapshot, or None before the first promotion."""
    champion = registry.champion()
    if champion is None:
        return None
    table, _ = load_snapshot(registry.store_uri, champion.snapshot_sha256)
    return table


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Keep the numeric, scalar entries of a metrics dict (drop curves and matrices)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v is not None
    }


def utc_now() -> str:
    """Return the current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat()
