"""``refit serve-model`` as a real process on loopback, driven over real HTTP with httpx."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from _models import register_models, serving_models
from _servers import ModelServeProcess as _ModelServeProcess
from _v2 import infer_inputs
from prometheus_client.parser import text_string_to_metric_families

from refit.registry import ModelRegistry

NAME = "credit"


def ModelServeProcess(store: str, *extra: str) -> _ModelServeProcess:
    return _ModelServeProcess(store, NAME, *extra)


@pytest.fixture(scope="module")
def store(windows, tmp_path_factory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("serve")
    reg = ModelRegistry(str(root / "store"), NAME)
    return register_models(reg, root, serving_models(windows, 15), snapshot_sha256="0" * 64)


@pytest.fixture
def reg(store) -> ModelRegistry:
    store.update_aliases({"champion": None})
    store.write_state("canary", {"version": None})
    return store


def one_row(windows) -> dict:
    return {"inputs": infer_inputs(windows[3].slice(0, 1))}


def metrics(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(m: dict, revision: str, code: str) -> float:
    labels = (("code", code), ("model", NAME), ("revision", revision))
    return m.get(("refit_model_requests_total", labels), 0.0)


def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


def test_split_faults_and_metrics_over_real_http(reg, windows):
    reg.set_alias("champion", 1)
    reg.write_state("canary", {"version": 2, "percent": 30})
    server = ModelServeProcess(reg.store_uri, "--seed", "1", "--fault", "2:error_rate=0.2")
    try:
        client = server.client
        assert client.get("/v2/health/ready").json() == {"ready": True}
        meta = client.get(f"/v2/models/{NAME}").json()
        assert meta["refit"]["traffic"]["split"] == {"v1": 70.0, "v2": 30.0}

        body = one_row(windows)
        outcomes: Counter = Counter()
        for _ in range(300):
            r = client.post(f"/v2/models/{NAME}/infer", json=body)
            if r.status_code == 200:
                outcomes[(r.json()["model_version"], 200)] += 1
            else:
                assert r.status_code == 500, r.text
                assert "injected fault" in r.json()["error"] and "version 2" in r.json()["error"]
                outcomes[("2", 500)] += 1
        canary = outcomes[("2", 200)] + outcomes[("2", 500)]
        # Binomial(300, 0.3): mean 90, sd 7.9; +-4 sd
        assert 58 <= canary <= 122, outcomes
        assert outcomes[("2", 500)] > 0 and outcomes[("1", 200)] > 0

        m = metrics(client)
        assert count(m, "v1", "200") == outcomes[("1", 200)]
        assert count(m, "v2", "200") == outcomes[("2", 200)]
        assert count(m, "v2", "500") == outcomes[("2", 500)]
        assert count(m, "v1", "500") == 0
        hist = ("refit_model_request_duration_seconds_count", (("model", NAME), ("revision", "v2")))
        assert m[hist] == canary
        gauge = ("refit_model_traffic_percent", (("model", NAME), ("revision", "v2")))
        assert m[gauge] == 30.0

        # the rollout controller moves the canary to 100 %: the server follows without restart
        reg.write_state("canary", {"version": 2, "percent": 100})
        wait_until(lambda: metrics(client).get(gauge) == 100.0)
        served = {client.post(f"/v2/models/{NAME}/infer", json=body).status_code for _ in range(20)}
        assert count(metrics(client), "v1", "200") == outcomes[("1", 200)]  # no more v1
        assert served <= {200, 500}

        pinned = client.post(f"/v2/models/{NAME}/versions/1/infer", json=body)
        assert (pinned.status_code, pinned.json()["model_version"]) == (200, "1")
    finally:
        server.stop()
    assert server.proc.returncode is not None


def test_no_champion_then_a_promotion(reg, windows):
    server = ModelServeProcess(reg.store_uri)
    try:
        client = server.client
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get(f"/v2/models/{NAME}/ready")
        assert ready.status_code == 503 and "has no champion" in ready.json()["error"]
        r = client.post(f"/v2/models/{NAME}/infer", json=one_row(windows))
        assert r.status_code == 503 and "nothing to serve yet" in r.json()["error"]
        assert server.proc.poll() is None  # still serving

        reg.set_alias("champion", 2)
        wait_until(lambda: client.get("/v2/health/ready").status_code == 200)
        r = client.post(f"/v2/models/{NAME}/infer", json=one_row(windows))
        assert (r.status_code, r.json()["model_version"]) == (200, "2")
        m = metrics(client)
        assert count(m, "none", "503") == 1 and count(m, "v2", "200") == 1
    finally:
        server.stop()
