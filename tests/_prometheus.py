"""A real Prometheus server on loopback for the e2e tests.

``PrometheusServer(targets)`` writes a config that scrapes ``targets`` (``host:port`` strings)
every ``scrape_interval`` (optionally evaluating ``rule_groups`` and sending alerts to
``alertmanagers``), starts the Prometheus binary (Debian's ``prometheus`` package: CI
installs it; ``REFIT_PROMETHEUS`` names another binary) on a free loopback port with a
throwaway TSDB, and waits for ``/-/ready``. Use it as a context manager, or call ``close()``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

DEFAULT_BINARY = "/usr/bin/prometheus"


class PrometheusNotInstalled(RuntimeError):
    """The Prometheus binary is missing."""


def prometheus_binary() -> str:
    """The Prometheus binary to run: ``$REFIT_PROMETHEUS``, ``prometheus`` on PATH, or Debian's.

    Raises:
        PrometheusNotInstalled: None of them exists.
    """
    candidates = [os.environ.get("REFIT_PROMETHEUS"), shutil.which("prometheus"), DEFAULT_BINARY]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise PrometheusNotInstalled(
        "the Prometheus server binary is not installed (looked at $REFIT_PROMETHEUS, "
        f"`prometheus` on PATH and {DEFAULT_BINARY}); install Debian's package with "
        "`sudo apt-get install prometheus` (./dev and CI do) or set REFIT_PROMETHEUS"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusServer:
    """Prometheus scraping ``targets`` on a free 127.0.0.1 port.

    Args:
        targets: ``host:port`` of each exporter to scrape (``/metrics``).
        scrape_interval: Prometheus duration between scrapes.
        start_timeout: Seconds to wait for ``/-/ready``.

    Raises:
        PrometheusNotInstalled: The binary is missing.
        RuntimeError: Prometheus exited or did not become ready (the message holds its log).
    """

    def __init__(
        self,
        targets: list[str],
        scrape_interval: str = "1s",
        start_timeout: float = 30.0,
        *,
        job_name: str = "refit-test",
        metrics_path: str = "/metrics",
        rule_groups: list[dict[str, Any]] | None = None,
        alertmanagers: list[str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = prometheus_binary()
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.extra_args = tuple(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix="refit-prometheus-"))
        self.config = self.dir / "prometheus.yml"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": job_name,
                    "metrics_path": metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        if rule_groups:
            rules = self.dir / "rules.yml"
            rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
            config["rule_files"] = [str(rules)]
        if alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]
            }
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        try:
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        # A free port can be taken between the check and the bind: try a few.
        last_error = ""
        for _attempt in range(3):
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config}",
                        f"--storage.tsdb.path={self.dir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=info",
                        *self.extra_args,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                self._wait_ready(timeout)
                return
            except RuntimeError as exc:
                last_error = str(exc)
                if self.proc.poll() is None:  # running but not ready: not a port clash
                    raise
        raise RuntimeError(last_error)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Prometheus exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Prometheus was not ready after {timeout} s:\n{self.log_tail()}")

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of Prometheus' log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def query(self, promql: str) -> float | None:
        """An instant query, summed over the series; None when the answer is empty or NaN."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            payload = json.loads(response.read())
        if payload.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {payload}")
        values = [float(r["value"][1]) for r in payload["data"]["result"]]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) if values else None

    def targets_health(self) -> list[dict[str, Any]]:
        """The active targets' scrape URL, health and last error."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            payload = json.loads(response.read())
        return [
            {k: t.get(k) for k in ("scrapeUrl", "health", "lastError")}
            for t in payload["data"]["activeTargets"]
        ]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[float | None], bool] = lambda v: v is not None,
        timeout: float = 30.0,
        poll: float = 0.25,
    ) -> float | None:
        """Poll ``promql`` until ``predicate(value)`` holds, and return that value.

        Raises:
            TimeoutError: It did not hold within ``timeout`` seconds (the message holds the
                last value, the targets' health and the log's end).
        """
        deadline = time.monotonic() + timeout
        value: float | None = None
        while True:
            value = self.query(promql)
            if predicate(value):
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{promql!r} did not reach the expected value within {timeout} s "
                    f"(last value {value!r}); targets: {self.targets_health()}\n"
                    f"{self.log_tail(1500)}"
                )
            time.sleep(poll)

    def close(self) -> None:
        """Stop Prometheus and remove its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
