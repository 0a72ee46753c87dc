"""`refit evaluate`, `refit registry ...` and `refit audit verify` through the real CLI."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _gcs import fake_gcs
from typer.testing import CliRunner

from refit.cli import app
from refit.io.tables import write_parquet
from refit.registry import ModelRegistry
from refit.training import train
from refit.training.artifacts import save_model

runner = CliRunner()


def _table(n: int, seed: int, blind: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 0.5 * x2 + 0.8 * rng.normal(size=n) > 0).astype(int)
    if blind:
        x1 = rng.permutation(x1)
    return pa.table({"x1": x1, "x2": x2, "y": y})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_models")
    out = {}
    for name, table in {
        "good": _table(1200, 1),
        "twin": _table(1200, 2),
        "weak": _table(600, 3, blind=True),
    }.items():
        save_model(train(table, "y", trainer="logistic_regression"), root / name)
        out[name] = root / name
    other = _table(400, 4).drop_columns(["x2"])
    save_model(train(other, "y", trainer="logistic_regression"), root / "other")
    out["other"] = root / "other"
    write_parquet(_table(600, 9), str(root / "holdout.parquet"))
    out["data"] = root / "holdout.parquet"
    return out


def _evaluate(models, tmp_path, challenger, champion=None, gate=None):
    args = ["evaluate", "--challenger", str(models[challenger]), "--data", str(models["data"])]
    args += ["--label-column", "y", "--output", str(tmp_path / "out")]
    if champion:
        args += ["--champion", str(models[champion])]
    if gate is not None:
        (tmp_path / "gate.json").write_text(json.dumps(gate))
        args += ["--gate", str(tmp_path / "gate.json")]
    result = runner.invoke(app, args)
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    return result, report


def test_evaluate_writes_intervals_p_values_and_verdict(models, tmp_path):
    gate = {"thresholds": {"accuracy": 0.7, "roc_auc": 0.7}, "mode": "superior"}
    result, report = _evaluate(models, tmp_path, "good", "weak", gate)
    assert result.exit_code == 0, result.output
    assert report["blessed"] is True
    assert report["p_values"]["mcnemar"] < 0.05 and report["p_values"]["delong"] < 0.05
    acc = report["intervals"]["challenger"]["accuracy"]
    assert acc["method"] == "wilson" and acc["low"] < acc["value"] < acc["high"]
    assert report["paired"]["roc_auc"]["low"] > 0
    assert "blessed; wrote" in result.output
    result, report = _evaluate(models, tmp_path, "twin", "good", gate)
    assert result.exit_code == 1 and report["blessed"] is False
    assert any("not significantly better" in r for r in report["reasons"])


def test_evaluate_bad_input_closes_the_gate(models, tmp_path):
    result, report = _evaluate(models, tmp_path, "other", "good")
    assert result.exit_code == 1
    assert report["blessed"] is False
    assert "different feature sets" in report["reasons"][0]
    gate = {"thresholds": {}}
    result, report = _evaluate(models, tmp_path, "good", None, gate)
    assert result.exit_code == 1 and "gate has no thresholds: failing closed" in report["reasons"]


def _populate(store: str, models) -> ModelRegistry:
    reg = ModelRegistry(store, "churn")
    for name in ("good", "twin", "weak"):
        reg.register(
            models[name],
            metrics={"accuracy": 0.8},
            snapshot_sha256="f" * 64,
            parent_version=reg.get_alias("champion"),
            run_label=f"run-{name}",
        )
    return reg


def _cli(store: str, *args: str):
    return runner.invoke(app, ["registry", "--store", store, "--model", "churn", *args])


def test_registry_commands_and_lineage_exports(models, tmp_path):
    store = str(tmp_path / "store")
    reg = _populate(store, models)
    assert _cli(store, "promote", "1").exit_code == 0
    out = _cli(store, "promote", "2", "--reason", "better")
    assert out.exit_code == 0 and "champion: v2 (previous: v1)" in out.output
    listing = _cli(store, "list")
    assert listing.exit_code == 0 and "champion" in listing.output and "previous" in listing.output
    shown = _cli(store, "show", "2")
    assert json.loads(shown.output)["status"] == "champion"
    missing = _cli(store, "show", "9")
    assert missing.exit_code == 2 and "no version 9" in missing.output
    back = _cli(store, "rollback")
    assert back.exit_code == 0 and "champion: v1 (rolled back: v2)" in back.output
    assert _cli(store, "rollback").exit_code == 2  # previous is cleared after a rollback
    lineage = _cli(
        store,
        "lineage",
        "--parquet",
        str(tmp_path / "l.parquet"),
        "--sqlite",
        str(tmp_path / "l.db"),
    )
    assert lineage.exit_code == 0, lineage.output
    assert "model_lineage" in lineage.output and "churn:v2" in lineage.output
    table = pq.read_table(tmp_path / "l.parquet")
    assert table.column("model_id").to_pylist() == ["churn:v1", "churn:v2", "churn:v3"]
    assert table.column("parent_id").to_pylist() == [None, None, None]
    assert table.column("status").to_pylist() == ["champion", "rolled_back", "registered"]
    assert table.column("run_label").to_pylist() == ["run-good", "run-twin", "run-weak"]
    with sqlite3.connect(tmp_path / "l.db") as conn:
        rows = conn.execute(
            "SELECT model_id, status, promoted_at IS NOT NULL, json_extract(metrics, '$.accuracy')"
            " FROM model_lineage ORDER BY version"
        ).fetchall()
    assert rows == [
        ("churn:v1", "champion", 1, 0.8),
        ("churn:v2", "rolled_back", 1, 0.8),
        ("churn:v3", "registered", 0, 0.8),
    ]
    events = [r["event"] for r in reg.audit.records()]
    assert events.count("promotion") == 2 and events.count("rollback") == 1


def test_audit_verify_names_tampered_records(models, tmp_path):
    store = str(tmp_path / "store")
    reg = _populate(store, models)
    ok = runner.invoke(app, ["audit", "verify", "--store", store])
    assert ok.exit_code == 0 and "churn: intact (3 records)" in ok.output
    log = Path(reg.audit.path)
    lines = log.read_text().splitlines()
    record = json.loads(lines[1])
    record["payload"]["run_label"] = "forged"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n")
    bad = runner.invoke(app, ["audit", "verify", "--store", store, "--model", "churn"])
    assert bad.exit_code == 1
    assert (
        "TAMPERED" in bad.output
        and "line 2 (seq 2): hash mismatch: record was edited" in bad.output
    )
    log.write_text("\n".join([lines[0], lines[2]]) + "\n")
    removed = runner.invoke(app, ["audit", "verify", "--store", store, "--model", "churn"])
    assert removed.exit_code == 1 and "1 record(s) removed" in removed.output


def test_registry_and_audit_cli_on_gcs(models, tmp_path):
    with fake_gcs("refit-cli"):
        store = "gs://refit-cli/store"
        _populate(store, models)
        assert _cli(store, "promote", "3").exit_code == 0
        listing = _cli(store, "list")
        assert listing.exit_code == 0 and "champion" in listing.output
        verify = runner.invoke(app, ["audit", "verify", "--store", store])
        assert verify.exit_code == 0 and "churn: intact (4 records)" in verify.output
        lineage = _cli(store, "lineage", "--parquet", str(tmp_path / "g.parquet"))
        assert lineage.exit_code == 0
        statuses = pq.read_table(tmp_path / "g.parquet").column("status").to_pylist()
        assert statuses == ["registered", "registered", "champion"]
