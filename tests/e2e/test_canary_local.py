"""The whole canary path on one machine: `refit serve-model`, a real Prometheus scraping it, a
load generator, and the rollout step moving traffic, analysing, promoting or rolling back."""

import json
import threading
import time

import httpx
import pytest
from _canary import local_rollout, register_trained, reset_canary, run_drill, scraped_under_load
from _servers import ModelServeProcess
from _v2 import infer_inputs
from typer.testing import CliRunner

from refit.cli import app
from refit.deploy.plan import RolloutPlan
from refit.registry import ModelRegistry

NAME = "credit"


@pytest.fixture(scope="module")
def store(windows, tmp_path_factory) -> ModelRegistry:
    """v1 (champion), v2 (healthy challenger), v3 (challenger the server is told to break)."""
    root = tmp_path_factory.mktemp("canary")
    reg = ModelRegistry(str(root / "store"), NAME)
    return register_trained(reg, root, windows[0:3], parent=1)


@pytest.fixture(scope="module")
def stack(store, windows):
    """The model server (v3 answers 500 half the time), Prometheus scraping it, and load."""
    server = ModelServeProcess(store.store_uri, NAME, "--seed", "3", "--fault", "3:error_rate=0.5")
    body = {"inputs": infer_inputs(windows[3].slice(0, 1))}
    stop = threading.Event()
    codes: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                codes.append(client.post(f"/v2/models/{NAME}/infer", json=body).status_code)
                time.sleep(0.01)

    thread = threading.Thread(target=load, daemon=True)

    def stop_load() -> None:
        stop.set()
        thread.join(10)

    with scraped_under_load(server, NAME, thread.start, stop_load) as prom:
        yield server, prom, codes


def plan(prom_url: str, interval: float = 6) -> str:
    return RolloutPlan.from_dict(
        {
            "steps": [20, 50, 100],
            "interval_seconds": interval,
            "failures_allowed": 0,
            "deadline_seconds": 120,
            "prometheus_url": prom_url,
            "query_preset": "local",
            "checks": [
                {"name": "errors", "kind": "error_rate", "max_value": 0.05, "max_increase": 0.02},
                {"name": "p99", "kind": "latency", "quantile": 0.99, "max_value": 2.0},
                {"name": "errors-sprt", "kind": "sequential_error_rate", "min_requests": 30},
            ],
        }
    ).to_dict()


def rollout(reg: ModelRegistry, server, version: int, plan_dict: dict):
    return local_rollout(reg, server, version, plan_dict, f"canary-v{version}")


def test_healthy_canary_is_promoted_through_the_cli(store, stack, tmp_path):
    server, prom, _ = stack
    reset_canary(store)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan("http://unused")))
    args = ["rollout", "2", "--store", store.store_uri, "--model", NAME, "--plan", str(plan_file)]
    args += ["--prometheus-url", prom.url, "--options", json.dumps({"server_url": server.url})]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "Canary rollout of credit v2: promoted" in out.output
    rows = [line for line in out.output.splitlines() if line.startswith("| ") and "| yes |" in line]
    assert len(rows) == 6  # 3 checks at 20% and at 50%, all passed
    assert store.aliases() == {"champion": 2, "previous": 1}
    # Every check went to the audit log, and the chain is intact.
    assert len(store.audit.records("canary_check")) >= 6 and not store.audit.verify()
    # The server now sends every request to v2.
    time.sleep(1.0)
    r = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=_body_from_metadata(server))
    assert r.status_code == 200 and r.json()["model_version"] == "2"
    # A second rollout of the same version is refused before any traffic moves.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already the champion" in again.output


def test_faulty_canary_is_rolled_back_within_one_interval(store, stack):
    server, prom, codes = stack
    reset_canary(store)
    before = len(store.audit.records("canary_check"))
    result = rollout(store, server, 3, plan(prom.url))
    assert result.outcome == "rolled_back", result.to_markdown()
    # Stopped at the first step, by the first analysis: one interval of 20% canary traffic.
    assert len(result.steps) == 1 and result.steps[0].percent == 20
    assert len(result.steps[0].analyses) == 1 and result.steps[0].outcome == "failed"
    failed = {c["name"] for c in result.steps[0].analyses[0] if not c["passed"]}
    assert "errors" in failed
    assert store.aliases() == {"champion": 1}
    assert store.get(3).status == "rolled_back" and store.get(1).status == "champion"
    assert len(store.audit.records("canary_check")) == before + 3
    rb = store.audit.records("rollback")[-1]["payload"]
    assert (rb["version"], rb["previous"]) == (1, 3)
    # After the rollback, the canary gets nothing: no more 500s from the load generator.
    time.sleep(1.5)
    mark = len(codes)
    time.sleep(2.0)
    assert codes[mark:] and set(codes[mark:]) == {200}


def test_unreachable_prometheus_rolls_back_not_promotes(store, stack):
    server, _, _ = stack
    reset_canary(store)
    result = rollout(store, server, 2, plan("http://127.0.0.1:1", interval=1))
    assert result.outcome == "rolled_back"
    assert "decisive failure at 20%" in result.reason and "127.0.0.1:1" in result.reason
    assert store.get_alias("champion") == 1 and store.get(2).status == "rolled_back"


def _body_from_metadata(server) -> dict:
    meta = httpx.get(f"{server.url}/v2/models/{NAME}").json()
    inputs = []
    for t in meta["inputs"]:
        value = "north" if t["datatype"] == "BYTES" else 0.5
        inputs.append({"name": t["name"], "shape": [1], "datatype": t["datatype"], "data": [value]})
    return {"inputs": inputs}


def test_the_component_rolls_back_a_faulty_canary_under_kfp_local(store, stack, kfp_local):
    from refit.components import canary_rollout

    server, prom, _ = stack
    reset_canary(store)
    task = canary_rollout(
        store_uri=store.store_uri,
        model_name=NAME,
        version=3,
        plan=plan(prom.url),
        deploy_target="local",
        options={"server_url": server.url},
        run_label="kfp-canary",
    )
    assert task.outputs["live_version"] == 1  # the champion stays live
    with open(task.outputs["timeline"].path, encoding="utf-8") as f:
        timeline = f.read()
    assert "Canary rollout of credit v3: **rolled back**" in timeline
    assert "| 1 | 20 | 1 | errors | **no** |" in timeline
    assert task.outputs["metrics"].metadata["rolled_back"] == 1.0
    assert store.get(3).status == "rolled_back" and store.get_alias("champion") == 1
    assert store.audit.records("rollback")[-1]["payload"]["run_label"] == "kfp-canary"


def test_the_canary_drill_script_rolls_back_then_promotes(windows, tmp_path):
    """scripts/canary-drill.sh, as the README tells a new user to run it after the demo."""
    reg, first, second = run_drill("canary-drill.sh", windows, tmp_path, timeout=240)
    assert "Canary rollout of credit-default v2: **rolled back**" in first
    assert "Canary rollout of credit-default v2: promoted" in second
    assert reg.aliases()["champion"] == 2
    rollbacks = reg.audit.records("rollback")
    assert len(rollbacks) == 1 and rollbacks[0]["payload"]["previous"] == 2
