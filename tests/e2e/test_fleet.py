"""A fleet of models behind the real `refit serve-triggers`: one store, one run per alert group."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
from _alertmanager import webhook
from _servers import ServeProcess, blast, fleet_config

from refit.registry import open_registry

SECRET = "fleet-test-secret-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {SECRET}"}
MODELS = 300


def _alert(model: str, group: int) -> bytes:
    key = f'{{}}:{{alertname="DriftHigh", model="{model}", g="{group}"}}'
    body = webhook(model, key, [f"fp{group:06d}"], annotations={"drift_share": "0.5"})
    return json.dumps(body).encode()


def test_a_fleet_gets_one_run_per_alert_group_and_one_audit_log_per_model(tmp_path: Path) -> None:
    names = [f"region-{i:03d}" for i in range(MODELS)]
    config = fleet_config(tmp_path, names, "0 2 * * *", 10 * MODELS)
    store = tmp_path / "store"
    server = ServeProcess(config, SECRET)
    # two alert groups per model, each sent three times, interleaved across 16 connections
    bodies = [_alert(n, g) for g in range(2) for n in names]
    try:
        results = asyncio.run(
            blast("127.0.0.1", server.port, "/hooks/alertmanager", bodies, AUTH,
                  3 * len(bodies), 16)
        )  # fmt: skip
        unknown = httpx.post(
            server.url + "/hooks/alertmanager", content=_alert("elsewhere", 0), headers=AUTH
        )
    finally:
        server.stop()
    assert {status for status, _ in results} == {200}
    decisions = [json.loads(b)["decisions"][0]["decision"] for _, b in results]
    assert decisions.count("launch") == 2 * MODELS
    assert decisions.count("duplicate") == 4 * MODELS
    assert unknown.status_code == 404 and len(unknown.text) < 600
    with sqlite3.connect(tmp_path / "state.db") as db:
        per_model = dict(db.execute("SELECT model, COUNT(*) FROM runs GROUP BY model"))
        labels = db.execute("SELECT COUNT(DISTINCT json_extract(params, '$.run_label')) FROM runs")
        assert labels.fetchone()[0] == 2 * MODELS
    assert per_model == dict.fromkeys(names, 2)
    # each model's decisions are in its own audit log in the shared store, intact
    for name in (names[0], names[MODELS // 2], names[-1]):
        log = open_registry(str(store), name).audit
        assert [r["payload"]["decision"] for r in log.records("trigger_decision")] == [
            "launch",
            "launch",
        ]
        assert log.verify() == []
