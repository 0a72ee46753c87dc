"""The ``model_lineage`` table: one row per registered version, exportable as Parquet and SQLite.

Columns (see :data:`LINEAGE_SCHEMA`): ``model_id`` (``NAME:vN``), ``parent_id``, ``model_name``,
``version``, ``parent_version``, ``status``, ``aliases`` (comma-separated), ``metrics`` (JSON
text), ``snapshot_sha256`` (the training data snapshot), ``run_label`` (the pipeline run's label),
``sha256`` (the model file), ``created_at``, ``promoted_at`` (last promotion to champion) and
``replaced_at`` (when it last stopped being champion), both read from the audit log, and
``training_data`` (JSON text: the windows it trained on, its holdout and warm start, from its
model card; null for versions registered without it).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.audit.events import LIVE_EVENTS
from refit.errors import RegistryError
from refit.registry.core import ModelRegistry

__all__ = [
    "LINEAGE_SCHEMA",
    "TABLE_NAME",
    "lineage_rows",
    "lineage_table",
    "to_parquet",
    "to_sqlite",
]

TABLE_NAME = "model_lineage"

LINEAGE_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("parent_id", pa.string()),
        ("model_name", pa.string()),
        ("version", pa.int64()),
        ("parent_version", pa.int64()),
        ("status", pa.string()),
        ("aliases", pa.string()),
        ("metrics", pa.string()),
        ("snapshot_sha256", pa.string()),
        ("run_label", pa.string()),
        ("sha256", pa.string()),
        ("created_at", pa.string()),
        ("promoted_at", pa.string()),
        ("replaced_at", pa.string()),
        ("training_data", pa.string()),
    ]
)

_SQL_TYPES = {pa.string(): "TEXT", pa.int64(): "INTEGER"}


def lineage_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """Build the lineage rows of every version of a registry's model, oldest first.

    Args:
        registry: The model's registry (local or ``gs://``).

    Returns:
        One dict per version with the :data:`LINEAGE_SCHEMA` columns.
    """
    name = registry.model_name
    promoted: dict[int, str] = {}
    replaced: dict[int, str] = {}
    for record in registry.audit.records():
        if record["event"] not in LIVE_EVENTS:
            continue
        payload = record["payload"]
        live, before = payload.get("version"), payload.get("previous")
        if isinstance(live, int):
            promoted[live] = record["time"]
        if isinstance(before, int):
            replaced[before] = record["time"]
    by_version: dict[int, list[str]] = {}
    for alias, version in sorted(registry.aliases().items()):
        by_version.setdefault(version, []).append(alias)
    rows = []
    for mv in registry.list_versions():
        rows.append(
            {
                "model_id": f"{name}:v{mv.version}",
                "parent_id": None if mv.parent_version is None else f"{name}:v{mv.parent_version}",
                "model_name": name,
                "version": mv.version,
                "parent_version": mv.parent_version,
                "status": mv.status,
                "aliases": ",".join(by_version.get(mv.version, [])),
                "metrics": json.dumps(mv.metrics, sort_keys=True),
                "snapshot_sha256": mv.snapshot_sha256,
                "run_label": mv.run_label,
                "sha256": mv.sha256,
                "created_at": mv.created_at,
                "promoted_at": promoted.get(mv.version),
                "replaced_at": replaced.get(mv.version),
                "training_data": (
                    json.dumps(mv.extra["training_data"], sort_keys=True)
                    if mv.extra.get("training_data")
                    else None
                ),
            }
        )
    return rows


def lineage_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Return the rows as an Arrow table with :data:`LINEAGE_SCHEMA`."""
    return pa.Table.from_pylist(rows, schema=LINEAGE_SCHEMA)


def to_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the lineage rows as a Parquet file (parent folders created).

    Returns:
        The file written.
    """
    import pyarrow.parquet as pq

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(lineage_table(rows), out)
    return out


def to_sqlite(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the lineage rows into the ``model_lineage`` table of a SQLite database.

    The table is created when missing; the rows of the models exported replace their earlier
    rows (one transaction), so several models can share one database.

    Returns:
        The database file.

    Raises:
        RegistryError: The database cannot be written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = [f.name for f in LINEAGE_SCHEMA]
    ddl = ", ".join(
        f"{f.name} {_SQL_TYPES[f.type]}" + (" PRIMARY KEY" if f.name == "model_id" else "")
        for f in LINEAGE_SCHEMA
    )
    try:
        with sqlite3.connect(out) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE_NAME} ({ddl})")
            for model in sorted({r["model_name"] for r in rows}):
                conn.execute(f"DELETE FROM {TABLE_NAME} WHERE model_name = ?", (model,))
            conn.executemany(
                f"INSERT INTO {TABLE_NAME} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [tuple(r[c] for c in columns) for r in rows],
            )
        conn.close()
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot write lineage to SQLite database {out}: {exc}") from exc
    return out
