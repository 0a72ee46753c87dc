"""Pieces every step uses: the champion's reference data, small file helpers, time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.errors import SchemaError
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


def whole_numbers(value: Any) -> Any:
    """Turn whole-number floats back into ints, through dicts and lists.

    KFP passes ``dict`` and ``list`` parameters as protobuf ``Struct``/``ListValue``, whose
    numbers are all doubles: ``{"n_estimators": 30}`` reaches a task as ``30.0``. A whole
    number is an int again here, so trainers, policies and plans get what the user wrote.

    Args:
        value: A parameter value (JSON-like).

    Returns:
        The value with every whole-number float an int (bools and other floats unchanged).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [whole_numbers(v) for v in value]
    return value


def dict_param(value: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """Check a structured (``dict``) step parameter; None is the empty dict.

    Whole-number floats become ints (:func:`whole_numbers`: KFP sends every number as a
    double).

    Args:
        value: The parameter's value.
        name: The parameter's name, for the error.

    Returns:
        A copy as a plain dict.

    Raises:
        SchemaError: The value is not a mapping with string keys (a JSON string is refused
            too: parameters are dicts now, not JSON text).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SchemaError(
            f"{name} must be a dict with string keys, got {type(value).__name__}: {value!r:.200}"
        )
    return whole_numbers(value)


def list_param(value: Sequence[str] | None, name: str) -> list[str]:
    """Check a list-of-strings step parameter; None is the empty list.

    Args:
        value: The parameter's value.
        name: The parameter's name, for the error.

    Returns:
        A copy as a plain list.

    Raises:
        SchemaError: The value is not a list (or tuple) of strings.
    """
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SchemaError(
            f"{name} must be a list of strings, got {type(value).__name__}: {value!r:.200}"
        )
    return list(value)


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
