"""Recurring runs through the real kfp.Client against Prism serving the official KFP API.

Prism validates every request against the v2beta1 Swagger (a bad body answers 4xx) and keeps no
state, so these tests assert the requests refit sends; a recording proxy in front of Prism keeps
them, and answers "the server already has X" itself where a test needs that.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from _servers import Prism, RecordingProxy, ServeProcess
from typer.testing import CliRunner

from refit.cli import app
from refit.schedule import kfp as ks
from refit.schedule.cron import ScheduleError, parse_cron, parse_interval

TOKEN = "test-token"
PARAMS = {"data_uri": "gs://bucket/latest.parquet", "store_uri": "gs://bucket/store"}
CHURN = {
    **PARAMS,
    "gate": {"thresholds": {"accuracy": 0.8}, "max_degradation": 0.02},
    "beam_pipeline_args": ["--runner=DirectRunner"],
}


@pytest.fixture(scope="module")
def prism(tmp_path_factory):
    server = Prism(tmp_path_factory.mktemp("prism"))
    yield server
    server.close()


@pytest.fixture
def proxy(prism):
    p = RecordingProxy(prism.port)
    yield p
    p.close()


@pytest.fixture
def client(proxy):
    return ks.connect(proxy.url, existing_token=TOKEN)


def _created(proxy):
    posts = proxy.find("POST", "/apis/v2beta1/recurringruns")
    return [json.loads(p["body"]) for p in posts]


def test_create_sends_kfp_cron_and_safe_defaults(proxy, client):
    spec = ks.RecurringRunSpec(name="nightly", schedule=parse_cron("0 2 * * *"), params=PARAMS)
    result = ks.apply_recurring_run(client, spec)

    # Prism validated every request against the official contract.
    assert [r["status"] for r in proxy.requests] == [200] * len(proxy.requests)
    (body,) = _created(proxy)
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == "nightly"
    assert body["runtime_config"]["parameters"] == PARAMS
    # The pipeline version uploaded in this call is the one the recurring run references.
    (upload,) = proxy.find("POST", "/apis/v2beta1/pipelines/upload_version")
    query = parse_qs(urlsplit(upload["path"]).query)
    assert query["name"][0].startswith("refit-retraining-")
    assert query["name"][0] == result.pipeline_version_name
    uploaded = json.loads(upload["response"])
    assert body["pipeline_version_reference"] == {
        "pipeline_id": uploaded["pipeline_id"],
        "pipeline_version_id": uploaded["pipeline_version_id"],
    }
    assert b"refit-retraining" in upload["body"]  # the compiled pipeline went up
    # The dry-run body is exactly what was sent, ids aside.
    assert body == ks.recurring_run_body(
        spec,
        experiment_id=result.experiment_id,
        pipeline_id=uploaded["pipeline_id"],
        version_id=uploaded["pipeline_version_id"],
    )
    assert result.action == "created"


def test_interval_paused_and_catchup(proxy, client):
    spec = ks.RecurringRunSpec(
        name="six-hourly",
        schedule=parse_interval("6h"),
        params=CHURN,
        max_concurrency=2,
        no_catchup=False,
        enabled=False,
    )
    ks.apply_recurring_run(client, spec)
    assert [r["status"] for r in proxy.requests] == [200] * len(proxy.requests)
    (body,) = _created(proxy)
    assert body["trigger"] == {"periodic_schedule": {"interval_second": 21600}}
    assert body["max_concurrency"] == 2
    assert body["no_catchup"] is False
    assert body["mode"] == "DISABLE"
    assert body["runtime_config"]["parameters"]["gate"] == CHURN["gate"]
    assert body["runtime_config"]["parameters"]["beam_pipeline_args"] == ["--runner=DirectRunner"]


def test_second_apply_replaces_and_reuses_the_version(proxy, client):
    spec = ks.RecurringRunSpec(name="nightly", schedule=parse_cron("@daily"), params=PARAMS)
    with tempfile.TemporaryDirectory() as tmp:
        vname = ks.version_name(spec.pipeline_name, ks.compile_pipeline("retraining", Path(tmp)))
    # The server already holds this pipeline version and a recurring run named "nightly".
    proxy.overrides[("GET", "/apis/v2beta1/pipelines/string/versions")] = (
        200,
        {
            "pipeline_versions": [
                {"pipeline_id": "string", "pipeline_version_id": "v-7", "display_name": vname}
            ]
        },
    )
    proxy.overrides[("GET", "/apis/v2beta1/recurringruns")] = (
        200,
        {
            "recurringRuns": [
                {"recurring_run_id": "rr-old", "display_name": "nightly"},
                {"recurring_run_id": "rr-other", "display_name": "nightly-2"},
            ]
        },
    )
    result = ks.apply_recurring_run(client, spec)
    assert result.action == "replaced"
    assert result.replaced_ids == ["rr-old"]
    assert proxy.find("POST", "/apis/v2beta1/pipelines/upload_version") == []
    deletes = [r["route"] for r in proxy.requests if r["method"] == "DELETE"]
    assert deletes == ["/apis/v2beta1/recurringruns/rr-old"]
    order = [(r["method"], r["route"]) for r in proxy.requests]
    assert order.index(("DELETE", "/apis/v2beta1/recurringruns/rr-old")) < order.index(
        ("POST", "/apis/v2beta1/recurringruns")
    )
    (body,) = _created(proxy)
    assert body["pipeline_version_reference"]["pipeline_version_id"] == "v-7"
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 0 * * *"}}


def test_cli_pause_resume_delete_and_unknown_name(proxy, tmp_path):
    proxy.overrides[("GET", "/apis/v2beta1/recurringruns")] = (
        200,
        {"recurringRuns": [{"recurring_run_id": "rr-1", "display_name": "nightly"}]},
    )
    runner = CliRunner()
    token_file = tmp_path / "kfp-token"  # a mounted Secret; never --token on the command line
    token_file.write_text(TOKEN + "\n")
    common = ["--host", proxy.url, "--token-file", str(token_file)]
    for action, route in [
        ("pause", "/apis/v2beta1/recurringruns/rr-1:disable"),
        ("resume", "/apis/v2beta1/recurringruns/rr-1:enable"),
    ]:
        out = runner.invoke(app, ["schedule", action, "nightly", *common])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout.strip().splitlines()[-1])["ids"] == ["rr-1"]
        assert [r["status"] for r in proxy.find("POST", route)] == [200]
        assert proxy.find("POST", route)[-1]["authorization"] == f"Bearer {TOKEN}"
    out = runner.invoke(app, ["schedule", "delete", "nightly", *common])
    assert out.exit_code == 0, out.output
    assert [r["status"] for r in proxy.find("DELETE", "/apis/v2beta1/recurringruns/rr-1")] == [200]
    out = runner.invoke(app, ["schedule", "pause", "weekly", *common])
    assert out.exit_code == 2
    assert "no recurring run named 'weekly'" in out.output


def test_cli_list_and_create(proxy):
    runner = CliRunner(env={"KFP_TOKEN": TOKEN})
    common = ["--host", proxy.url]
    out = runner.invoke(app, ["schedule", "list", *common])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
    assert rows and {"name", "id", "cron", "max_concurrency", "no_catchup"} <= set(rows[0])
    out = runner.invoke(
        app,
        [
            "schedule",
            "create",
            "hourly",
            "--cron",
            "0 * * * *",
            "--params",
            json.dumps(PARAMS),
            *common,
        ],
    )
    assert out.exit_code == 0, out.output
    (body,) = _created(proxy)
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"


def test_unknown_pipeline_is_refused_before_any_request(proxy, client):
    before = len(proxy.requests)
    spec = ks.RecurringRunSpec(name="x", schedule=parse_cron("@daily"), pipeline="no-such")
    with pytest.raises(ScheduleError, match="unknown pipeline 'no-such'"):
        ks.apply_recurring_run(client, spec)
    assert len(proxy.requests) == before


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_trigger_kfp_launcher_retries_5xx_and_keeps_the_trigger(proxy, tmp_path):
    from refit.triggers.config import ServiceConfig
    from refit.triggers.launchers import KfpLauncher
    from refit.triggers.payloads import TriggerEvent
    from refit.triggers.service import TriggerService

    config = ServiceConfig.from_dict(
        {"state_path": str(tmp_path / "s.db"), "models": {"credit-default": {"params": PARAMS}}}
    )
    launcher = KfpLauncher(proxy.url, token=TOKEN, attempts=3, backoff=0.01)
    proxy.overrides[("POST", "/apis/v2beta1/runs")] = (503, {"error": "unavailable"})
    service = TriggerService(config, launcher, retry_seconds=0.3)
    service.start()
    try:
        event = TriggerEvent(
            hook="generic", model="credit-default", dedupe_key="e-1", summary="test"
        )
        decision = service.handle(event)
        assert decision["decision"] == "launch"
        assert decision["status"] == "pending"
        # Between retries the kept run is "pending" with the last error (while a retry is in
        # flight it reads "running"); it never becomes failed or dropped.
        (run,) = _wait_for(
            lambda: [r for r in service.state.runs() if r["error"] and r["status"] == "pending"]
        )
        assert not [r for r in service.state.runs() if r["status"] not in ("pending", "running")]
        assert "failed after 3 attempts" in run["error"]
        assert "503" in run["error"]
        assert len(proxy.find("POST", "/apis/v2beta1/runs")) >= 3
        # The server recovers: the kept trigger launches on a later retry, with its parameters.
        del proxy.overrides[("POST", "/apis/v2beta1/runs")]
        (run,) = _wait_for(lambda: [r for r in service.state.runs("submitted")])
        assert run["attempts"] >= 2
        assert run["external_id"]
        sent = json.loads(proxy.find("POST", "/apis/v2beta1/runs")[-1]["body"])
        assert sent["display_name"] == f"refit-credit-default-trigger-{run['id']}"
        assert proxy.find("POST", "/apis/v2beta1/runs")[-1]["status"] == 200
        # The created run carries every input the compiled pipeline (sent with it) needs, no
        # other, and the model the trigger judged: not the pipeline's default model_name.
        # With a platform spec (kfp-kubernetes settings) the client nests the pipeline's.
        spec = sent["pipeline_spec"].get("pipeline_spec", sent["pipeline_spec"])
        compiled = spec["root"]["inputDefinitions"]["parameters"]
        required = {n for n, d in compiled.items() if "defaultValue" not in d}
        parameters = sent["runtime_config"]["parameters"]
        assert required <= set(parameters) <= set(compiled)
        assert compiled["model_name"]["defaultValue"] != "credit-default"
        assert parameters == {
            **PARAMS,
            "model_name": "credit-default",
            "run_label": run["params"]["run_label"],
        }
        assert parameters["run_label"].startswith("trigger-credit-default-")
    finally:
        service.stop()


def test_refit_serve_submits_runs_for_the_judged_model_in_the_configured_images(proxy, tmp_path):
    """The Deployment's contract: `refit serve-triggers --launcher kfp` with KFP_HOST, KFP_TOKEN and
    REFIT_IMAGE_REPOSITORY in its environment submits runs whose tasks use that repository."""
    from refit import __version__

    config = tmp_path / "serve.json"
    config.write_text(
        json.dumps(
            {
                "state_path": str(tmp_path / "s.db"),
                "models": {"credit-default": {"params": PARAMS}, "churn": {"params": CHURN}},
            }
        )
    )
    secret = "hook-secret-for-the-prism-test-0123"
    env = {
        "KFP_HOST": proxy.url,
        "KFP_TOKEN": TOKEN,
        "REFIT_IMAGE_REPOSITORY": "registry.example.com/ml/refit",
    }
    server = ServeProcess(config, secret, launcher="kfp", env=env)
    try:
        answer = httpx.post(
            server.url + "/hooks/generic",
            json={"event_id": "e-1", "model": "churn", "reason": "test"},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["decisions"][0]["decision"] == "launch"
        (run,) = _wait_for(
            lambda: httpx.get(
                server.url + "/runs",
                params={"status": "submitted"},
                headers={"Authorization": f"Bearer {secret}"},
            ).json()["runs"]
        )
    finally:
        server.stop()
    (post,) = proxy.find("POST", "/apis/v2beta1/runs")
    assert post["status"] == 200
    assert post["authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(post["body"])
    spec = sent["pipeline_spec"].get("pipeline_spec", sent["pipeline_spec"])
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"registry.example.com/ml/refit:{__version__}"}
    parameters = sent["runtime_config"]["parameters"]
    assert parameters["model_name"] == "churn"
    # dict and list parameters travel as JSON objects and arrays (KFP's STRUCT and LIST)
    assert parameters["gate"] == CHURN["gate"]
    assert parameters["beam_pipeline_args"] == CHURN["beam_pipeline_args"]
    assert parameters["run_label"] == run["params"]["run_label"]
    assert parameters["run_label"].startswith("trigger-churn-")


@pytest.mark.parametrize(("status", "word"), [(401, "Unauthorized"), (403, "Forbidden")])
def test_refused_credentials_are_an_authentication_error_at_once(proxy, status, word):
    proxy.overrides[("GET", "/apis/v2beta1/healthz")] = (status, {"error": "no"})
    with pytest.raises(ScheduleError, match=rf"HTTP {status} {word}\): this is an authentication"):
        ks.connect(proxy.url, existing_token="wrong")
    # one request, not kfp.Client's five retries 5 s apart ending in a timeout
    (probe,) = proxy.requests
    assert probe["authorization"] == "Bearer wrong"


def test_a_redirect_to_a_login_page_is_an_authentication_error(proxy):
    proxy.overrides[("GET", "/apis/v2beta1/healthz")] = (302, {})
    with pytest.raises(ScheduleError, match="a login page: this is an authentication error"):
        ks.connect(proxy.url)


def test_an_unreachable_server_is_a_network_error():
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ScheduleError, match="cannot reach the KFP API"):
        ks.connect(f"http://127.0.0.1:{port}")
