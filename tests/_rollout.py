"""A scripted stand-in for the rollout controller's world: a two-version registry, a recording
deploy target, a fake clock and scripted analyses (tests/unit/test_rollout*.py)."""

from dataclasses import asdict, dataclass
from pathlib import Path

from _models import register_skops_versions

from refit.deploy.local import LocalTarget
from refit.deploy.target import TrafficSplit
from refit.errors import DeployError
from refit.registry import ModelRegistry


def two_version_registry(tmp_path: Path) -> ModelRegistry:
    """Registry ``churn`` with v1 (the champion) and v2 (its child), skops model files."""
    reg = ModelRegistry(str(tmp_path / "store"), "churn")
    register_skops_versions(reg, tmp_path, 2, chain=True, rising=False)
    LocalTarget(reg).promote(1, reason="first")
    return reg


@dataclass
class Result:
    name: str
    passed: bool
    decisive: bool = False
    detail: str = "ok"
    value: float | None = 0.0

    def to_dict(self):
        return asdict(self)


class FakeTarget:
    """Records what the controller asks for; can fail on a given call."""

    name = "fake"

    def __init__(self, fail_on: str = "", fail_preflight: bool = False, apply_seconds=0.0):
        self.calls: list[tuple] = []
        self.apply_seconds = apply_seconds  # how long applying a step takes (a slow rollout)
        self.clock = None
        self.fail_on = fail_on
        self.fail_preflight = fail_preflight
        self.percent = 0

    def _maybe_fail(self, what):
        if self.fail_on == what:
            raise DeployError(f"API said no to {what}")

    def preflight(self, version, previous):
        self.calls.append(("preflight", version.version, previous and previous.version))
        if self.fail_preflight:
            raise DeployError("model format 'onnx' cannot be served")

    def start(self, version, previous, percent):
        self.calls.append(("start", version.version, percent))
        self._maybe_fail("start")
        self.percent = percent
        return TrafficSplit(previous and previous.version, version.version, percent, "p", "c")

    def set_traffic(self, percent):
        self.calls.append(("set_traffic", percent))
        self._maybe_fail("set_traffic")
        self.clock.t += self.apply_seconds
        self.percent = percent
        return TrafficSplit(1, 2, percent, "p", "c")

    def promote(self):
        self.calls.append(("promote",))
        self._maybe_fail("promote")
        return TrafficSplit(2, None, 0, "c", "")

    def rollback(self):
        self.calls.append(("rollback",))
        self._maybe_fail("rollback")
        return TrafficSplit(1, None, 0, "p", "")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def scripted(*analyses):
    """An analyzer returning the given analyses in order (then passing ones)."""
    queue = list(analyses)
    seen = []

    def analyze(split, elapsed, percent, window):
        seen.append((percent, elapsed, window, split.canary_revision))
        return queue.pop(0) if queue else [Result("error_rate", True)]

    analyze.seen = seen
    return analyze
