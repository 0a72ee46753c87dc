"""The canary checks against a real Prometheus scraping a real exporter on loopback.

A ``prometheus_client`` registry with the local model server's metric names (the "local"
preset's contract) is served on loopback; a thread counts requests for three revisions of model
"churn": v1 (the primary: 1% errors, 20 ms), v2 (a faulty canary: 20% errors, 800 ms) and v3
(a healthy canary, like v1). Prometheus scrapes it every second.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from _prometheus import PrometheusNotInstalled, PrometheusServer, prometheus_binary
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from refit.deploy.analysis import (
    CheckContext,
    ErrorRateCheck,
    LatencyCheck,
    SequentialErrorRateCheck,
    build_checks,
    run_analysis,
)
from refit.deploy.plan import DEFAULT_PLAN, CheckSpec
from refit.deploy.prometheus import PrometheusClient
from refit.errors import DeployError

MODEL = "churn"
WINDOW = 10  # seconds: the analysis window of these tests
#: revision -> (every how many requests one is a 500, observed duration in seconds)
BEHAVIOUR = {"v1": (100, 0.02), "v2": (5, 0.8), "v3": (100, 0.02)}
PER_TICK = 10  # requests per revision every 0.1 s: 100 requests/s each


class Exporter:
    """The local model server's metrics, fed by a traffic thread, served on loopback."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "refit_model_requests",
            "Requests served, by model, revision and HTTP status.",
            ["model", "revision", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "refit_model_request_duration_seconds",
            "Request duration in seconds.",
            ["model", "revision"],
            registry=self.registry,
        )
        self.server, self.server_thread = start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        self.port = self.server.server_port
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._traffic, daemon=True)
        self.thread.start()

    def _traffic(self) -> None:
        counters = {rev: itertools.count(1) for rev in BEHAVIOUR}
        while not self.stop.is_set():
            for rev, (error_every, seconds) in BEHAVIOUR.items():
                for _ in range(PER_TICK):
                    code = "500" if next(counters[rev]) % error_every == 0 else "200"
                    self.requests.labels(MODEL, rev, code).inc()
                    self.duration.labels(MODEL, rev).observe(seconds)
            self.stop.wait(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def prom() -> Iterator[tuple[PrometheusServer, Exporter]]:
    exporter = Exporter()
    try:
        with PrometheusServer([f"127.0.0.1:{exporter.port}"], scrape_interval="1s") as server:
            # rate()/increase() over the window need most of the window scraped.
            server.wait_for(
                f'count_over_time(refit_model_requests_total{{revision="v2",code="200"}}'
                f"[{WINDOW}s])",
                lambda v: v is not None and v >= WINDOW - 2,
                timeout=30,
            )
            yield server, exporter
    finally:
        exporter.close()


def ctx(canary: str, exporter: Exporter, primary: str = "v1") -> CheckContext:
    return CheckContext(
        model=MODEL,
        namespace="",
        primary_revision=primary,
        canary_revision=canary,
        window_seconds=WINDOW,
        step_percent=10,
        elapsed_seconds=time.monotonic() - exporter.started,
    )


ERROR_SPEC = CheckSpec("error-rate", "error_rate", max_value=0.05, max_increase=0.01)
LATENCY_SPEC = CheckSpec("latency-p99", "latency", quantile=0.99, max_value=0.5, max_increase=0.5)
SEQUENTIAL_SPEC = CheckSpec("sequential", "sequential_error_rate")


def test_client_reads_vectors_scalars_and_no_data(prom):
    server, _ = prom
    client = PrometheusClient(server.url)
    assert client.query("sum(up)") == 1.0
    assert client.query("scalar(vector(2.5))") == 2.5
    assert client.query('up{job="no-such-job"}') is None  # empty vector
    assert client.query("vector(0) / 0") is None  # NaN
    # Two series are summed.
    assert client.query('vector(1) or label_replace(vector(2), "x", "y", "", "")') == 3.0


def test_client_reports_bad_query_with_url_and_query(prom):
    server, _ = prom
    client = PrometheusClient(server.url)
    with pytest.raises(DeployError, match=r"HTTP 400.*bad_data") as info:
        client.query("sum(rate(refit_model_requests_total[))")
    assert server.url in str(info.value) and "refit_model_requests_total[" in str(info.value)
    with pytest.raises(DeployError, match="expected an instant vector"):
        client.query("refit_model_requests_total[5s]")


def test_error_rate_check_fails_faulty_canary_and_passes_healthy_one(prom):
    server, exporter = prom
    client = PrometheusClient(server.url)
    check = ErrorRateCheck(ERROR_SPEC, "local")

    faulty = check.evaluate(client, ctx("v2", exporter))
    assert not faulty.passed and not faulty.no_data and not faulty.decisive
    assert 0.15 < faulty.value < 0.25
    assert 0.005 < faulty.primary_value < 0.015
    assert faulty.threshold == pytest.approx(min(0.05, faulty.primary_value + 0.01))
    assert "above the limit" in faulty.detail

    healthy = check.evaluate(client, ctx("v3", exporter))
    assert healthy.passed, healthy.detail
    assert 0.005 < healthy.value < 0.015


def test_latency_check_sees_the_injected_latency(prom):
    server, exporter = prom
    client = PrometheusClient(server.url)
    check = LatencyCheck(LATENCY_SPEC, "local")

    slow = check.evaluate(client, ctx("v2", exporter))
    assert not slow.passed
    # 800 ms observations fall in the (0.75, 1] bucket; histogram_quantile interpolates there.
    assert 0.75 < slow.value <= 1.0
    assert 0.01 < slow.primary_value <= 0.025
    assert slow.threshold == pytest.approx(min(0.5, slow.primary_value * 1.5))

    fast = check.evaluate(client, ctx("v3", exporter))
    assert fast.passed, fast.detail
    assert 0.01 < fast.value <= 0.025


def test_sequential_check_stops_faulty_canary_decisively(prom):
    server, exporter = prom
    client = PrometheusClient(server.url)
    check = SequentialErrorRateCheck(SEQUENTIAL_SPEC, "local")

    faulty = check.evaluate(client, ctx("v2", exporter))
    assert not faulty.passed and faulty.decisive
    assert faulty.extra["decision"] == "worse"
    assert faulty.extra["canary_requests"] >= 100 and faulty.extra["primary_requests"] >= 100

    healthy = check.evaluate(client, ctx("v3", exporter))
    assert healthy.passed and not healthy.decisive
    assert healthy.extra["decision"] in ("not_worse", "continue")


def test_default_plan_analysis_passes_healthy_and_fails_faulty_canary(prom):
    server, exporter = prom
    client = PrometheusClient(server.url)
    checks = build_checks(DEFAULT_PLAN)

    healthy = run_analysis(client, checks, ctx("v3", exporter))
    assert [r.name for r in healthy] == [c.name for c in DEFAULT_PLAN.checks]
    assert all(r.passed for r in healthy), [r.detail for r in healthy]

    faulty = run_analysis(client, checks, ctx("v2", exporter))
    assert not any(r.passed for r in faulty)
    assert any(r.decisive for r in faulty)


def test_canary_without_traffic_is_no_data(prom):
    server, exporter = prom
    client = PrometheusClient(server.url)
    for check in build_checks(DEFAULT_PLAN):
        result = check.evaluate(client, ctx("v9", exporter))
        assert not result.passed and result.no_data and not result.decisive
        assert "no data" in result.detail and "'v9'" in result.detail


def test_unreachable_prometheus_fails_every_check_decisively():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2)
    context = CheckContext(MODEL, "", "v1", "v2", WINDOW, 10, 60.0)
    results = run_analysis(client, build_checks(DEFAULT_PLAN), context)
    assert len(results) == len(DEFAULT_PLAN.checks)
    for result in results:
        assert not result.passed and result.decisive
        assert f"127.0.0.1:{port}" in result.detail and "unreachable" in result.detail


def test_a_server_that_is_not_prometheus_fails_decisively(prom):
    _, exporter = prom
    # The exporter answers any path with its text exposition, not the query API's JSON.
    client = PrometheusClient(f"http://127.0.0.1:{exporter.port}")
    results = run_analysis(client, build_checks(DEFAULT_PLAN), ctx("v2", exporter))
    assert all(not r.passed and r.decisive for r in results)
    assert "not JSON" in results[0].detail


def test_missing_binary_is_a_clear_error(monkeypatch, tmp_path):
    import _prometheus

    monkeypatch.setenv("REFIT_PROMETHEUS", str(tmp_path / "nope"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_prometheus, "DEFAULT_BINARY", str(tmp_path / "also-nope"))
    with pytest.raises(PrometheusNotInstalled, match="apt-get install prometheus"):
        prometheus_binary()
    with pytest.raises(PrometheusNotInstalled):
        PrometheusServer(["127.0.0.1:1"])
