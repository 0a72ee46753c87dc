"""A real Alertmanager on loopback for the e2e tests.

``AlertmanagerServer(config)`` writes ``config`` (an Alertmanager configuration as a dict),
starts Debian's ``prometheus-alertmanager`` (``./dev`` installs it; ``REFIT_ALERTMANAGER`` names
another binary) on a free 127.0.0.1 port with clustering off and a throwaway storage folder, and
waits for ``/-/ready``. Use it as a context manager, or call ``close()``.

``webhook(...)`` builds the body Alertmanager posts to a webhook receiver (v4), for the tests
and benchmarks that post alerts to the trigger service themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from _servers import BinaryServer, find_binary

DEFAULT_BINARY = "/usr/bin/prometheus-alertmanager"


def webhook(
    model: str,
    group_key: str,
    fingerprints: Iterable[str] = ("f1",),
    *,
    annotations: Mapping[str, str] | None = None,
    status: str = "firing",
    alertname: str = "DriftHigh",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body: one alert of group ``group_key`` per fingerprint.

    Args:
        model: The ``model`` label of each alert (and the group's common label).
        group_key: The group's key (the trigger service dedupes on it and the fingerprints).
        fingerprints: One alert per fingerprint.
        annotations: Each alert's annotations (``drift_share``, ``metric_value``...).
        status: ``firing`` or ``resolved``, for the group and each alert.
        alertname: Each alert's ``alertname`` label (and the group label).
        labels: More labels of each alert.

    Returns:
        The body as a dict; change a field of it for a case this does not build.
    """
    alert_labels = {"alertname": alertname, "model": model, **(labels or {})}
    return {
        "version": "4",
        "groupKey": group_key,
        "status": status,
        "receiver": "refit",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"model": model},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": dict(alert_labels),
                "annotations": dict(annotations or {}),
                "startsAt": "2026-11-26T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": fingerprint,
            }
            for fingerprint in fingerprints
        ],
    }


class AlertmanagerNotInstalled(RuntimeError):
    """The Alertmanager binary is missing."""


def alertmanager_binary() -> str:
    """The Alertmanager binary: ``$REFIT_ALERTMANAGER``, on PATH, or Debian's.

    Raises:
        AlertmanagerNotInstalled: None of them exists.
    """
    candidates = [
        os.environ.get("REFIT_ALERTMANAGER"),
        shutil.which("prometheus-alertmanager"),
        shutil.which("alertmanager"),
        DEFAULT_BINARY,
    ]
    found = find_binary(candidates)
    if found:
        return found
    raise AlertmanagerNotInstalled(
        "the Alertmanager binary is not installed (looked at $REFIT_ALERTMANAGER, "
        f"`prometheus-alertmanager` and `alertmanager` on PATH and {DEFAULT_BINARY}); install "
        "Debian's package with `sudo apt-get install prometheus-alertmanager` (./dev does)"
    )


class AlertmanagerServer(BinaryServer):
    """Alertmanager with ``config`` on a free 127.0.0.1 port.

    Raises:
        AlertmanagerNotInstalled: The binary is missing.
        RuntimeError: It exited or did not become ready (the message holds its log).
    """

    name = "Alertmanager"

    def __init__(self, config: dict[str, Any], start_timeout: float = 30.0) -> None:
        super().__init__(alertmanager_binary(), "refit-alertmanager-")
        self.launch(config, start_timeout)

    def options(self) -> list[str]:
        """A throwaway storage, no gossip (one instance, loopback only)."""
        return [
            f"--storage.path={self.dir / 'data'}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]

    @property
    def address(self) -> str:
        """``host:port``, as Prometheus' ``alerting`` section names it."""
        return f"127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds (``GET /api/v2/alerts``)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return json.loads(response.read())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of one of its own metrics' samples with these labels (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total
