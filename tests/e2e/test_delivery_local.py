"""Shadow -> canary -> A/B on one machine: `refit serve-model`, a real Prometheus scraping it,
a load generator that sends V2 requests with ids and feedback events, and the rollout step.

- a shadow whose predictions disagree with the champion's is stopped before any traffic moves;
- a shadow that agrees passes, the canary step passes, and an A/B test with a planted uplift in
  the feedback (the challenger's units convert more often) is promoted;
- an A/B test with no uplift ends as the plan declares (rolled back here);
- the champion's latency with and without a shadow is measured and printed (not asserted:
  no timed asserts), for the record.
"""

import random
import threading
import time

import httpx
import numpy as np
import pyarrow as pa
import pytest
from _canary import local_rollout, register_trained, reset_canary, run_drill, scraped_under_load
from _models import flip_labels
from _servers import ModelServeProcess
from _v2 import infer_inputs

from refit.registry import ModelRegistry

NAME = "credit"
FEEDBACK_TOKEN = "drill-feedback-secret-0123"


@pytest.fixture(scope="module")
def store(windows, tmp_path_factory) -> ModelRegistry:
    """v1 champion; v2 trained on the next window (agrees); v3 trained on flipped labels."""
    root = tmp_path_factory.mktemp("delivery")
    reg = ModelRegistry(str(root / "store"), NAME)
    flipped = flip_labels(windows[0])
    return register_trained(reg, root, [windows[0], windows[1], flipped], parent=1)


class Load:
    """Requests with ids from real rows; for each answer, a feedback event by the served arm.

    ``rates`` maps a served version to its conversion rate (the planted business outcome);
    versions not named convert at ``base_rate``. Seeded per unit id.
    """

    def __init__(self, url: str, rows: pa.Table) -> None:
        self.url = url
        self.bodies = []
        for i in range(rows.num_rows):
            self.bodies.append(infer_inputs(rows.slice(i, 1)))
        self.rates: dict[str, float] = {}
        self.base_rate = 0.10
        self.served: list[tuple[str, str, float]] = []  # (phase, version, seconds)
        self.phase = "warmup"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.unit = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                self.unit += 1
                uid = f"u-{self.unit}"
                body = {"id": uid, "inputs": self.bodies[self.unit % len(self.bodies)]}
                t0 = time.perf_counter()
                r = client.post(f"/v2/models/{NAME}/infer", json=body)
                seconds = time.perf_counter() - t0
                if r.status_code != 200:
                    continue
                version = r.json()["model_version"]
                self.served.append((self.phase, version, seconds))
                rate = self.rates.get(version, self.base_rate)
                value = 1 if random.Random(f"{uid}-{version}").random() < rate else 0
                client.post(
                    f"/v2/models/{NAME}/feedback",
                    json={"id": uid, "value": value},
                    headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"},
                )
                time.sleep(0.002)


@pytest.fixture(scope="module")
def stack(store, windows, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
    server = ModelServeProcess(
        store.store_uri,
        NAME,
        "--seed",
        "5",
        "--feedback-file",
        str(feedback),
        env={"REFIT_FEEDBACK_TOKEN": FEEDBACK_TOKEN},
    )
    load = Load(server.url, windows[3].slice(0, 200))

    def stop_load() -> None:
        load.stop.set()
        load.thread.join(10)

    with scraped_under_load(server, NAME, load.thread.start, stop_load) as prom:
        yield server, prom, load, feedback


def plan(prom_url: str, feedback, **ab) -> dict:
    return {
        "steps": [20, 100],
        "interval_seconds": 4,
        "failures_allowed": 0,
        "deadline_seconds": 150,
        "prometheus_url": prom_url,
        "query_preset": "local",
        "checks": [
            {"name": "errors", "kind": "error_rate", "max_value": 0.05},
            {"name": "p99", "kind": "latency", "quantile": 0.99, "max_value": 2.0},
        ],
        "shadow": {
            "analyses": 2,
            "min_pairs": 40,
            "max_disagreement": 0.2,
            "max_score_shift": 0.2,
            "max_latency_ratio": 5.0,
        },
        "ab_test": {
            "metric": "proportion",
            "baseline_rate": 0.10,
            "mde": 0.10,
            "percent": 50,
            "feedback_path": str(feedback),
            **ab,
        },
    }


def rollout(reg: ModelRegistry, server, version: int, plan_dict: dict, label: str = ""):
    run_label = label or f"delivery-v{version}"
    return local_rollout(reg, server, version, plan_dict, run_label, check_parent=False)


def _served_since(load: Load, mark: int) -> set[str]:
    return {v for _, v, _ in load.served[mark:]}


def test_a_disagreeing_shadow_is_stopped_before_any_traffic_moves(store, stack):
    server, prom, load, feedback = stack
    reset_canary(store)
    mark = len(load.served)
    result = rollout(store, server, 3, plan(prom.url, feedback))
    assert result.outcome == "rolled_back", result.to_markdown()
    assert [s.stage for s in result.steps] == ["shadow"] and result.steps[0].outcome == "failed"
    assert result.reason.startswith("shadow stage failed early, at analysis 1")
    failed = {c["name"] for c in result.steps[0].analyses[-1] if not c["passed"]}
    assert "shadow-disagreement" in failed
    # No user was ever answered by v3, and it never had the canary alias's traffic.
    assert _served_since(load, mark) == {"1"}
    assert store.get(3).status == "rolled_back" and store.get_alias("champion") == 1
    assert not store.audit.records("canary_step")[-1]["payload"]["percent"]


def test_an_agreeing_shadow_then_canary_then_planted_uplift_is_promoted(store, stack):
    server, prom, load, feedback = stack
    reset_canary(store)
    load.rates = {"2": 0.35}  # the challenger's units convert at 35% against 10%
    load.phase = "run"
    try:
        result = rollout(store, server, 2, plan(prom.url, feedback, method="fixed"))
    finally:
        load.rates = {}
    md = result.to_markdown()
    assert result.outcome == "promoted", md
    assert [s.stage for s in result.steps] == ["shadow", "canary", "ab_test", "canary"], md
    shadow = {c["name"]: c for c in result.steps[0].analyses[-1]}
    assert all(c["passed"] for c in shadow.values()), md
    assert shadow["shadow-disagreement"]["value"] <= 0.2
    ab = result.ab_test
    assert ab is not None and ab["decision"] == "promote"
    assert ab["test"]["effect"] > 0 and ab["test"]["ci_low"] > 0 and ab["test"]["p_value"] < 0.05
    arms, planned = ab["arms"], ab["planned"]
    assert arms["control"]["n"] >= planned["control"]
    assert arms["treatment"]["n"] >= planned["treatment"]
    print(
        f"\nA/B planted uplift: planned {planned['control']}+{planned['treatment']} units, "
        f"observed {arms['control']['n']}+{arms['treatment']['n']}; effect "
        f"{ab['test']['effect']:+.3f} [{ab['test']['ci_low']:+.3f}, {ab['test']['ci_high']:+.3f}]"
    )
    assert store.get_alias("champion") == 2
    rec = store.audit.records("ab_test")[-1]["payload"]
    assert rec["decision"] == "promote" and rec["test"]["ci_low"] > 0


def test_no_uplift_ends_as_declared_and_the_release_record_says_why(store, stack):
    server, prom, load, feedback = stack
    reset_canary(store)
    result = rollout(
        store,
        server,
        2,
        plan(prom.url, feedback, method="sequential", alpha=0.01, on_inconclusive="rollback"),
        label="delivery-no-uplift",
    )
    md = result.to_markdown()
    assert result.outcome == "rolled_back", md
    ab = store.audit.records("ab_test")[-1]["payload"]
    assert ab["decision"] == "rollback" and "inconclusive at the planned units" in ab["reason"]
    assert ab["test"]["ci_low"] < 0 < ab["test"]["ci_high"]
    planned, arms = ab["planned"], ab["arms"]
    print(
        f"\nA/B no uplift (sequential): planned {planned['control']}+{planned['treatment']}, "
        f"observed {arms['control']['n']}+{arms['treatment']['n']}; effect "
        f"{ab['test']['effect']:+.3f} [{ab['test']['ci_low']:+.3f}, {ab['test']['ci_high']:+.3f}]"
    )
    assert store.get_alias("champion") == 1 and store.get(2).status == "rolled_back"
    from refit.governance.record import release_record

    # A/B records are version-scoped: they belong to the run that registered version 2.
    text = release_record(store, run_label=store.get(2).run_label).to_markdown()
    assert "A/B result" in text and "rollback: effect" in text


def test_the_shadow_costs_the_champion_little_latency(store, stack):
    """Measure the champion's latency with and without a shadow (printed, not asserted).

    The phases alternate three times so that a change in the machine's load hits both.
    """
    server, _, load, _ = stack
    reset_canary(store)
    time.sleep(1.0)
    for _ in range(3):
        load.phase = "no-shadow"
        time.sleep(5.0)
        load.phase = "switch"
        store.write_state("canary", {"version": None, "percent": 0, "shadow": 2})
        time.sleep(1.0)
        load.phase = "shadow"
        time.sleep(5.0)
        load.phase = "switch"
        reset_canary(store)
        time.sleep(1.0)
    load.phase = "after"
    lat = {
        phase: np.array([s for p, v, s in load.served if p == phase and v == "1"])
        for phase in ("no-shadow", "shadow")
    }
    assert all(len(v) > 50 for v in lat.values())
    for phase, v in lat.items():
        print(
            f"\nchampion latency {phase}: n={len(v)} p50={np.percentile(v, 50) * 1000:.2f} ms "
            f"p99={np.percentile(v, 99) * 1000:.2f} ms"
        )
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'refit_model_shadow_pairs_total{model="credit",revision="v2"}' in metrics


def test_the_delivery_drill_script_stops_a_shadow_then_promotes_by_ab(windows, tmp_path):
    """scripts/delivery-drill.sh, as the README tells a new user to run it after the demo."""
    reg, first, second = run_drill("delivery-drill.sh", windows, tmp_path, timeout=400)
    assert "Canary rollout of credit-default v2: **rolled back**" in first
    assert "shadow stage failed early" in first
    assert "Canary rollout of credit-default v2: promoted" in second, second
    assert "| A/B 50 |" in second
    assert reg.aliases()["champion"] == 2
    ab = reg.audit.records("ab_test")[-1]["payload"]
    assert ab["decision"] == "promote" and ab["test"]["test"] == "msprt"
