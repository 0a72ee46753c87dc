"""The documented Alertmanager wiring, end to end, with real parts on loopback.

A store is built by refit's own steps: a champion (window 0) and a quiet window whose drift share
is under the rule's threshold. ``refit serve-triggers`` runs the shipped trigger config (buckets
swapped for local folders) with the ``log`` launcher and exports the store's series at
``/model-metrics``, as the shipped ServiceMonitor scrapes them. Debian's ``prometheus`` scrapes
it and evaluates the rules rendered (``kubectl kustomize``) from the shipped PrometheusRule, with
one change: ``for`` is 1 s instead of minutes. Debian's ``prometheus-alertmanager`` routes the
alerts with the shipped receiver (``manifests/snippets/alertmanager-receiver.yaml``, its URL
pointed at the loopback service and its token file at a temporary one) under a root route with
``group_wait: 1s``. Then refit's drift step scores a drifting window: the exported drift share
crosses the rule, and exactly one run must be launched, for the right model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from _alertmanager import AlertmanagerServer
from _prometheus import PrometheusServer
from _servers import ServeProcess

from refit import steps
from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "manifests" / "snippets" / "alertmanager-receiver.yaml"
MODEL = "credit-default"  # the shipped trigger config's model
SECRET = "alertmanager-hook-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET}"}
GATE = {"thresholds": {"accuracy": 0.7, "roc_auc": 0.75}, "max_degradation": 0.03}
POLICY = {"drift_share_threshold": 0.3}
#: Demo windows (tests/conftest.py): 1 is quiet (drift share 1/7), 3 has a covariate shift (3/7).
QUIET, DRIFTING = 1, 3


def rendered_manifests() -> list[dict]:
    kubectl = Path(sys.executable).parent / "kubectl"
    proc = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "manifests" / "overlays" / "plain")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def snapshot(store: Path, table, label: str) -> tuple[str, str]:
    work = store.parent / f"work-{label}"
    work.mkdir(parents=True, exist_ok=True)
    data, snap = str(work / "data.parquet"), str(work / "snapshot.parquet")
    write_parquet(table, data)
    out = steps.snapshot_data(
        data, str(store), MODEL, snap, time_column=TIME_COLUMN, run_label=label
    )
    return snap, out.sha256


def drift_window(store: Path, table, label: str) -> float:
    """The drift step on one window: what a pipeline run records and the exporter reads."""
    snap, _ = snapshot(store, table, label)
    champion = steps.resolve_champion(str(store), MODEL)
    drift = steps.detect_drift(
        snap, TARGET, reference_profile_path=champion.profile_uri,
        reference_path=champion.reference_uri, time_column=TIME_COLUMN,
    )  # fmt: skip
    # the pure drift step writes no audit record: the stateful step records its summary
    steps.record_results(str(store), MODEL, {"drift": drift.audit}, run_label=label)
    return drift.drift_share


def champion_store(root: Path, windows) -> Path:
    """A store whose model has a champion (trained on window 0) and a quiet window."""
    store = root / "store"
    snap, sha = snapshot(store, windows[0], "window-00")
    work = root / "work-window-00"
    assert not steps.resolve_champion(str(store), MODEL).has_champion
    model_dir, holdout = str(work / "model"), str(work / "holdout.parquet")
    steps.train_model(
        snap, TARGET, model_dir, holdout,
        params={"n_estimators": 20, "max_depth": 3}, seed=0, time_column=TIME_COLUMN,
        device="cpu",
    )  # fmt: skip
    evaluation = steps.evaluate_model(model_dir, holdout, GATE)
    assert evaluation.blessed
    version = steps.register_model(
        model_dir, str(store), MODEL, sha, evaluation.challenger or {}, run_label="window-00"
    )
    steps.promote_model(str(store), MODEL, version, run_label="window-00")
    assert drift_window(store, windows[QUIET], "window-01") < POLICY["drift_share_threshold"]
    return store


def trigger_config(docs: list[dict], store: Path, tmp: Path) -> Path:
    """The shipped trigger config, its bucket swapped for local folders."""
    (cm,) = [d for d in docs if d["metadata"]["name"].startswith("refit-trigger-config")]
    text = cm["data"]["config.json"]
    assert "gs://YOUR-BUCKET/refit-store" in text
    text = text.replace("gs://YOUR-BUCKET/refit-store", str(store))
    text = text.replace("gs://YOUR-BUCKET", str(tmp / "bucket"))
    raw = json.loads(text)
    assert set(raw["models"]) == {MODEL}
    raw["state_path"] = str(tmp / "triggers.db")
    path = tmp / "trigger-config.json"
    path.write_text(json.dumps(raw))
    return path


def rule_groups(docs: list[dict]) -> list[dict]:
    """The shipped PrometheusRule's groups, ``for`` shortened to 1 s (nothing else changed)."""
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups = rule["spec"]["groups"]
    for group in groups:
        for r in group["rules"]:
            if "for" in r:
                r["for"] = "1s"
    return groups


def alertmanager_config(service_url: str, token_file: Path) -> dict:
    """The shipped receiver and route under a root route that waits 1 s before a group's first
    notification (Alertmanager's default is 30 s)."""
    snippet = yaml.safe_load(SNIPPET.read_text())
    receivers = snippet["receivers"]
    for receiver in receivers:
        for hook in receiver["webhook_configs"]:
            assert urlsplit(hook["url"]).path == "/hooks/alertmanager"
            hook["url"] = service_url + urlsplit(hook["url"]).path
            auth = hook["http_config"]["authorization"]
            assert auth["type"] == "Bearer" and "credentials_file" in auth
            auth["credentials_file"] = str(token_file)
    return {
        "route": {"receiver": "unrouted", "group_wait": "1s", "routes": snippet["route"]["routes"]},
        "receivers": [{"name": "unrouted"}, *receivers],
    }


def rule_state(prom: PrometheusServer, name: str) -> tuple[str, float]:
    """``(state, last evaluation as unix time)`` of one alerting rule."""
    from datetime import datetime

    with urllib.request.urlopen(f"{prom.url}/api/v1/rules?type=alert", timeout=5) as response:
        groups = json.loads(response.read())["data"]["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r["name"] == name]
    stamp = rule["lastEvaluation"]
    # Go's RFC 3339 with nanoseconds: keep microseconds for Python.
    head, _, frac = stamp.partition(".")
    frac = frac.rstrip("Z")[:6] if frac else "0"
    evaluated = datetime.fromisoformat(f"{head}.{frac}+00:00").timestamp()
    return rule["state"], evaluated


def wait_until(what: str, predicate, timeout: float = 90.0, poll: float = 0.1, detail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not reached within {timeout} s: {what}\n{detail() if detail else ''}")


@pytest.mark.slow
def test_drift_crossing_the_shipped_rule_launches_one_run_for_the_model(windows, tmp_path):
    docs = rendered_manifests()
    store = champion_store(tmp_path, windows)
    token_file = tmp_path / "hook-token"
    token_file.write_text(SECRET + "\n")
    server = ServeProcess(trigger_config(docs, store, tmp_path), SECRET, launcher="log")
    threshold = POLICY["drift_share_threshold"]
    share = f'refit_drift_share{{model="{MODEL}"}}'
    try:
        with (
            AlertmanagerServer(alertmanager_config(server.url, token_file)) as am,
            PrometheusServer(
                [f"127.0.0.1:{server.port}"],
                job_name="refit-trigger",  # as the ServiceMonitor names it (RefitTriggerDown)
                metrics_path="/model-metrics",
                rule_groups=rule_groups(docs),
                alertmanagers=[am.address],
                # Firing alerts are re-sent every second (default 1 min): the test then sees
                # Alertmanager keep receiving the alert without notifying the service again.
                extra_args=("--rules.alert.resend-delay=1s",),
            ) as prom,
        ):
            # Before the crossing: the quiet window's share is scraped and judged, nothing fires.
            quiet = prom.wait_for(share, lambda v: v is not None, timeout=60)
            assert quiet < threshold
            seen_at = time.time()
            wait_until("a rule evaluation after the scrape", lambda: (
                rule_state(prom, "RefitFeatureDrift")[1] > seen_at + 1
            ))  # fmt: skip
            assert rule_state(prom, "RefitFeatureDrift")[0] == "inactive"
            assert httpx.get(server.url + "/runs", headers=AUTH, timeout=30).json()["runs"] == []

            # The crossing: a pipeline run's drift step records a drifting window.
            drifted = drift_window(store, windows[DRIFTING], "window-03")
            crossed = time.time()
            assert drifted >= threshold
            marks: dict[str, float] = {}

            def progress() -> list[dict]:
                # Each mark is the time the test first saw the step done.
                if "scraped" not in marks and (prom.query(share) or 0) >= threshold:
                    marks["scraped"] = time.time()
                if "firing" not in marks and rule_state(prom, "RefitFeatureDrift")[0] == "firing":
                    marks["firing"] = time.time()
                if "at alertmanager" not in marks and am.alerts():
                    marks["at alertmanager"] = time.time()
                runs = httpx.get(server.url + "/runs", headers=AUTH, timeout=30).json()["runs"]
                if runs:
                    marks["run seen"] = time.time()
                    marks["run recorded"] = runs[0]["created_at"]  # the service's own clock
                return runs

            (run,) = wait_until(
                "a launched run",
                progress,
                detail=lambda: (
                    f"steps seen: {sorted(marks)}\n--- refit serve-triggers ---\n"
                    f"{server.output()}\n"
                    f"--- alertmanager ---\n{am.log_tail(2000)}"
                ),
            )
            received = am.metric("alertmanager_alerts_received_total", status="firing")
            # Alertmanager keeps receiving the firing alert; it notifies the group once.
            wait_until(
                "three more firing alerts at Alertmanager",
                lambda: (
                    am.metric("alertmanager_alerts_received_total", status="firing") >= received + 3
                ),
            )
            runs = httpx.get(server.url + "/runs", headers=AUTH, timeout=30).json()["runs"]
            notified = am.metric("alertmanager_notifications_total", integration="webhook")
            failed = am.metric("alertmanager_notifications_failed_total", integration="webhook")
            hooks = httpx.get(server.url + "/metrics", timeout=30).text
    finally:
        server.stop()

    assert runs == [run]
    assert (notified, failed) == (1.0, 0.0)
    assert 'refit_hooks_received_total{hook="alertmanager"} 1.0' in hooks
    assert "refit_hooks_rejected_total{" not in hooks  # the bearer token from the file matched
    assert run["model"] == MODEL and run["hook"] == "alertmanager"
    assert run["status"] == "logged"
    assert run["trigger"] == "alert(s) RefitFeatureDrift firing (1)"
    assert run["reasons"] == [f"drift share {drifted:.2f} >= {threshold:.2f}"]  # not "no champion"
    assert run["params"]["model_name"] == MODEL
    assert run["params"]["run_label"].startswith(f"trigger-{MODEL}-")
    assert run["params"]["store_uri"] == str(store)
    timeline = {k: round(v - crossed, 2) for k, v in sorted(marks.items(), key=lambda kv: kv[1])}
    decided = [line for line in hooks.splitlines() if "refit_decision_latency_seconds_sum" in line]
    print(f"\nalert path, seconds after the drifting window was recorded: {timeline}; {decided}")
