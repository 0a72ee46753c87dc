"""The trigger service over real HTTP on loopback (uvicorn in a thread, httpx clients)."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from _alertmanager import webhook
from _servers import ServeProcess, UvicornThread, blast

from refit.audit import AuditLog
from refit.triggers.app import create_app
from refit.triggers.auth import sign
from refit.triggers.config import ServiceConfig
from refit.triggers.launchers import LogLauncher
from refit.triggers.service import TriggerService

SECRET = b"s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET.decode()}"}
CHURN_PARAMS = {"data_uri": "gs://c/latest.parquet", "store_uri": "gs://c/store"}


def alert(group="g1", fingerprints=("f1",), model="credit-default", status="firing", **ann):
    key = '{}:{alertname="DriftHigh"}' + group
    annotations = {k: str(v) for k, v in ann.items()}
    return webhook(model, key, fingerprints, annotations=annotations, status=status)


def make_config(tmp_path, **kw):
    data = {
        "state_path": str(tmp_path / "state.db"),
        "cooldown_seconds": 3600,
        "max_in_flight": 5,
        "max_body_bytes": 64 * 1024,
        "models": {
            "credit-default": {
                "policy": {"drift_share_threshold": 0.3, "new_data_fraction": 0.5},
                "params": {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"},
                "storage_prefixes": ["gs://b/incoming/"],
            },
            "churn": {"policy": {"drift_share_threshold": 0.3}, "params": CHURN_PARAMS},
        },
        **kw,
    }
    return ServiceConfig.from_dict(data)


class Running:
    """A service and its HTTP server; restartable on the same state file."""

    def __init__(self, config, launcher):
        self.config, self.launcher = config, launcher
        self.service = TriggerService(config, launcher, retry_seconds=3600)
        self.server = UvicornThread(create_app(self.service, SECRET))

    @property
    def url(self):
        return self.server.url

    def restart(self):
        self.server.close()
        self.service = TriggerService(self.config, self.launcher, retry_seconds=3600)
        self.server = UvicornThread(create_app(self.service, SECRET))

    def close(self):
        self.server.close()


@pytest.fixture
def running(tmp_path):
    r = Running(make_config(tmp_path), LogLauncher())
    yield r
    r.close()


def post(url, path, payload, headers=AUTH):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(url + path, content=body, headers=headers, timeout=10)


def test_ten_thousand_duplicates_one_launch_and_restart_keeps_state(tmp_path):
    config = make_config(tmp_path)
    path = tmp_path / "serve.json"
    raw = {
        "state_path": config.state_path,
        "cooldown_seconds": 3600,
        "models": {
            "credit-default": {
                "policy": {"drift_share_threshold": 0.3},
                "params": {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"},
            }
        },
    }
    path.write_text(json.dumps(raw))
    server = ServeProcess(path, SECRET.decode())  # the real `refit serve-triggers`, log launcher
    payload = json.dumps(alert(drift_share=0.45)).encode()
    try:
        # 10,000 copies of one alert group, 32 at a time, with a restart after the first half.
        first = asyncio.run(
            blast("127.0.0.1", server.port, "/hooks/alertmanager", payload, AUTH, 5000, 32)
        )
        server.stop()
        server.start()
        second = asyncio.run(
            blast("127.0.0.1", server.port, "/hooks/alertmanager", payload, AUTH, 5000, 32)
        )
        results = first + second
        assert {status for status, _ in results} == {200}
        decisions = [json.loads(b)["decisions"][0]["decision"] for _, b in results]
        assert decisions.count("launch") == 1
        assert decisions.count("duplicate") == 9999
        runs = httpx.get(server.url + "/runs", headers=AUTH).json()["runs"]
        assert len(runs) == 1
        assert runs[0]["status"] == "logged"
        assert runs[0]["model"] == "credit-default"
        assert runs[0]["reasons"] == [
            "no champion model: training the first one",
            "drift share 0.45 >= 0.30",
        ]
        assert runs[0]["trigger"] == "alert(s) DriftHigh firing (1)"
        assert runs[0]["params"]["model_name"] == "credit-default"
        assert runs[0]["params"]["run_label"].startswith("trigger-credit-default-")

        # A new alert group for the same model after the restart: decided, held by the cooldown.
        r = post(server.url, "/hooks/alertmanager", alert(group="g2", drift_share=0.6))
        (d,) = r.json()["decisions"]
        assert d["decision"] == "held"
        assert d["reasons"][0].startswith("cooldown: last run for credit-default launched")
        assert len(httpx.get(server.url + "/runs", headers=AUTH).json()["runs"]) == 1
        metrics = httpx.get(server.url + "/metrics").text
        assert 'refit_hooks_deduped_total{hook="alertmanager"} 5000.0' in metrics
        assert 'refit_hooks_received_total{hook="alertmanager"} 5001.0' in metrics
    finally:
        server.stop()
    audit = AuditLog(config.state_path + ".audit.jsonl")
    records = audit.records("trigger_decision")
    assert [a["payload"]["decision"] for a in records] == ["launch", "held"]
    assert audit.verify() == []


def test_bad_auth_is_401_and_launches_nothing(running):
    body = json.dumps(alert(group="auth", drift_share=0.9)).encode()
    cases = [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": "Basic " + base64.b64encode(SECRET).decode()},
        {"X-Refit-Signature": sign(b"another-secret-another-secret", body)},
        {"X-Refit-Signature": sign(SECRET, body + b" ")},
    ]
    for headers in cases:
        r = post(running.url, "/hooks/alertmanager", body, headers)
        assert r.status_code == 401, headers
        assert r.json()["detail"].startswith("unauthorized")
    for path in ("/hooks/storage", "/hooks/generic"):
        assert post(running.url, path, {"x": 1}, {}).status_code == 401
    # The runs list names data and stores: it needs the same authentication as the hooks.
    r = httpx.get(running.url + "/runs", headers={"Authorization": "Bearer wrong-token-wrong"})
    assert r.status_code == 401 and r.json()["detail"].startswith("unauthorized")
    assert httpx.get(running.url + "/runs", headers=AUTH).status_code == 200
    assert running.launcher.launched == []
    # The right HMAC signature is accepted.
    r = post(running.url, "/hooks/alertmanager", body, {"X-Refit-Signature": sign(SECRET, body)})
    assert r.status_code == 200
    assert r.json()["decisions"][0]["decision"] == "launch"
    metrics = httpx.get(running.url + "/metrics").text
    assert 'refit_hooks_rejected_total{hook="alertmanager",reason="unauthorized"} 5.0' in metrics


@pytest.mark.parametrize(
    ("path", "payload", "reason"),
    [
        ("/hooks/alertmanager", b"{not json", "body is not valid JSON"),
        ("/hooks/alertmanager", {**alert(), "version": "3"}, 'version must be "4"'),
        ("/hooks/alertmanager", {**alert(), "alerts": []}, "alerts must be a non-empty list"),
        ("/hooks/alertmanager", alert(drift_share="lots"), "drift_share must be a number"),
        ("/hooks/alertmanager", alert(drift_share=1.5), "drift_share must be in [0.0, 1.0]"),
        ("/hooks/generic", {"model": "churn"}, "event_id must be a non-empty string"),
        ("/hooks/generic", {"event_id": "e", "model": "churn", "x": 1}, "unknown field(s) x"),
        ("/hooks/generic", {"event_id": "e", "model": "churn", "new_rows": -3}, "new_rows must"),
        ("/hooks/storage", {"message": {"messageId": "1"}}, "message.attributes must be an object"),
        ("/hooks/storage", [1, 2], "body must be an object"),
    ],
)
def test_malformed_is_422_with_reason(running, path, payload, reason):
    r = post(running.url, path, payload)
    assert r.status_code == 422
    assert reason in r.json()["detail"]
    assert running.launcher.launched == []


def test_oversized_is_413_and_unknown_model_404(running):
    big = {"event_id": "big", "model": "churn", "reason": "x" * (70 * 1024)}
    r = post(running.url, "/hooks/generic", big)
    assert r.status_code == 413
    r = post(running.url, "/hooks/alertmanager", alert(model="fraud", drift_share=0.9))
    assert r.status_code == 404
    assert "unknown model 'fraud'; configured: churn, credit-default" in r.json()["detail"]
    assert running.launcher.launched == []


def test_generic_and_storage_hooks_use_the_policy(tmp_path):
    r = Running(make_config(tmp_path, cooldown_seconds=0), LogLauncher())
    try:
        # A champion-less model always trains first; then the policy decides on each event.
        first = post(r.url, "/hooks/generic", {"event_id": "e1", "model": "churn"}).json()
        assert first["decisions"][0]["decision"] == "launch"
        # Seed a trained model's state: 1000 training rows, new_data_fraction 0.5 -> 500 rows.
        r.service.state.save_policy_state("credit-default", {"training_rows": 1000})
        r.service._has_champion = lambda model: True
        msg = {
            "message": {
                "messageId": "m-1",
                "attributes": {
                    "eventType": "OBJECT_FINALIZE",
                    "bucketId": "b",
                    "objectId": "incoming/part-1.parquet",
                },
                "data": base64.b64encode(
                    json.dumps({"metadata": {"rows": "300"}}).encode()
                ).decode(),
            },
            "subscription": "projects/p/subscriptions/s",
        }
        d1 = post(r.url, "/hooks/storage", msg).json()["decisions"][0]
        assert d1["decision"] == "skip"
        assert "new rows 300 < 0.50 x 1000 training rows = 500" in d1["reasons"]
        dup = post(r.url, "/hooks/storage", msg).json()["decisions"][0]
        assert dup["decision"] == "duplicate"
        msg["message"]["messageId"] = "m-2"
        msg["message"]["attributes"]["objectId"] = "incoming/part-2.parquet"
        d2 = post(r.url, "/hooks/storage", msg).json()["decisions"][0]
        assert d2["decision"] == "launch"
        assert "new rows 600 >= 0.50 x 1000 training rows = 500" in d2["reasons"]
        assert r.launcher.launched[-1][2]["data_uri"] == "gs://b/incoming/part-2.parquet"
        other = dict(msg, message={**msg["message"], "messageId": "m-3"})
        other["message"]["attributes"] = {**msg["message"]["attributes"], "bucketId": "zz"}
        assert post(r.url, "/hooks/storage", other).status_code == 404
        deleted = dict(msg, message={**msg["message"], "messageId": "m-4"})
        deleted["message"]["attributes"] = {"eventType": "OBJECT_DELETE"}
        assert post(r.url, "/hooks/storage", deleted).json()["decisions"] == []
        # A drift alert under the threshold is a skip with the policy's reason.
        skip = post(r.url, "/hooks/alertmanager", alert(group="low", drift_share=0.1)).json()
        assert skip["decisions"][0]["reasons"][0] == "drift share 0.10 < 0.30"
        # Resolved alerts decide nothing.
        resolved = post(r.url, "/hooks/alertmanager", alert(group="res", status="resolved"))
        assert resolved.json()["decisions"] == []
        health = httpx.get(r.url + "/healthz").json()
        assert health == {
            "status": "ok",
            "launcher": "log",
            "models": ["churn", "credit-default"],
            "in_flight": 0,
        }
    finally:
        r.close()
