"""Trigger service pieces without HTTP: auth, payload parsing, config, SQLite state."""

from __future__ import annotations

import base64
import json

import pytest

from refit.policy import PolicyState
from refit.triggers import auth
from refit.triggers.config import ServiceConfig, TriggerConfigError
from refit.triggers.launchers import LogLauncher
from refit.triggers.payloads import (
    PayloadError,
    alertmanager_events,
    generic_event,
    storage_event,
)
from refit.triggers.service import TriggerService, UnknownModelError
from refit.triggers.state import StateStore

SECRET = b"0123456789abcdef-secret"


def test_secret_from_env_or_file_and_refusal(tmp_path):
    assert auth.load_secret({"REFIT_HOOK_TOKEN": SECRET.decode()}) == SECRET
    f = tmp_path / "token"
    f.write_text(SECRET.decode() + "\n")
    assert auth.load_secret({"REFIT_HOOK_TOKEN_FILE": str(f)}) == SECRET
    with pytest.raises(TriggerConfigError, match="set REFIT_HOOK_TOKEN, or REFIT_HOOK_TOKEN_FILE"):
        auth.load_secret({})
    with pytest.raises(TriggerConfigError, match="cannot read the hook token file"):
        auth.load_secret({"REFIT_HOOK_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(TriggerConfigError, match="too short"):
        auth.load_secret({"REFIT_HOOK_TOKEN": "short"})


def test_check_bearer_and_signature():
    body = b'{"a": 1}'
    assert auth.check(SECRET, f"Bearer {SECRET.decode()}", None, body) == ""
    assert auth.check(SECRET, None, auth.sign(SECRET, body), body) == ""
    assert auth.check(SECRET, "Bearer nope", None, body) == "bearer token does not match"
    assert auth.check(SECRET, None, auth.sign(SECRET, b"{}"), body) == (
        "signature does not match the body"
    )
    assert auth.check(SECRET, None, None, body).startswith("missing Authorization")


def _am(**overrides):
    data = {
        "version": "4",
        "groupKey": "{}:{alertname=\"DriftHigh\"}",
        "status": "firing",
        "commonLabels": {"model": "m"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DriftHigh"}, "fingerprint": "b",
             "annotations": {"drift_share": "0.4"}},
            {"status": "firing", "labels": {"alertname": "AccLow", "model": "m"},
             "fingerprint": "a", "annotations": {"metric_value": "0.7"}},
            {"status": "resolved", "labels": {"alertname": "Old", "model": "m"},
             "fingerprint": "c"},
        ],
    }  # fmt: skip
    data.update(overrides)
    return data


def test_alertmanager_events_key_on_group_and_firing_fingerprints():
    (event,) = alertmanager_events(_am())
    assert event.model == "m"
    assert event.dedupe_key == 'am|{}:{alertname="DriftHigh"}|m|a,b'
    assert event.drift_share == 0.4
    assert event.metric_value == 0.7
    assert event.summary == "alert(s) AccLow, DriftHigh firing (2)"
    # Order of alerts does not change the key.
    reordered = _am()
    reordered["alerts"] = list(reversed(reordered["alerts"]))
    assert alertmanager_events(reordered)[0].dedupe_key == event.dedupe_key


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_am(version="2"), 'version must be "4"'),
        (_am(groupKey=""), "groupKey must be a non-empty string"),
        (_am(alerts="x"), "alerts must be a non-empty list"),
        (_am(commonLabels={}), "alerts[0] has no 'model' label"),
        (_am(alerts=[{"status": "pending", "fingerprint": "x"}]), "status must be firing or"),
        (_am(alerts=[{"status": "firing", "labels": {"model": "m"}}]), "fingerprint must be"),
        ([], "body must be an object"),
    ],
)
def test_alertmanager_malformed(payload, reason):
    with pytest.raises(PayloadError) as info:
        alertmanager_events(payload)
    assert reason in str(info.value)


def test_storage_and_generic_events():
    data = base64.b64encode(json.dumps({"metadata": {"rows": 1200}}).encode()).decode()
    push = {
        "message": {
            "messageId": "42",
            "attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "in/x.csv"},
            "data": data,
        }
    }
    assert storage_event(push) == ("42", "gs://b/in/x.csv", 1200, "1200 new rows")
    push["message"]["data"] = "%%%"
    with pytest.raises(PayloadError, match="message.data is not base64 JSON"):
        storage_event(push)
    push["message"]["attributes"]["eventType"] = "OBJECT_METADATA_UPDATE"
    assert storage_event(push) is None
    event = generic_event({"event_id": "e1", "model": "m", "drift_share": 0.5, "new_rows": 10})
    assert (event.dedupe_key, event.drift_share, event.new_rows) == ("generic|e1", 0.5, 10)
    with pytest.raises(PayloadError, match="metric_value must be a finite number"):
        generic_event({"event_id": "e1", "model": "m", "metric_value": float("nan")})


def test_config_validation(tmp_path):
    with pytest.raises(TriggerConfigError, match="unknown field.*colldown"):
        ServiceConfig.from_dict({"models": {"m": {}}, "colldown": 1})
    with pytest.raises(TriggerConfigError, match="'models' must map at least one"):
        ServiceConfig.from_dict({"models": {}})
    with pytest.raises(TriggerConfigError, match="models.m: cron '0 2 \\* \\*' has 4 field"):
        ServiceConfig.from_dict({"models": {"m": {"schedule": "0 2 * *"}}})
    with pytest.raises(TriggerConfigError, match="models.m: drift_share_threshold"):
        ServiceConfig.from_dict({"models": {"m": {"policy": {"drift_share_threshold": 3}}}})
    with pytest.raises(TriggerConfigError, match="max_in_flight must be an integer >= 1"):
        ServiceConfig.from_dict({"models": {"m": {}}, "max_in_flight": 0})
    config = ServiceConfig.from_dict(
        {
            "models": {
                "a": {"storage_prefixes": ["gs://b/"]},
                "b": {"storage_prefixes": ["gs://b/x/"]},
            }
        }
    )
    assert config.model_for_object("gs://b/x/1.csv").name == "b"
    assert config.model_for_object("gs://b/y/1.csv").name == "a"
    assert config.model_for_object("gs://c/1.csv") is None


def test_state_survives_reopen(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    assert store.claim("k", 100.0, 50.0)
    assert not store.claim("k", 120.0, 50.0)
    run = store.add_run(model="m", hook="generic", trigger="t", reasons=["r"], params={"a": 1},
                        launcher="log", now=120.0)  # fmt: skip
    store.save_policy_state("m", PolicyState(rows_since_training=5).to_dict())
    store.close()
    store = StateStore(path)
    assert not store.claim("k", 140.0, 50.0)
    assert store.claim("k", 200.0, 50.0)  # remembered for the TTL only
    assert store.last_launch("m") == 120.0
    assert store.policy_state("m")["rows_since_training"] == 5
    (row,) = store.runs()
    assert (row["id"], row["status"], row["params"], row["reasons"]) == (run, "pending", {"a": 1},
                                                                         ["r"])  # fmt: skip
    assert store.in_flight() == 1
    store.close()


def test_service_cooldown_in_flight_and_scheduler(tmp_path):
    clock = [1_000_000.0]
    config = ServiceConfig.from_dict(
        {
            "state_path": str(tmp_path / "s.db"),
            "cooldown_seconds": 600,
            "models": {"m": {"schedule": "*/5 * * * *"}, "n": {}},
        }
    )
    launcher = LogLauncher()
    service = TriggerService(config, launcher, clock=lambda: clock[0])
    with pytest.raises(UnknownModelError, match="unknown model 'x'; configured: m, n"):
        service.model("x")
    assert service.scheduler_tick_once() == []  # first tick only records the start
    clock[0] += 301
    (fired,) = service.scheduler_tick_once()
    assert fired["decision"] == "launch"
    assert fired["trigger"].startswith("schedule '*/5 * * * *' due at")
    clock[0] += 3600 * 5  # five hours paused: one fire, no catch-up storm
    (again,) = service.scheduler_tick_once()
    assert again["decision"] == "launch"
    assert service.scheduler_tick_once() == []
    assert len(launcher.launched) == 2
    # Cooldown: a second event for m within 600 s is held, with the reason.
    from refit.triggers.payloads import TriggerEvent

    held = service.handle(TriggerEvent("generic", "m", "g1", "x", drift_share=0.9))
    assert held["decision"] == "held"
    assert held["reasons"][0].startswith("cooldown: last run for m launched 0 s ago")
    service.stop()


def test_serve_refuses_to_start_without_a_secret(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from refit.cli import app

    monkeypatch.delenv("REFIT_HOOK_TOKEN", raising=False)
    monkeypatch.delenv("REFIT_HOOK_TOKEN_FILE", raising=False)
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"models": {"m": {}}}))
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "set REFIT_HOOK_TOKEN, or REFIT_HOOK_TOKEN_FILE" in result.output
    monkeypatch.setenv("REFIT_HOOK_TOKEN", SECRET.decode())
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--launcher", "nope"])
    assert result.exit_code == 2
    assert "unknown launcher 'nope'; known: kfp, local, log" in result.output
