"""The model_lineage table and its Parquet and SQLite exports."""

import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
from _models import make_model_dir

from refit.deploy import LocalTarget
from refit.registry import ModelRegistry
from refit.registry.lineage import LINEAGE_SCHEMA, lineage_rows, to_parquet, to_sqlite


def _registry(tmp_path: Path, model: str) -> ModelRegistry:
    reg = ModelRegistry(str(tmp_path / "store"), model)
    target = LocalTarget(reg)
    for i in (1, 2, 3):
        reg.register(
            make_model_dir(tmp_path, f"{model}{i}".encode(), dirname=f"m-{model}{i}"),
            metrics={"accuracy": 0.8 + i / 100},
            snapshot_sha256=f"{i}" * 64,
            parent_version=reg.get_alias("champion"),
            run_label=f"run-{i}",
        )
        target.promote(i, reason=f"v{i}")
    return reg


def test_lineage_rows_follow_parents_statuses_and_audit_times(tmp_path):
    reg = _registry(tmp_path, "churn")
    rows = lineage_rows(reg)
    assert [r["model_id"] for r in rows] == ["churn:v1", "churn:v2", "churn:v3"]
    assert [r["parent_id"] for r in rows] == [None, "churn:v1", "churn:v2"]
    assert [r["status"] for r in rows] == ["retired", "previous", "champion"]
    assert [r["aliases"] for r in rows] == ["", "previous", "champion"]
    assert [r["snapshot_sha256"][0] for r in rows] == ["1", "2", "3"]
    assert json.loads(rows[1]["metrics"]) == {"accuracy": 0.8 + 2 / 100}
    promotions = {r["payload"]["version"]: r["time"] for r in reg.audit.records("promotion")}
    assert [r["promoted_at"] for r in rows] == [promotions[1], promotions[2], promotions[3]]
    assert rows[0]["replaced_at"] == promotions[2] and rows[2]["replaced_at"] is None
    assert all(r["created_at"] <= r["promoted_at"] for r in rows)


def test_parquet_and_sqlite_exports(tmp_path):
    rows = lineage_rows(_registry(tmp_path, "churn"))
    table = pq.read_table(to_parquet(rows, tmp_path / "out" / "lineage.parquet"))
    assert table.schema.equals(LINEAGE_SCHEMA)
    assert table.to_pylist() == rows
    db = tmp_path / "lineage.db"
    to_sqlite(rows, db)
    to_sqlite(rows, db)  # re-export replaces this model's rows, no duplicates
    to_sqlite(lineage_rows(_registry(tmp_path, "fraud")), db)
    with sqlite3.connect(db) as conn:
        counts = conn.execute(
            "SELECT model_name, COUNT(*) FROM model_lineage GROUP BY model_name ORDER BY 1"
        ).fetchall()
        parent = conn.execute(
            "SELECT parent_id FROM model_lineage WHERE model_id = 'fraud:v3'"
        ).fetchone()
    assert counts == [("churn", 3), ("fraud", 3)]
    assert parent == ("fraud:v2",)
