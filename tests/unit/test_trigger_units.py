"""Trigger service pieces without HTTP: auth, payload parsing, config, SQLite state."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from refit.policy import PolicyState
from refit.triggers import auth
from refit.triggers.config import ServiceConfig, TriggerConfigError
from refit.triggers.inputs import pipeline_inputs
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
#: The retraining pipeline's required inputs (model_name and run_label are the service's).
PARAMS = {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"}


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
    m = {"params": PARAMS}
    with pytest.raises(TriggerConfigError, match="unknown field.*colldown"):
        ServiceConfig.from_dict({"models": {"m": m}, "colldown": 1})
    with pytest.raises(TriggerConfigError, match="'models' must map at least one"):
        ServiceConfig.from_dict({"models": {}})
    with pytest.raises(TriggerConfigError, match="models.m: cron '0 2 \\* \\*' has 4 field"):
        ServiceConfig.from_dict({"models": {"m": {**m, "schedule": "0 2 * *"}}})
    with pytest.raises(TriggerConfigError, match="models.m: drift_share_threshold"):
        ServiceConfig.from_dict({"models": {"m": {**m, "policy": {"drift_share_threshold": 3}}}})
    with pytest.raises(TriggerConfigError, match="max_in_flight must be an integer >= 1"):
        ServiceConfig.from_dict({"models": {"m": m}, "max_in_flight": 0})
    config = ServiceConfig.from_dict(
        {
            "models": {
                "a": {**m, "storage_prefixes": ["gs://b/"]},
                "b": {**m, "storage_prefixes": ["gs://b/x/"]},
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
            "models": {"m": {"params": PARAMS, "schedule": "*/5 * * * *"}, "n": {"params": PARAMS}},
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


# --------------------------------------------------------------------------- pipeline inputs

ROOT = Path(__file__).resolve().parents[2]


def _compiled_inputs() -> dict:
    """root.inputDefinitions.parameters of the committed, compiled retraining pipeline."""
    with open(ROOT / "pipelines" / "retraining.yaml") as f:
        return next(yaml.safe_load_all(f))["root"]["inputDefinitions"]["parameters"]


def test_inputs_are_the_compiled_pipelines():
    inputs = pipeline_inputs("retraining")
    compiled = _compiled_inputs()
    assert set(inputs.inputs) == set(compiled)
    assert inputs.required == sorted(n for n, d in compiled.items() if "defaultValue" not in d)
    assert {n: i.type for n, i in inputs.inputs.items()} == {
        n: d["parameterType"] for n, d in compiled.items()
    }


def test_config_params_are_checked_against_the_pipeline_inputs():
    def load(params):
        return ServiceConfig.from_dict({"models": {"credit": {"params": params}}})

    with pytest.raises(TriggerConfigError) as info:
        load({**PARAMS, "colour": "red"})
    assert "models.credit.params: pipeline retraining has no input(s) 'colour'" in str(info.value)
    assert "data_uri" in str(info.value)  # the message lists what the pipeline takes
    with pytest.raises(TriggerConfigError, match=r"missing required pipeline input\(s\) store_uri"):
        load({"data_uri": "gs://b/x.parquet"})
    with pytest.raises(TriggerConfigError, match="model_name must not be set"):
        load({**PARAMS, "model_name": "other"})
    with pytest.raises(TriggerConfigError, match="run_label must not be set"):
        load({**PARAMS, "run_label": "x"})
    with pytest.raises(TriggerConfigError, match=r"params.seed must be an integer .* got '3'"):
        load({**PARAMS, "seed": "3"})
    with pytest.raises(TriggerConfigError, match=r"params.seed must be an integer .* got True"):
        load({**PARAMS, "seed": True})
    with pytest.raises(TriggerConfigError, match=r"params.holdout_fraction must be a number"):
        load({**PARAMS, "holdout_fraction": "0.2"})
    with pytest.raises(TriggerConfigError, match=r"params.policy must be an object"):
        load({**PARAMS, "policy": '{"drift_share_threshold": 0.3}'})
    with pytest.raises(TriggerConfigError, match=r"params.beam_pipeline_args must be a list"):
        load({**PARAMS, "beam_pipeline_args": "--runner=DirectRunner"})
    # structured inputs take the config's objects and lists as they are
    assert load({**PARAMS, "policy": {"metric_threshold": 0.8}, "beam_pipeline_args": []})
    with pytest.raises(TriggerConfigError, match="pipeline: unknown pipeline 'nope'"):
        ServiceConfig.from_dict({"pipeline": "nope", "models": {"credit": {"params": PARAMS}}})
    with pytest.raises(
        TriggerConfigError, match="params.store_uri 'gs://b/store' is not store_uri"
    ):
        ServiceConfig.from_dict(
            {"store_uri": "gs://other/store", "models": {"credit": {"params": PARAMS}}}
        )
    assert (
        ServiceConfig.from_dict(
            {"store_uri": "gs://b/store/", "models": {"credit": {"params": PARAMS}}}
        ).store_uri
        == "gs://b/store/"
    )
    config = load({**PARAMS, "seed": 3, "holdout_fraction": 1})
    assert config.models["credit"].params == {**PARAMS, "seed": 3, "holdout_fraction": 1}


def test_shipped_trigger_config_fits_the_pipeline():
    config = ServiceConfig.load(ROOT / "manifests" / "base" / "trigger-config.json")
    inputs = pipeline_inputs(config.pipeline)
    for model in config.models.values():
        args = inputs.arguments(model.name, model.params, "trigger-x")
        assert set(inputs.required) <= set(args) <= set(inputs.inputs)
        assert args["model_name"] == model.name


def test_a_launch_carries_every_input_the_model_needs(tmp_path):
    clock = [1_800_000_000.0]
    config = ServiceConfig.from_dict(
        {
            "state_path": str(tmp_path / "s.db"),
            "cooldown_seconds": 0,
            "max_in_flight": 10,
            "models": {
                "credit": {"params": {**PARAMS, "seed": 7}, "storage_prefixes": ["gs://b/in/"]},
                "churn": {"params": {"data_uri": "gs://c/d.csv", "store_uri": "gs://c/s"}},
            },
        }
    )
    launcher = LogLauncher()
    service = TriggerService(config, launcher, clock=lambda: clock[0])
    from refit.triggers.payloads import TriggerEvent

    try:
        for key, model in [("e1", "credit"), ("e2", "credit"), ("e3", "churn")]:
            assert service.handle(TriggerEvent("generic", model, key, "t"))["launched"]
        service.handle(
            TriggerEvent("storage", "credit", "e4", "t", new_rows=5, data_uri="gs://b/in/1.pq")
        )
        kept = [r["params"] for r in reversed(service.state.runs())]
    finally:
        service.stop()
    inputs = pipeline_inputs("retraining")
    labels = []
    for _, model, args in launcher.launched:
        assert set(inputs.required) <= set(args) <= set(inputs.inputs)
        assert args["model_name"] == model
        assert args["run_label"].startswith(f"trigger-{model}-20270115T")
        labels.append(args["run_label"])
    assert len(set(labels)) == 4  # same model, same second: still distinct labels
    assert [a["store_uri"] for _, _, a in launcher.launched] == ["gs://b/store"] * 2 + [
        "gs://c/s",
        "gs://b/store",
    ]
    assert launcher.launched[0][2]["seed"] == 7
    assert launcher.launched[3][2]["data_uri"] == "gs://b/in/1.pq"
    # The runs table keeps what was launched (a retry launches it again, label and all).
    assert kept == [a for _, _, a in launcher.launched]
