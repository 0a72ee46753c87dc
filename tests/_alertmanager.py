"""A real Alertmanager on loopback for the e2e tests.

``AlertmanagerServer(config)`` writes ``config`` (an Alertmanager configuration as a dict),
starts Debian's ``prometheus-alertmanager`` (``./dev`` installs it; ``REFIT_ALERTMANAGER`` names
another binary) on a free 127.0.0.1 port with clustering off and a throwaway storage folder, and
waits for ``/-/ready``. Use it as a context manager, or call ``close()``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

DEFAULT_BINARY = "/usr/bin/prometheus-alertmanager"


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
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise AlertmanagerNotInstalled(
        "the Alertmanager binary is not installed (looked at $REFIT_ALERTMANAGER, "
        f"`prometheus-alertmanager` and `alertmanager` on PATH and {DEFAULT_BINARY}); install "
        "Debian's package with `sudo apt-get install prometheus-alertmanager` (./dev does)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AlertmanagerServer:
    """Alertmanager with ``config`` on a free 127.0.0.1 port.

    Raises:
        AlertmanagerNotInstalled: The binary is missing.
        RuntimeError: It exited or did not become ready (the message holds its log).
    """

    def __init__(self, config: dict[str, Any], start_timeout: float = 30.0) -> None:
        self.binary = alertmanager_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="refit-alertmanager-"))
        self.config = self.dir / "alertmanager.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        try:
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        last_error = ""
        for _attempt in range(3):  # a free port can be taken before the bind: try a few
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config}",
                        f"--storage.path={self.dir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--cluster.listen-address=",  # no gossip: one instance, loopback only
                        "--log.level=debug",
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
                if self.proc.poll() is None:
                    raise
        raise RuntimeError(last_error)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Alertmanager exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Alertmanager was not ready after {timeout} s:\n{self.log_tail()}")

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

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

    def log_tail(self, chars: int = 3000) -> str:
        """The end of Alertmanager's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop Alertmanager and remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> AlertmanagerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
