"""Release records, the history behind them and the Prometheus exporter, on a store built by the
real pipeline steps: a first model, a quiet window, a drift retrain that is later rolled back, and a
window blocked by validation."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _pipeline import POLICY
from _store import GATE, RUNS, run_history
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from refit import steps
from refit.deploy import get_target
from refit.errors import RefitError, RegistryError
from refit.governance.history import Entry, build_history, read_history, trigger_kind
from refit.governance.record import RunStatus, release_record, write_release_record
from refit.monitoring.exporter import (
    ModelMetricsCollector,
    model_metrics_registry,
    mount_metrics,
    serve_metrics,
)
from refit.registry import ModelRegistry

MODEL = "credit"
PRICE_PER_HOUR = 3.6


@pytest.fixture(scope="module")
def store(tmp_path_factory, windows) -> Path:
    root = run_history(
        tmp_path_factory.mktemp("release") / "store", windows,
        model=MODEL, policy=POLICY, gate=GATE, price_per_hour=PRICE_PER_HOUR, node_profile="cpu",
    )  # fmt: skip
    # An operator rolls v2 back from the command line: the record carries no run label.
    get_target("local", ModelRegistry(str(root), MODEL)).rollback(reason="canary error rate")
    return root


@pytest.fixture
def registry(store) -> ModelRegistry:
    return ModelRegistry(str(store), MODEL)


@pytest.fixture
def records(registry) -> dict[str, dict]:
    return {r["hash"]: r for r in registry.audit.records()}


def tampered_copy(store: Path, tmp_path: Path) -> Path:
    """A copy of the store whose audit log has window-03's drift share edited."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    log = copy / "models" / MODEL / "audit.jsonl"
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec["event"] == "drift" and rec["payload"]["run_label"] == "window-03":
            rec["payload"]["drift_share"] = 0.01
            lines[i] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n")
    return copy


# --------------------------------------------------------------------------- history


def test_iterations_follow_the_runs_in_log_order(registry) -> None:
    history = read_history(registry)
    assert [it.run_label for it in history.iterations] == list(RUNS.values())
    assert [it.decision for it in history.iterations] == ["retrain", "skip", "retrain", "blocked"]
    assert [it.trigger for it in history.iterations] == ["first model", "none", "drift", "none"]
    assert [it.outcome for it in history.iterations] == [
        "promoted v1",
        "no retrain",
        "v2 rolled back",
        "blocked by validation",
    ]
    assert history.decisions == {"retrain": 2, "skip": 1, "blocked": 1, "unknown": 0}
    assert history.unattached == []


def test_every_field_equals_the_payload_of_the_record_that_backs_it(registry, records) -> None:
    history = read_history(registry)
    for it in history.iterations:
        backing = it.backing
        snap = records[backing["snapshot"][0]]
        assert snap["event"] == "snapshot" and snap["payload"]["run_label"] == it.run_label
        assert (it.snapshot_sha256, it.rows) == (snap["payload"]["sha256"], 800)
        if it.decision == "blocked":
            val = records[backing["reasons"][0]]["payload"]
            assert not val["passed"] and len(it.anomalies) == len(val["anomalies"]) > 0
            assert "drift" not in backing and "training" not in backing
            continue
        drift = records[backing["drift"][0]]["payload"]
        assert it.drift_share == drift["drift_share"]
        assert it.top_drifted == drift["drifted"][:5]
        decision = records[backing["reasons"][0]]["payload"]
        assert (
            it.reasons == decision["reasons"] and (it.decision == "retrain") == decision["retrain"]
        )
        if it.decision == "retrain":
            training = records[backing["training"][0]]["payload"]
            assert it.cost == training["cost"] > 0
            assert training["device"] == "cpu"
            assert training["cost"] == pytest.approx(
                training["wall_time_s"] / 3600 * PRICE_PER_HOUR, abs=1e-6
            )
            evaluation = records[backing["evaluation"][0]]["payload"]
            assert it.blessed is evaluation["blessed"] is True
            registration = records[backing["registration"][0]]["payload"]
            assert it.registered_version == registration["version"]


def test_first_window_has_no_drift_reference(registry) -> None:
    first = read_history(registry).iterations[0]
    assert first.drift_share is None and first.drift is not None
    assert first.champion_metric is None
    window03 = read_history(registry).get("window-03")
    name, value = window03.champion_metric
    assert name == "accuracy" and 0.75 <= value <= 1.0


def test_latency_runs_from_the_first_record_to_the_promotion(registry, records) -> None:
    history = read_history(registry)
    for label, version in (("window-00", 1), ("window-03", 2)):
        it = history.get(label)
        start, promo = (records[h] for h in it.backing["latency"])
        assert start["seq"] == min(e.seq for e in it.entries) and start["event"] == "snapshot"
        assert promo["event"] == "promotion" and promo["payload"]["version"] == version
        expected = (
            datetime.fromisoformat(promo["time"]) - datetime.fromisoformat(start["time"])
        ).total_seconds()
        assert it.latency_s == pytest.approx(expected) and it.latency_s > 0
    assert history.get("window-01").latency_s is None
    assert history.get("window-04").latency_s is None


def test_latency_is_the_runs_own_not_a_later_repromotion(store, tmp_path) -> None:
    # issue 17: after a canary drill re-promoted v2, window-03's latency read the drill's time
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    registry = ModelRegistry(str(copy), MODEL)
    before = read_history(registry).get("window-03")
    steps.promote_model(str(copy), MODEL, 2, run_label="canary-drill")
    after = read_history(registry).get("window-03")
    promotions = after.all("promotion")
    assert len(promotions) == 2 and promotions[-1].payload["run_label"] == "canary-drill"
    assert after.went_live is not None and after.went_live.hash == promotions[0].hash
    assert after.latency_s == before.latency_s and after.live_at == before.live_at
    assert after.backing["latency"][-1] == promotions[0].hash
    assert after.live_version == 2  # the drill did make v2 live again
    record = release_record(registry, "window-03")
    lines = {line.label: line for section in record.sections for line in section.lines}
    assert promotions[0].hash in lines["Retraining latency"].hashes


def test_a_rollback_without_run_label_joins_the_run_that_registered_the_version(
    registry,
) -> None:
    history = read_history(registry)
    window03 = history.get("window-03")
    assert [e.event for e in window03.rollbacks] == ["rollback"]
    assert "run_label" not in window03.rollbacks[0].payload
    assert window03.rollbacks[0].payload["previous"] == 2
    assert history.rollbacks == 1


def test_live_version_replays_promotions_and_rollbacks(registry) -> None:
    history = read_history(registry)
    live = {it.run_label: it.live_version for it in history.iterations}
    # window-04 ended before the rollback was written; window-03's last record is the rollback.
    assert live == {"window-00": 1, "window-01": 1, "window-03": 1, "window-04": 2}
    assert history.live_version == registry.get_alias("champion") == 1


def test_trigger_kinds_follow_the_policy_wording() -> None:
    assert trigger_kind("no champion model: training the first one") == "first model"
    assert trigger_kind("drift share 0.43 >= 0.30") == "drift"
    assert trigger_kind("accuracy < 0.75 for 2 consecutive window(s) (0.70, 0.71)") == (
        "metric decay"
    )
    assert trigger_kind("model age 31.0 days >= 30.0") == "model age"
    assert trigger_kind("new rows 900 >= 0.50 x 1000 training rows = 500") == "data volume"
    assert trigger_kind("something new") == "policy"


def _record(seq: int, event: str, payload: dict, time: str) -> dict:
    return {"seq": seq, "time": time, "event": event, "payload": payload, "hash": f"h{seq}"}


def test_a_launched_trigger_decision_starts_its_runs_latency() -> None:
    t = "2026-03-01T00:00:{:02d}+00:00"
    launched = {"hook": "alertmanager", "launched": True, "run_id": 7, "trigger": "drift alert"}
    run, reasons = {"run_label": "trigger-7"}, ["drift share 0.5 >= 0.3"]
    history = build_history(
        [
            _record(1, "trigger_decision", launched, t.format(0)),
            _record(2, "trigger_decision", {"hook": "generic", "launched": False}, t.format(1)),
            _record(3, "snapshot", {**run, "sha256": "a" * 64, "rows": 5}, t.format(10)),
            _record(4, "decision", {**run, "retrain": True, "reasons": reasons}, t.format(11)),
            _record(5, "promotion", {**run, "version": 1}, t.format(40)),
        ]
    )
    (it,) = history.iterations
    assert it.trigger == "alertmanager hook: drift"
    assert it.latency_s == 40.0 and it.backing["latency"] == ["h1", "h5"]
    assert [e.hash for e in history.unattached] == ["h2"]


def test_unknown_events_and_missing_fields_do_not_break_the_history() -> None:
    history = build_history(
        [
            {"seq": 1, "event": "snapshot", "payload": {"run_label": "r"}},
            {"seq": 2, "event": "quantum_check", "payload": {"run_label": "r", "x": [1]}},
            {"seq": 3, "event": "decision", "payload": {"run_label": "r", "reasons": "oops"}},
            {"seq": 4, "event": "promotion", "payload": {"version": 9}},
        ]
    )
    (it,) = history.iterations
    assert it.events == ["snapshot", "quantum_check", "decision"]
    assert (it.decision, it.reasons, it.rows, it.latency_s) == ("skip", [], None, None)
    assert [e.seq for e in history.unattached] == [4] and history.live_version == 9
    assert Entry.from_record({}).seq == 0


# --------------------------------------------------------------------------- release record


def test_release_record_cites_the_audit_records_behind_each_line(registry, records) -> None:
    record = release_record(registry, "window-03")
    assert record.chain_ok and record.chain_problems == []
    assert record.chain_line.startswith("audit chain verified: ")
    assert record.head_hash == list(records)[-1]
    assert record.hashes() <= set(records)
    by_event = {}
    for section in record.sections:
        for line in section.lines:
            for h in line.hashes:
                by_event.setdefault(records[h]["event"], []).append(line)
    training = {line.label: line.value for line in by_event["training"]}
    expected_cost = next(
        r["payload"]["cost"]
        for r in records.values()
        if r["event"] == "training" and r["payload"]["run_label"] == "window-03"
    )
    assert training["Cost"] == f"{expected_cost:.6f}" and training["Device"] == "cpu"
    assert json.loads(training["Parameters"]) == {"max_depth": 3, "n_estimators": 30}
    drift = {line.label: line.value for line in by_event["drift"]}
    assert drift["Drifted features"] == "income, credit_score, channel"
    assert {line.label for line in by_event["rollback"]} == {"Rolled back"}
    assert "v2 → v1: canary error rate" in [line.value for line in by_event["rollback"]]
    latency = record.section("Registration and rollout").lines[-1]
    assert latency.label == "Retraining latency" and len(latency.hashes) == 2


def test_sections_of_steps_that_did_not_run_say_so(registry) -> None:
    blocked = release_record(registry, "window-04")
    assert blocked.outcome == "blocked by validation"
    assert not blocked.section("Training").ran
    assert blocked.section("Training").note == "not run: the window was blocked by validation"
    anomalies = [line.value for line in blocked.section("Validation and drift").lines]
    assert anomalies[0] == "failed, 2 anomalies"
    assert any("creditScore" in a for a in anomalies)
    quiet = release_record(registry, "window-01")
    assert quiet.section("Evaluation").note == "not run: no retrain"
    promoted = release_record(registry, "window-03")
    assert promoted.section("Fairness and serving checks").note == "not run"
    assert promoted.section("Approval").note == "not requested"
    assert not promoted.section("Fairness and serving checks").ran
    assert "Other records" not in [s.title for s in promoted.sections]


def test_markdown_has_every_section_line_and_hash(registry) -> None:
    record = release_record(registry, "window-03")
    md = record.to_markdown()
    assert md.startswith("# Release record: credit, run window-03\n")
    assert f"**{record.chain_line[0].upper()}{record.chain_line[1:]}**" in md
    for section in record.sections:
        assert f"\n## {section.title}\n" in md
        for line in section.lines:
            for h in line.hashes:
                assert f"`{h}`" in md
    assert "\n_not requested_\n" in md


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[tuple[str, dict]] = []
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta",):
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.stack:
            tag, attrs = self.stack[-1]
            key = f"{tag}.{attrs.get('class', '')}"
            self.text.setdefault(key, []).append(data)


def parse(html_text: str) -> _Page:
    page = _Page()
    page.feed(html_text)
    page.close()
    return page


def test_html_is_self_contained_and_cites_real_hashes(registry, records) -> None:
    record = release_record(registry, "window-03")
    page = parse(record.to_html())
    tags = [t for t, _ in page.tags]
    assert not {"script", "link", "img", "iframe", "object"} & set(tags)
    assert not any(("src" in a or "href" in a) for _, a in page.tags)
    assert [s.title for s in record.sections] == page.text["h2."]
    cited = page.text["code.hash"]
    assert set(cited) == record.hashes() and set(cited) <= set(records)
    assert page.text["p.chain ok"] == [record.chain_line[0].upper() + record.chain_line[1:]]
    assert "not requested" in page.text["p.not-run"]


def test_tampering_with_the_log_makes_the_chain_line_say_broken(store, tmp_path) -> None:
    copy = tampered_copy(store, tmp_path)
    record = release_record(ModelRegistry(str(copy), MODEL), "window-03")
    assert not record.chain_ok
    assert record.chain_line.startswith("audit chain BROKEN: 1 problem")
    assert any("hash mismatch" in p for p in record.chain_problems)
    assert "Audit chain BROKEN" in record.to_markdown()
    page = parse(record.to_html())
    assert page.text["p.chain broken"][0].startswith("Audit chain BROKEN")
    assert "p.chain ok" not in page.text


def test_a_garbage_line_is_skipped_and_reported(store, tmp_path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    log = copy / "models" / MODEL / "audit.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(2, "not json at all")
    log.write_text("\n".join(lines) + "\n")
    registry = ModelRegistry(str(copy), MODEL)
    history = read_history(registry)
    assert [it.run_label for it in history.iterations] == list(RUNS.values())
    assert any("line 3 skipped" in p for p in history.problems)
    record = release_record(registry, "window-00")
    assert not record.chain_ok
    assert any("line 3" in p and "garbage" in p for p in record.chain_problems)


def test_write_release_record_writes_markdown_and_html(store, tmp_path) -> None:
    md, page = tmp_path / "out" / "record.md", tmp_path / "out" / "record.html"
    record = write_release_record(str(store), MODEL, "window-00", str(md), str(page))
    assert md.read_text() == record.to_markdown()
    assert page.read_text() == record.to_html()
    assert record.outcome == "promoted v1"
    first_run = record.section("Evaluation").lines[0].value
    assert first_run.startswith("blessed (first model")


def test_an_unknown_run_label_is_an_error_naming_it(registry) -> None:
    with pytest.raises(RegistryError, match=r"run_label 'nope' has no records .*window-04"):
        release_record(registry, "nope")


def synthetic_store(tmp_path: Path) -> ModelRegistry:
    """Records of the events other steps write (approval, canary, fairness, serving), appended as
    those steps append them, plus an event no step writes yet."""
    reg = ModelRegistry(str(tmp_path / "synthetic"), "m")
    run = {"run_label": "r1"}
    a = reg.audit.append
    a("snapshot", {**run, "sha256": "b" * 64, "rows": 100, "source": "x.parquet"})
    a("anonymization", {**run, "dropped": ["name"], "tokenized": ["email"]})
    a("validation", {**run, "passed": True, "anomalies": [], "rows": 100})
    a("drift", {**run, "drift_share": 0.5, "drifted": ["a", "b"]})
    a("decision", {**run, "retrain": True, "reasons": ["drift share 0.50 >= 0.30"]})
    a("training", {**run, "trainer": "xgboost", "params": {}, "device": "cuda",
                   "wall_time_s": 7200.0, "cost": 5.0, "sha256": "c" * 64, "train_rows": 75,
                   "node_profile": "gpu-spot"})  # fmt: skip
    a("evaluation", {
        **run, "blessed": True, "first_run": False, "champion_version": 1,
        "reasons": ["accuracy 0.900 >= 0.700", "serving: p99 4.1 ms <= 5.0 ms"],
        "challenger": {"accuracy": 0.9, "n_rows": 25.0}, "champion": {"accuracy": 0.8},
        "intervals": {"challenger": {"accuracy": {"value": 0.9, "low": 0.8, "high": 0.95,
                                                  "method": "wilson", "confidence": 0.95}}},
        "paired": {"accuracy": {"value": 0.1, "low": 0.01, "high": 0.2}},
        "tests": {"mcnemar": 0.01, "delong": "DeLong's test is for binary labels only"},
        "fairness": {"attribute": "sex", "demographic_parity_difference": {"challenger": 0.02}},
        "serving": {"p99_ms": {"challenger": 4.1, "champion": 4.0}},
        "checks": [{"metric": "p99_latency", "kind": "serving", "passed": True,
                    "detail": "p99 4.1 ms within 10% of 4.0 ms"}],
    })  # fmt: skip
    a("registration", {**run, "model": "m", "version": 2, "sha256": "c" * 64,
                       "parent_version": 1, "metrics": {}})  # fmt: skip
    a("approval_requested", {**run, "model": "m", "version": 2, "expires_at": "2026-03-04",
                             "approvers": ["ana"]})  # fmt: skip
    # Approved later from the command line, under another label: joined by version.
    a("approval", {"run_label": "approval", "model": "m", "version": 2, "by": "ana",
                   "reason": "<script>alert(1)</script> looks fine", "at": "2026-03-02",
                   "timed_out": False, "via": "cli"})  # fmt: skip
    a("canary_started", {**run, "model": "m", "version": 2, "previous": 1, "target": "local",
                         "steps": [10, 50, 100]})  # fmt: skip
    a("canary_step", {**run, "model": "m", "version": 2, "percent": 10, "split": {}})
    a("canary_check", {**run, "model": "m", "version": 2, "percent": 10, "name": "error_rate",
                       "passed": True, "value": 0.01, "primary_value": 0.012,
                       "threshold": 0.05, "detail": "sprt: accept"})  # fmt: skip
    a("promotion", {**run, "model": "m", "version": 2, "previous": 1, "reason": "canary passed"})
    a("teleport", {**run, "where": "mars"})
    return reg


def test_new_and_unknown_events_are_rendered(tmp_path) -> None:
    reg = synthetic_store(tmp_path)
    record = release_record(reg, "r1")
    values = {s.title: [f"{ln.label}: {ln.value}" for ln in s.lines] for s in record.sections}
    assert "Anonymization: dropped=name; tokenized=email" in values["Data"]
    assert "Cost: 5.000000" in values["Training"] and "Wall time: 2.0 h" in values["Training"]
    assert "Node profile: gpu-spot" in values["Training"]
    assert (
        "accuracy: challenger 0.9 [0.8, 0.95] (95% wilson) · champion 0.8 · "
        "difference 0.1 [0.01, 0.2]" in values["Evaluation"]
    )
    assert "Test: mcnemar: p = 0.01" in values["Evaluation"]
    assert "Test: delong: not run: DeLong's test is for binary labels only" in values["Evaluation"]
    assert not any(v.startswith("Intervals") for v in values["Evaluation"])
    assert "Gate reason: accuracy 0.900 >= 0.700" in values["Evaluation"]
    assert not any("serving" in v for v in values["Evaluation"])
    assert values["Fairness and serving checks"] == [
        "Fairness: attribute: sex",
        "Fairness: demographic_parity_difference.challenger: 0.02",
        "Serving: p99_ms.challenger: 4.1",
        "Serving: p99_ms.champion: 4",
        "Gate verdict: serving: p99 4.1 ms <= 5.0 ms",
        "Check: p99_latency: passed: p99 4.1 ms within 10% of 4.0 ms",
    ]
    assert values["Approval"][0] == "Approval requested: v2, expires 2026-03-04; approvers: ana"
    assert values["Approval"][1].startswith("Approved: v2 by ana at 2026-03-02: <script>")
    assert values["Approval"][1].endswith("(via=cli)")
    rollout = values["Registration and rollout"]
    assert "Canary started: v2 on target local, steps 10% → 50% → 100%, primary v1" in rollout
    assert "Canary step: 10% of traffic to the canary" in rollout
    assert (
        "Check at 10%: error_rate passed (value 0.01, primary value 0.012, threshold 0.05) — "
        "sprt: accept" in rollout
    )
    assert values["Other records"] == ["teleport: where=mars"]
    assert record.iteration.outcome == "promoted v2"
    html_text = record.to_html()
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "script" not in [t for t, _ in parse(html_text).tags]


# --------------------------------------------------------------------------- exporter


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_exporter_reports_the_store(store, registry) -> None:
    prom, collector = model_metrics_registry(str(store), [MODEL])
    values = scrape(prom)
    m = (("model", MODEL),)
    history = read_history(registry)
    window03 = history.get("window-03")
    assert values[("refit_drift_share", m)] == pytest.approx(window03.drift_share)
    assert values[("refit_live_version", m)] == 1
    for decision, n in {"retrain": 2, "skip": 1, "blocked": 1, "unknown": 0}.items():
        key = ("refit_decisions_total", (("decision", decision), ("model", MODEL)))
        assert values[key] == n
    latencies = [it.latency_s for it in history.iterations if it.latency_s is not None]
    assert len(latencies) == 2
    assert values[("refit_retraining_latency_seconds_count", m)] == 2
    assert values[("refit_retraining_latency_seconds_sum", m)] == pytest.approx(sum(latencies))
    inf = ("refit_retraining_latency_seconds_bucket", (("le", "+Inf"), ("model", MODEL)))
    assert values[inf] == 2
    assert values[("refit_last_retraining_latency_seconds", m)] == pytest.approx(latencies[-1])
    assert values[("refit_retraining_cost", m)] == pytest.approx(window03.cost)
    total = sum(it.cost for it in history.iterations if it.cost is not None)
    assert values[("refit_training_cost_total", m)] == pytest.approx(total)
    assert values[("refit_rollbacks_total", m)] == 1
    metric = (("metric", "accuracy"), ("model", MODEL))
    assert values[("refit_champion_metric", metric)] == pytest.approx(window03.champion_metric[1])
    assert values[("refit_audit_chain_intact", m)] == 1
    assert values[("refit_store_up", m)] == 1
    assert collector.reads == 1


def test_exporter_caches_reads_for_cache_seconds(tmp_path) -> None:
    reg = synthetic_store(tmp_path)
    now = [100.0]
    collector = ModelMetricsCollector(reg.store_uri, ["m"], cache_seconds=5, clock=lambda: now[0])
    prom = CollectorRegistry()
    prom.register(collector)
    assert collector.reads == 0  # registering reads nothing
    m = (("model", "m"),)
    assert scrape(prom)[("refit_rollbacks_total", m)] == 0
    reg.audit.append("rollback", {"run_label": "r1", "version": 1, "previous": 2})
    now[0] = 104.9
    assert scrape(prom)[("refit_rollbacks_total", m)] == 0
    now[0] = 105.0
    values = scrape(prom)
    assert values[("refit_rollbacks_total", m)] == 1
    # The champion's metric is only exported for the version live now (none was scored here).
    assert not any(k[0] == "refit_champion_metric" for k in values)
    assert collector.reads == 2


def test_exporter_flags_a_broken_chain_and_an_unreadable_store(store, tmp_path) -> None:
    copy = tampered_copy(store, tmp_path)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    prom, _ = model_metrics_registry(str(copy), [MODEL])
    assert scrape(prom)[("refit_audit_chain_intact", (("model", MODEL),))] == 0
    prom, _ = model_metrics_registry(str(not_a_dir), [MODEL])
    values = scrape(prom)
    assert values == {("refit_store_up", (("model", MODEL),)): 0.0}


def test_exporter_rejects_bad_arguments(store) -> None:
    with pytest.raises(RefitError, match="models must be a non-empty list"):
        ModelMetricsCollector(str(store), [])
    with pytest.raises(RefitError, match="model_name 'a b' is invalid"):
        ModelMetricsCollector(str(store), ["a b"])
    with pytest.raises(RefitError, match="cache_seconds must be a number >= 0"):
        ModelMetricsCollector(str(store), [MODEL], cache_seconds=-1)


def test_serve_metrics_answers_over_http(store) -> None:
    server, thread, _ = serve_metrics(str(store), [MODEL], 0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert 'refit_live_version{model="credit"} 1.0' in body


def test_mount_metrics_on_a_fastapi_app(store) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    prom, _ = model_metrics_registry(str(store), [MODEL])
    mount_metrics(app, prom, path="/model-metrics")
    response = TestClient(app).get("/model-metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'refit_rollbacks_total{model="credit"} 1.0' in response.text


def test_dashboard_and_alert_queries_are_exported(store) -> None:
    """Every refit_* series the Grafana dashboard and the alert rules query is exported by this
    exporter or by the trigger service."""
    from refit.triggers.service import Metrics

    root = Path(__file__).resolve().parents[2] / "manifests" / "base"
    queried = set()
    for name in ("grafana-dashboard.json", "prometheusrule.yaml"):
        text = (root / name).read_text()
        exprs = re.findall(r'"expr":\s*"([^"]+)"', text) + re.findall(r"expr:\s*(.+)", text)
        for expr in exprs:
            queried |= set(re.findall(r"\b(refit_[a-z_]+)\b", expr))
    trigger = set()
    for family in Metrics().registry.collect():
        trigger |= {s.name for s in family.samples} | {family.name}
    prom, _ = model_metrics_registry(str(store), [MODEL])
    exported = {key[0] for key in scrape(prom)}
    missing = queried - exported - trigger
    for name in list(missing):  # counters and histograms of the trigger service, never sampled
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        if base in trigger or base + "_total" in trigger:
            missing.discard(name)
    assert queried and not missing, f"queried but not exported: {sorted(missing)}"


def test_a_real_evaluation_shows_metrics_with_intervals_and_tests(registry) -> None:
    # window-03 was evaluated against a champion by the real evaluate step: its audit record
    # carries the intervals and paired differences the record prints.
    record = release_record(registry, "window-03")
    lines = {line.label: line.value for line in record.section("Evaluation").lines}
    assert "Intervals" not in lines
    assert re.search(r"challenger 0\.\d+ \[0\.\d+, 0\.\d+\]", lines["accuracy"]), lines
    assert "difference" in lines["accuracy"]
    assert any(label.startswith("Test: ") for label in lines)


def _partial_run(tmp_path: Path, events: list[str]) -> ModelRegistry:
    reg = ModelRegistry(str(tmp_path / "partial"), "m")
    payloads = {
        "snapshot": {"sha256": "b" * 64, "rows": 10},
        "anonymization": {},
        "validation": {"passed": True, "anomalies": []},
        "drift": {"drift_share": 0.5},
        "decision": {"retrain": True, "reasons": ["drift share 0.50 >= 0.30"]},
        "training": {"trainer": "xgboost"},
    }
    for event in events:
        reg.audit.append(event, {"run_label": "r", **payloads[event]})
    return reg


def test_a_failed_run_names_the_first_step_without_a_record(tmp_path) -> None:
    reg = _partial_run(tmp_path, ["snapshot", "anonymization", "validation", "drift", "decision"])
    status = RunStatus("failed", task="exit-handler-1", error="Task exit-handler-1 failed.")
    record = release_record(reg, "r", status)
    assert record.sections[0].title == "Run status"
    lines = {ln.label: ln for ln in record.section("Run status").lines}
    assert lines["KFP state"].value == "FAILED (task exit-handler-1)"
    assert lines["Failed task"].value == "train-model"
    decision = reg.audit.records()[-1]
    assert lines["Failed task"].hashes == (decision["hash"],)
    assert lines["Error"].value == "Task exit-handler-1 failed."
    assert record.outcome == "failed in train-model (after: retrain: no training recorded)"
    assert "## Run status" in record.to_markdown()
    assert "<h2>Run status</h2>" in record.to_html()
    assert record.to_dict()["status"] == {
        "state": "FAILED",
        "task": "exit-handler-1",
        "error": "Task exit-handler-1 failed.",
    }


def test_a_succeeded_status_adds_nothing_and_a_skip_blames_no_later_step(tmp_path) -> None:
    reg = _partial_run(tmp_path, ["snapshot", "validation", "drift"])
    reg.audit.append("decision", {"run_label": "r", "retrain": False, "reasons": ["quiet"]})
    plain = release_record(reg, "r")
    ok = release_record(reg, "r", RunStatus("SUCCEEDED", task="exit-handler-1"))
    assert [s.title for s in ok.sections] == [s.title for s in plain.sections]
    assert ok.outcome == plain.outcome == "no retrain"
    failed = release_record(reg, "r", RunStatus("CANCELLED"))
    assert failed.section("Run status").lines[1].value == "a task after decide-retrain"
    assert failed.outcome.startswith("cancelled in a task after decide-retrain")


def test_a_run_without_records_gets_a_record_only_when_it_failed(tmp_path) -> None:
    reg = _partial_run(tmp_path, [])
    with pytest.raises(RegistryError, match="has no records"):
        release_record(reg, "r", RunStatus("SUCCEEDED"))
    record = release_record(reg, "r", RunStatus("FAILED", error="x" * 5000))
    lines = {ln.label: ln.value for ln in record.section("Run status").lines}
    assert lines["Failed task"] == "start-run or snapshot-data"
    assert lines["Error"].endswith("…(cut)") and len(lines["Error"]) < 2100
    assert all(not s.ran for s in record.sections[1:-1])
    assert record.chain_ok


def test_a_run_status_needs_a_state() -> None:
    with pytest.raises(RegistryError, match="state must be a non-empty string"):
        RunStatus("  ")
