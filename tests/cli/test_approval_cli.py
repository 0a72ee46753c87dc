"""Human approval through the real CLI (`refit registry approve|reject|pending`) and through the
trigger service's authenticated endpoints over HTTP (uvicorn on loopback)."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _models import register_skops_versions
from _servers import UvicornThread
from typer.testing import CliRunner

from refit.cli import app
from refit.deploy import LocalTarget
from refit.governance.approval import get_request, pending, request_approval
from refit.registry import ModelRegistry
from refit.triggers.app import create_app
from refit.triggers.auth import sign
from refit.triggers.config import ServiceConfig
from refit.triggers.launchers import LogLauncher
from refit.triggers.service import TriggerService

runner = CliRunner()
SECRET = b"approval-secret-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET.decode()}"}


def params(store: str | None) -> dict[str, str]:
    """Run parameters the retraining pipeline requires (the trigger config is checked against
    them; a run trains into the store the service judges)."""
    return {"data_uri": "gs://b/latest.parquet", "store_uri": store or "gs://b/store"}


@pytest.fixture
def store(tmp_path) -> str:
    """A local store: churn v1 is the champion; v2, v3, v4 were evaluated against v1."""
    store = str(tmp_path / "store")
    reg = ModelRegistry(store, "churn")
    register_skops_versions(reg, tmp_path, 4, chain=False)
    LocalTarget(reg).promote(1, reason="first model")
    return store


def cli(store: str, *args: str):
    return runner.invoke(app, ["registry", "--store", store, "--model", "churn", *args])


def events(reg: ModelRegistry, name: str) -> list[dict]:
    return [r["payload"] for r in reg.audit.records() if r["event"] == name]


# --------------------------------------------------------------------------- CLI


def test_cli_pending_approve_release_and_reject(store):
    reg = ModelRegistry(store, "churn")
    empty = cli(store, "pending")
    assert empty.exit_code == 0 and "no versions of churn await approval" in empty.output
    request_approval(reg, 2, timeout_hours=48, approvers=["alice"], run_label="run-2")
    request_approval(reg, 3, timeout_hours=48, run_label="run-3")

    table = cli(store, "pending")
    assert table.exit_code == 0, table.output
    assert "awaiting approval" in table.output and "run-2" in table.output
    assert "alice" in table.output and "anyone" in table.output
    listed = json.loads(cli(store, "pending", "--json").output)
    assert [(r["version"], r["approvers"], r["expired"]) for r in listed] == [
        (2, ["alice"], False),
        (3, [], False),
    ]

    refused = cli(store, "approve", "2", "--by", "mallory")
    assert refused.exit_code != 0
    assert "'mallory' is not one of its approvers (alice)" in refused.output
    assert reg.get(2).status == "awaiting_approval" and reg.get_alias("champion") == 1

    ok = cli(store, "approve", "2", "--by", "alice", "--reason", "fairness and latency ok")
    assert ok.exit_code == 0, ok.output
    assert "approved: v2 by alice" in ok.output and "champion: v2 (previous: v1)" in ok.output
    assert reg.get_alias("champion") == 2 and reg.get(2).status == "champion"

    again = cli(store, "approve", "2", "--by", "alice")
    assert again.exit_code != 0
    assert "its status is 'champion', not 'awaiting_approval'" in again.output
    assert "approved by alice" in again.output

    not_waiting = cli(store, "approve", "4", "--by", "alice")
    assert not_waiting.exit_code != 0
    assert "version 4: its status is 'registered', not 'awaiting_approval'" in not_waiting.output
    missing = cli(store, "reject", "9", "--by", "bob", "--reason", "x")
    assert missing.exit_code != 0 and "no version 9" in missing.output

    no_reason = cli(store, "reject", "3", "--by", "bob")
    assert no_reason.exit_code != 0 and "--reason" in no_reason.output
    no_name = cli(store, "reject", "3", "--by", " ", "--reason", "slow")
    assert no_name.exit_code != 0 and "by must be a non-empty name" in no_name.output
    assert reg.get(3).status == "awaiting_approval"
    rejected = cli(store, "reject", "3", "--by", "bob", "--reason", "p99 latency regressed")
    assert rejected.exit_code == 0, rejected.output
    assert "rejected: v3 by bob: p99 latency regressed" in rejected.output
    assert reg.get(3).status == "rejected"
    assert json.loads(cli(store, "pending", "--json").output) == []

    [approval] = events(reg, "approval")
    assert (approval["version"], approval["by"], approval["reason"], approval["via"]) == (
        2,
        "alice",
        "fairness and latency ok",
        "cli",
    )
    [rejection] = events(reg, "rejection")
    assert (rejection["version"], rejection["by"], rejection["reason"]) == (
        3,
        "bob",
        "p99 latency regressed",
    )
    promotion = events(reg, "promotion")[-1]
    assert promotion["version"] == 2 and promotion["reason"].startswith("approved by alice")
    verify = runner.invoke(app, ["audit", "verify", "--store", store])
    assert verify.exit_code == 0 and "intact" in verify.output


def test_cli_conflict_no_release_and_expiry(store):
    reg = ModelRegistry(store, "churn")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    request_approval(reg, 2, timeout_hours=1, run_label="old", now=long_ago)
    request_approval(reg, 4, timeout_hours=48, run_label="r")

    expired = cli(store, "approve", "2", "--by", "alice")
    assert expired.exit_code != 0 and "approval request expired at" in expired.output
    assert "(expired)" in cli(store, "pending").output
    assert reg.get(2).status == "awaiting_approval" and events(reg, "approval") == []

    held = cli(store, "approve", "4", "--by", "alice", "--no-release")
    assert held.exit_code == 0 and "champion:" not in held.output
    assert reg.get(4).status == "approved" and reg.get_alias("champion") == 1

    [record] = events(reg, "approval")
    assert record["version"] == 4 and record["by"] == "alice" and record["via"] == "cli"
    assert events(reg, "promotion")[-1]["version"] == 1


def test_cli_approve_reports_a_release_conflict(store):
    reg = ModelRegistry(store, "churn")
    request_approval(reg, 4, timeout_hours=48, run_label="r")
    LocalTarget(reg).promote(3, reason="another run won meanwhile")
    out = cli(store, "approve", "4", "--by", "alice")
    assert out.exit_code != 0
    assert "approved but not released" in out.output
    assert "evaluated against champion v1, but the champion is now v3" in out.output
    assert reg.get(4).status == "approved" and reg.get_alias("champion") == 3


# --------------------------------------------------------------------------- trigger service


class Serving:
    """The trigger service, configured with the store, behind uvicorn on loopback."""

    def __init__(self, tmp_path: Path, store: str | None) -> None:
        raw = {
            "state_path": str(tmp_path / "state.db"),
            "models": {
                "churn": {"policy": {"drift_share_threshold": 0.3}, "params": params(store)}
            },
        }
        if store is not None:
            raw["store_uri"] = store
        self.service = TriggerService(ServiceConfig.from_dict(raw), LogLauncher())
        self.server = UvicornThread(create_app(self.service, SECRET))

    def post(self, path: str, payload, headers=AUTH) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return httpx.post(self.server.url + path, content=body, headers=headers, timeout=10)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def serving(tmp_path, store):
    s = Serving(tmp_path, store)
    yield s
    s.close()


def test_endpoints_refuse_unauthenticated_callers(serving, store):
    reg = ModelRegistry(store, "churn")
    request_approval(reg, 2, timeout_hours=48, run_label="r")
    body = json.dumps({"by": "mallory", "reason": "ship it"}).encode()
    attempts = [
        {},
        {"Authorization": "Bearer not-the-secret-0123456789"},
        {"X-Refit-Signature": sign(b"another-secret-0123456789", body)},
        {"X-Refit-Signature": sign(SECRET, body + b" ")},
    ]
    for headers in attempts:
        for action in ("approve", "reject"):
            resp = serving.post(f"/approvals/churn/2/{action}", body, headers)
            assert resp.status_code == 401, resp.text
            assert resp.json()["detail"].startswith("unauthorized")
    # unauthenticated callers learn nothing about versions either
    assert serving.post("/approvals/churn/abc/approve", body, {}).status_code == 401
    assert reg.get(2).status == "awaiting_approval" and reg.get_alias("champion") == 1
    assert events(reg, "approval") == [] and events(reg, "rejection") == []
    assert events(reg, "promotion")[-1]["version"] == 1
    metrics = httpx.get(serving.server.url + "/metrics").text
    assert 'refit_hooks_rejected_total{hook="approvals",reason="unauthorized"} 9.0' in metrics


def test_endpoints_approve_release_and_reject(serving, store):
    reg = ModelRegistry(store, "churn")
    request_approval(reg, 2, timeout_hours=48, approvers=["alice", "bob"], run_label="r")
    request_approval(reg, 3, timeout_hours=48, run_label="r")

    assert serving.post("/approvals/churn/2/approve", b"{not json").status_code == 422
    assert serving.post("/approvals/churn/2/approve", {"reason": "x"}).status_code == 422
    extra = serving.post("/approvals/churn/2/approve", {"by": "alice", "role": "admin"})
    assert extra.status_code == 422 and "unknown field(s) role" in extra.json()["detail"]
    assert serving.post("/approvals/churn/0/approve", {"by": "alice"}).status_code == 422
    unknown = serving.post("/approvals/fraud/2/approve", {"by": "alice"})
    assert unknown.status_code == 404 and "unknown model 'fraud'" in unknown.json()["detail"]
    missing = serving.post("/approvals/churn/9/approve", {"by": "alice"})
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]
    outsider = serving.post("/approvals/churn/2/approve", {"by": "mallory"})
    assert outsider.status_code == 403 and "not one of its approvers" in outsider.json()["detail"]
    assert reg.get(2).status == "awaiting_approval"

    body = json.dumps({"by": "alice", "reason": "reviewed the release record"}).encode()
    signed = serving.post(
        "/approvals/churn/2/approve", body, {"X-Refit-Signature": sign(SECRET, body)}
    )
    assert signed.status_code == 200, signed.text
    answer = signed.json()
    assert (answer["status"], answer["by"], answer["released"], answer["champion"]) == (
        "approved",
        "alice",
        True,
        2,
    )
    assert reg.get_alias("champion") == 2 and reg.get(2).status == "champion"

    twice = serving.post("/approvals/churn/2/approve", {"by": "bob"})
    assert twice.status_code == 409
    assert "its status is 'champion', not 'awaiting_approval'" in twice.json()["detail"]

    no_reason = serving.post("/approvals/churn/3/reject", {"by": "bob"})
    assert no_reason.status_code == 422 and "'reason' must say why" in no_reason.json()["detail"]
    rejected = serving.post("/approvals/churn/3/reject", {"by": "bob", "reason": "unfair"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected" and rejected.json()["released"] is False
    assert reg.get(3).status == "rejected" and reg.get_alias("champion") == 2
    late = serving.post("/approvals/churn/3/approve", {"by": "alice"})
    assert late.status_code == 409 and "rejected by bob" in late.json()["detail"]

    # The service also exports the model's own series, read from the store: v2 is live now.
    # (The exporter caches the store for a few seconds; this is its first read.)
    model_metrics = httpx.get(serving.server.url + "/model-metrics", timeout=30).text
    assert 'refit_live_version{model="churn"} 2.0' in model_metrics
    assert 'refit_store_up{model="churn"} 1.0' in model_metrics

    [approval] = events(reg, "approval")
    assert approval["by"] == "alice" and approval["reason"] == "reviewed the release record"
    assert approval["via"] == "trigger-service" and approval["client"] == "127.0.0.1"
    [rejection] = events(reg, "rejection")
    assert (rejection["by"], rejection["reason"]) == ("bob", "unfair")
    assert reg.audit.verify() == []


def test_endpoint_reports_a_release_conflict(serving, store):
    reg = ModelRegistry(store, "churn")
    request_approval(reg, 4, timeout_hours=48, run_label="r")
    LocalTarget(reg).promote(3, reason="another run won meanwhile")
    resp = serving.post("/approvals/churn/4/approve", {"by": "alice"})
    assert resp.status_code == 409
    body = resp.json()
    assert body["status"] == "approved" and body["released"] is False
    assert "the champion is now v3" in body["detail"]
    assert reg.get_alias("champion") == 3 and reg.get(4).status == "approved"


def test_endpoint_needs_the_store(tmp_path, store):
    serving = Serving(tmp_path, None)
    try:
        resp = serving.post("/approvals/churn/2/approve", {"by": "alice"})
        assert resp.status_code == 503 and "store_uri" in resp.json()["detail"]
    finally:
        serving.close()


def test_service_sweeps_expired_requests(tmp_path, store):
    reg = ModelRegistry(store, "churn")
    request_approval(reg, 2, timeout_hours=2, run_label="r")
    request_approval(reg, 3, timeout_hours=24, run_label="r")
    config = ServiceConfig.from_dict(
        {
            "store_uri": store,
            "state_path": str(tmp_path / "sweep.db"),
            "models": {"churn": {"params": params(store)}, "fraud": {"params": params(store)}},
        }
    )
    later = time.time() + 3 * 3600
    service = TriggerService(config, LogLauncher(), clock=lambda: later)
    try:
        assert service.expire_approvals() == [
            {"model": "churn", "version": 2, "reason": "approval timed out after 2 h"}
        ]
        assert service.expire_approvals() == []
    finally:
        service.state.close()
    assert reg.get(2).status == "rejected" and get_request(reg, 2).timed_out
    assert [r.version for r in pending(reg)] == [3]
