"""Prometheus metrics of the local model server, per model and revision.

The names and labels are a contract with the rollout checks (their default queries read them);
do not rename them:

- ``refit_model_requests_total{model, revision, code}``: infer requests answered, by revision
  (``v{version}``; ``none`` when nothing could serve) and HTTP status code (``"200"``, ``"400"``,
  ``"500"``, ``"503"``...);
- ``refit_model_request_duration_seconds{model, revision}``: histogram of infer request
  durations, injected latency included, buckets from 1 ms to 10 s;
- ``refit_model_traffic_percent{model, revision}``: each revision's share of unpinned traffic
  (0 for a revision that served before and no longer does).

Requests naming another model, or a version the registry lacks, are not counted (their labels
would be whatever a client sends).

A client's mistakes (bad JSON, a wrong shape, a request over the limits) are counted with their
4xx code on the revision they were routed to; only ``code=~"5.."`` counts as an error in the
canary checks (`refit.deploy.analysis`), so bad requests never fail a healthy canary.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "DURATION_BUCKETS",
    "NO_REVISION",
    "REQUESTS",
    "REQUEST_DURATION",
    "TRAFFIC_PERCENT",
    "ServingMetrics",
]

REQUESTS = "refit_model_requests_total"
REQUEST_DURATION = "refit_model_request_duration_seconds"
TRAFFIC_PERCENT = "refit_model_traffic_percent"
#: The revision label of requests that no version could serve (no champion yet).
NO_REVISION = "none"
#: Histogram buckets, in seconds: 1 ms to 10 s.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServingMetrics:
    """The server's metrics, in their own `CollectorRegistry` (never the global one).

    Args:
        model_name: The ``model`` label of every sample.
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            REQUESTS.removesuffix("_total"),
            "Infer requests answered, by model revision and HTTP status code.",
            ("model", "revision", "code"),
            registry=self.registry,
        )
        self.duration = Histogram(
            REQUEST_DURATION,
            "Infer request duration in seconds, by model revision.",
            ("model", "revision"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.traffic = Gauge(
            TRAFFIC_PERCENT,
            "Percent of unpinned infer requests routed to each model revision.",
            ("model", "revision"),
            registry=self.registry,
        )
        self._traffic_revisions: set[str] = set()

    def observe(self, revision: str, code: int, seconds: float) -> None:
        """Count one answered infer request and its duration."""
        self.requests.labels(self.model_name, revision, str(code)).inc()
        self.duration.labels(self.model_name, revision).observe(seconds)

    def set_traffic(self, split: Mapping[str, float]) -> None:
        """Set each revision's traffic share; revisions that left the split drop to 0."""
        for rev in self._traffic_revisions - set(split):
            self.traffic.labels(self.model_name, rev).set(0.0)
        for rev, percent in split.items():
            self.traffic.labels(self.model_name, rev).set(float(percent))
        self._traffic_revisions |= set(split)

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)
