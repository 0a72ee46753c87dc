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
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml
from _servers import BinaryServer, find_binary

DEFAULT_BINARY = "/usr/bin/prometheus"


class PrometheusNotInstalled(RuntimeError):
    """The Prometheus binary is missing."""


def prometheus_binary() -> str:
    """The Prometheus binary to run: ``$REFIT_PROMETHEUS``, ``prometheus`` on PATH, or Debian's.

    Raises:
        PrometheusNotInstalled: None of them exists.
    """
    candidates = [os.environ.get("REFIT_PROMETHEUS"), shutil.which("prometheus"), DEFAULT_BINARY]
    found = find_binary(candidates)
    if found:
        return found
    raise PrometheusNotInstalled(
        "the Prometheus server binary is not installed (looked at $REFIT_PROMETHEUS, "
        f"`prometheus` on PATH and {DEFAULT_BINARY}); install Debian's package with "
        "`sudo apt-get install prometheus` (./dev and CI do) or set REFIT_PROMETHEUS"
    )


class PrometheusServer(BinaryServer):
    """Prometheus scraping ``targets`` on a free 127.0.0.1 port.

    Args:
        targets: ``host:port`` of each exporter to scrape (``/metrics``).
        scrape_interval: Prometheus duration between scrapes.
        start_timeout: Seconds to wait for ``/-/ready``.

    Raises:
        PrometheusNotInstalled: The binary is missing.
        RuntimeError: Prometheus exited or did not become ready (the message holds its log).
    """

    name = "Prometheus"

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
        super().__init__(prometheus_binary(), "refit-prometheus-")
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.extra_args = tuple(extra_args)
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
        self.launch(config, start_timeout)

    def options(self) -> list[str]:
        """A throwaway TSDB, and the extra arguments."""
        return [
            f"--storage.tsdb.path={self.dir / 'data'}",
            "--log.level=info",
            *self.extra_args,
        ]

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
