"""The local canary target: traffic split through the registry, served by ``refit serve-model``.

The local model server (:mod:`refit.serving`) serves the registry's ``champion`` and reads the
registry state ``canary`` (``{"version": V, "percent": P}``) to send P% of the requests to V.
This target writes that state; when ``server_url`` is given it also waits until the server
reports the new split in its ``refit_model_traffic_percent`` gauge, so a step counts as applied
only once the server routes by it.

Two more stages drive the same state (`refit.serving.routing`): `LocalCanaryTarget.shadow`
(``{"shadow": V}``: the server answers copies with V, returns nothing of it) and
`LocalCanaryTarget.start_experiment` (``{"experiment": {"salt": S}}``: the canary's share is
assigned by the salted hash of the request id). With a ``server_url`` both wait until the
server's model metadata (``refit.traffic``) shows them (a shadow: until its process has loaded
the version, ``shadow_ready``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from refit.deploy.target import TrafficSplit
from refit.errors import DeployError, RefitError
from refit.registry import ModelRegistry, ModelVersion

#: Registry state key the local model server reads the canary split from.
CANARY_STATE = "canary"


def revision_label(version: int | None) -> str:
    """Return the metrics label of a served version (``"v3"``), "" for None."""
    return "" if version is None else f"v{version}"


class LocalCanaryTarget:
    """Split traffic between the champion and a canary on the local model server.

    Args:
        registry: The model's registry (the server reads the same store).
        server_url: Base URL of a running ``refit serve-model`` (e.g. ``http://127.0.0.1:8080``);
            empty: do not wait for a server to pick up the split.
        wait_seconds: How long to wait for the server to report a split.
        sleep: Sleep function (injectable for tests).
    """

    name = "local"

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        server_url: str = "",
        wait_seconds: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.server_url = server_url.rstrip("/")
        self.wait_seconds = wait_seconds
        self._sleep = sleep
        self._primary: int | None = None
        self._canary: int | None = None

    def preflight(self, version: ModelVersion, previous: ModelVersion | None) -> None:
        """Check that the version loads and, when configured, that the server answers.

        Raises:
            DeployError: The model cannot be loaded, or the server is unreachable.
        """
        try:
            self.registry.load_model(version.version)
        except RefitError as exc:
            raise DeployError(
                f"model {self.registry.model_name!r} version {version.version} cannot be "
                f"served locally: {exc}"
            ) from exc
        if self.server_url:
            try:
                with urllib.request.urlopen(f"{self.server_url}/v2/health/live", timeout=5):
                    pass
            except (urllib.error.URLError, OSError) as exc:
                raise DeployError(
                    f"local model server {self.server_url!r} is not reachable: {exc}; start it "
                    f"with `refit serve-model --store ... --model {self.registry.model_name}`"
                ) from exc

    def _apply(
        self, canary: int | None, percent: int, expect: dict | None = None, **stage: Any
    ) -> TrafficSplit:
        self.registry.write_state(CANARY_STATE, {"version": canary, "percent": percent, **stage})
        if self.server_url and stage:
            self._wait_for_stage({**stage, **(expect or {})})
        elif self.server_url and canary is not None:
            self._wait_for(canary, percent)
        return TrafficSplit(
            primary_version=self._primary,
            canary_version=canary,
            canary_percent=percent if canary is not None else 0,
            primary_revision=revision_label(self._primary),
            canary_revision=revision_label(canary),
        )

    def _wait_for(self, canary: int, percent: int) -> None:
        want = (
            f'refit_model_traffic_percent{{model="{self.registry.model_name}",'
            f'revision="{revision_label(canary)}"}}'
        )
        deadline = time.monotonic() + self.wait_seconds
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.server_url}/metrics", timeout=5) as resp:
                    text = resp.read().decode("utf-8", "replace")
                for line in text.splitlines():
                    if line.startswith(want):
                        last = line
                        if float(line.rsplit(" ", 1)[1]) == float(percent):
                            return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            self._sleep(0.2)
        raise DeployError(
            f"local model server {self.server_url!r} did not apply {percent}% to "
            f"{revision_label(canary)} within {self.wait_seconds:g} s (last: {last})"
        )

    def _wait_for_stage(self, stage: dict[str, Any]) -> None:
        url = f"{self.server_url}/v2/models/{self.registry.model_name}"
        # A shadow starts a process and loads a model: give it longer than a split change.
        wait = max(self.wait_seconds, 120.0) if "shadow" in stage else self.wait_seconds
        deadline = time.monotonic() + wait
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    traffic = json.load(resp)["refit"]["traffic"]
                last = json.dumps({k: traffic.get(k) for k in stage})
                if all(traffic.get(k) == v for k, v in stage.items()):
                    return
            except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
                last = str(exc)
            self._sleep(0.2)
        raise DeployError(
            f"local model server {self.server_url!r} did not apply {json.dumps(stage)} within "
            f"{wait:g} s (last: {last})"
        )

    def shadow(self, version: ModelVersion, previous: ModelVersion) -> TrafficSplit:
        """Mirror copies of the champion's requests to ``version``; no traffic moves."""
        self._primary, self._canary = previous.version, version.version
        split = self._apply(None, 0, expect={"shadow_ready": True}, shadow=version.version)
        return TrafficSplit(
            self._primary,
            version.version,
            0,
            split.primary_revision,
            revision_label(version.version),
        )

    def start_experiment(self, percent: int, salt: str) -> TrafficSplit:
        """Hold ``percent`` of the units on the canary, assigned by their salted id hash."""
        if self._canary is None:
            raise DeployError("start_experiment called before start on the local target")
        return self._apply(self._canary, percent, experiment={"salt": salt})

    def start(
        self, version: ModelVersion, previous: ModelVersion | None, percent: int
    ) -> TrafficSplit:
        """Send ``percent`` of the requests to ``version``."""
        self._primary = None if previous is None else previous.version
        self._canary = version.version
        if previous is None:
            return self._apply(None, 0)
        return self._apply(version.version, percent)

    def set_traffic(self, percent: int) -> TrafficSplit:
        """Change the canary's share."""
        if self._canary is None:
            raise DeployError("set_traffic called before start on the local target")
        return self._apply(self._canary, percent)

    def promote(self) -> TrafficSplit:
        """Send everything to the canary; the controller then moves the champion alias."""
        if self._canary is None:
            raise DeployError("promote called before start on the local target")
        if self._primary is None:
            self._primary = self._canary
            return self._apply(None, 0)
        self._apply(self._canary, 100)
        self._primary, self._canary = self._canary, None
        return TrafficSplit(self._primary, None, 0, revision_label(self._primary), "")

    def rollback(self) -> TrafficSplit:
        """Send everything back to the champion."""
        self._canary = None
        return self._apply(None, 0)
