"""Prometheus metrics of models, read from refit's store on each scrape.

`ModelMetricsCollector` is a custom ``prometheus_client`` collector: on a scrape it reads each
model's audit log (`refit.governance.history`) and registry aliases, at most once per
``cache_seconds``, and exposes what the Grafana dashboard and the alert rules of
``manifests/base`` query. Every value comes from the store, so a restarted exporter reports the
same counters, and several exporters agree.

A model whose store cannot be read exports ``refit_store_up 0`` and nothing else. The metrics,
and why they are read from the store: docs/decisions/0019-model-metrics-from-the-store.md.

Serve them with `serve_metrics` (``refit report serve-metrics``), or add them to a FastAPI app
with `mount_metrics`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from refit.errors import RefitError
from refit.governance.history import DECISIONS, History, parse_time, read_history
from refit.registry import open_registry

if TYPE_CHECKING:  # pragma: no cover
    from wsgiref.simple_server import WSGIServer

    from fastapi import FastAPI

log = logging.getLogger("refit.monitoring.exporter")

#: Upper bounds (seconds) of the latency histogram: a laptop replay takes seconds, a cluster
#: retrain with a canary rollout hours.
LATENCY_BUCKETS: Final = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    172800.0,
    604800.0,
)
DEFAULT_CACHE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class ModelSnapshot:
    """What one scrape read for one model (the collector's cache entry).

    Attributes:
        model: The model's name.
        history: Its history, or None when the store could not be read.
        live_version: The registry's champion version.
        chain_problems: What ``AuditLog.verify`` found (None when not checked).
        error: Why the store could not be read ("" when it was).
    """

    model: str
    history: History | None
    live_version: int | None = None
    chain_problems: tuple[str, ...] | None = None
    error: str = ""


def read_model(store_uri: str, model: str, *, verify_chain: bool = True) -> ModelSnapshot:
    """Read one model's history, live version and chain check from the store.

    Args:
        store_uri: Root of refit's store.
        model: The model's name.
        verify_chain: Also run ``AuditLog.verify`` (hashes the whole log).

    Returns:
        The snapshot; ``error`` says why the store could not be read (never raises for that).
    """
    try:
        registry = open_registry(store_uri, model)
        history = read_history(registry)
        live = registry.get_alias("champion")
        problems = tuple(registry.audit.verify()) if verify_chain else None
    except (RefitError, OSError, ValueError) as exc:
        log.warning("cannot read model %r from %s: %s", model, store_uri, exc)
        return ModelSnapshot(model=model, history=None, error=str(exc))
    return ModelSnapshot(model=model, history=history, live_version=live, chain_problems=problems)


# The families by name. Each kind's add_metric takes other arguments (a histogram's takes buckets
# and a sum), which the Metric base class does not declare: callers pick the family by name.
_Families = dict[str, Any]


#: key -> (family kind, metric name, help, labels) of every family the collector exposes.
_FAMILY_SPECS: Final = {
    "drift": (
        GaugeMetricFamily,
        "refit_drift_share",
        "Share of features that drifted in the newest window that measured drift.",
        ("model",),
    ),
    "live": (
        GaugeMetricFamily,
        "refit_live_version",
        "Registry version of the live (champion) model.",
        ("model",),
    ),
    "decisions": (
        CounterMetricFamily,
        "refit_decisions",
        "Retraining iterations by decision (retrain, skip, blocked, unknown).",
        ("model", "decision"),
    ),
    "latency": (
        HistogramMetricFamily,
        "refit_retraining_latency_seconds",
        "Retraining latency, trigger to live, of every promoted iteration.",
        ("model",),
    ),
    "last_latency": (
        GaugeMetricFamily,
        "refit_last_retraining_latency_seconds",
        "Retraining latency, trigger to live, of the newest promoted iteration.",
        ("model",),
    ),
    "cost": (
        GaugeMetricFamily,
        "refit_retraining_cost",
        "Training cost of the newest iteration that trained (wall time x price per hour).",
        ("model",),
    ),
    "cost_total": (
        CounterMetricFamily,
        "refit_training_cost",
        "Training cost of all iterations.",
        ("model",),
    ),
    "rollbacks": (
        CounterMetricFamily,
        "refit_rollbacks",
        "Rollbacks recorded in the audit log.",
        ("model",),
    ),
    "champion_metric": (
        GaugeMetricFamily,
        "refit_champion_metric",
        "The live model's metric on the newest window it was scored on.",
        ("model", "metric"),
    ),
    "last_iteration": (
        GaugeMetricFamily,
        "refit_last_iteration_timestamp_seconds",
        "Unix time the newest iteration started.",
        ("model",),
    ),
    "chain": (
        GaugeMetricFamily,
        "refit_audit_chain_intact",
        "1 when the model's audit log verifies, else 0.",
        ("model",),
    ),
    "up": (
        GaugeMetricFamily,
        "refit_store_up",
        "1 when the model's store was read, else 0.",
        ("model",),
    ),
}


def _families() -> _Families:
    """Fresh, empty metric families (also `ModelMetricsCollector.describe`'s answer)."""
    return {
        key: kind(name, documentation, labels=list(labels))
        for key, (kind, name, documentation, labels) in _FAMILY_SPECS.items()
    }


def _latency_buckets(values: Sequence[float]) -> list[tuple[str, float]]:
    out = [
        (floatToGoString(bound), float(sum(v <= bound for v in values)))
        for bound in LATENCY_BUCKETS
    ]
    return [*out, ("+Inf", float(len(values)))]


def add_model(families: _Families, snap: ModelSnapshot) -> None:
    """Add one model's samples to the families (pure: the snapshot holds everything read).

    Args:
        families: From `_families`.
        snap: What was read for the model.
    """
    model = snap.model
    families["up"].add_metric([model], 0.0 if snap.history is None else 1.0)
    history = snap.history
    if history is None:
        return
    if snap.chain_problems is not None:
        families["chain"].add_metric([model], 0.0 if snap.chain_problems else 1.0)
    if snap.live_version is not None:
        families["live"].add_metric([model], float(snap.live_version))
    _add_iterations(families, model, history)
    _add_champion_metric(families, model, history, snap.live_version)


def _add_iterations(families: _Families, model: str, history: History) -> None:
    """Drift, decisions, latency, cost, rollbacks and the newest start, from the iterations."""
    its = history.iterations
    shares = [it.drift_share for it in its if it.drift_share is not None]
    if shares:
        families["drift"].add_metric([model], shares[-1])
    for decision in DECISIONS:
        families["decisions"].add_metric([model, decision], float(history.decisions[decision]))
    latencies = [it.latency_s for it in its if it.latency_s is not None]
    families["latency"].add_metric([model], _latency_buckets(latencies), sum(latencies))
    if latencies:
        families["last_latency"].add_metric([model], latencies[-1])
    costs = [it.cost for it in its if it.cost is not None]
    if costs:
        families["cost"].add_metric([model], costs[-1])
    families["cost_total"].add_metric([model], float(sum(costs)))
    families["rollbacks"].add_metric([model], float(history.rollbacks))
    if its:
        started = parse_time(its[-1].started_at)
        if started is not None and started.tzinfo is not None:
            families["last_iteration"].add_metric([model], started.timestamp())


def _add_champion_metric(
    families: _Families, model: str, history: History, live_version: int | None
) -> None:
    """The newest champion score, when it is the score of the model live now."""
    scored = [
        (it.champion_metric, it.decision_entry.get("champion_version"))
        for it in history.iterations
        if it.champion_metric is not None and it.decision_entry is not None
    ]
    # Only a score of the model live now: after a promotion the old champion's score would keep
    # an accuracy alert firing for a model that is no longer served.
    if scored and scored[-1][1] == live_version:
        (name, value), _ = scored[-1]
        families["champion_metric"].add_metric([model, name], value)


class ModelMetricsCollector(Collector):
    """Exposes refit's model metrics, read from the store at most once per ``cache_seconds``.

    Args:
        store_uri: Root of refit's store (local folder or ``gs://``).
        models: The models to export.
        cache_seconds: How long one read of the store answers scrapes (>= 0).
        verify_chain: Check each audit log's hash chain on every read
            (``refit_audit_chain_intact``).
        clock: Monotonic clock in seconds (tests pass their own).

    Raises:
        RefitError: No model, an invalid model name, or a negative ``cache_seconds``.
    """

    def __init__(
        self,
        store_uri: str,
        models: Sequence[str],
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        verify_chain: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from refit.registry.records import check_model_name

        if isinstance(models, str) or not models:
            raise RefitError(f"models must be a non-empty list of model names, got {models!r}")
        if not isinstance(cache_seconds, int | float) or cache_seconds < 0:
            raise RefitError(f"cache_seconds must be a number >= 0, got {cache_seconds!r}")
        self.store_uri = store_uri
        self.models = [check_model_name(m) for m in models]
        self.cache_seconds = float(cache_seconds)
        self.verify_chain = verify_chain
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[ModelSnapshot] | None = None
        self._read_at = 0.0
        self.reads = 0

    def snapshots(self) -> list[ModelSnapshot]:
        """Return what the store holds for each model (from the cache while it is fresh)."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._read_at >= self.cache_seconds:
                self._cached = [
                    read_model(self.store_uri, m, verify_chain=self.verify_chain)
                    for m in self.models
                ]
                self._read_at = now
                self.reads += 1
            return list(self._cached)

    def describe(self) -> list[Metric]:
        """The metric families, without samples (lets a registry check names without a read)."""
        return list(_families().values())

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families with one sample set per model."""
        families = _families()
        for snap in self.snapshots():
            add_model(families, snap)
        yield from families.values()


def model_metrics_registry(
    store_uri: str,
    models: Sequence[str],
    *,
    cache_seconds: float = DEFAULT_CACHE_SECONDS,
    verify_chain: bool = True,
) -> tuple[CollectorRegistry, ModelMetricsCollector]:
    """Build a dedicated registry holding one `ModelMetricsCollector`.

    Returns:
        The registry and its collector.
    """
    registry = CollectorRegistry()
    collector = ModelMetricsCollector(
        store_uri, models, cache_seconds=cache_seconds, verify_chain=verify_chain
    )
    registry.register(collector)
    return registry, collector


def mount_metrics(app: FastAPI, registry: CollectorRegistry, path: str = "/metrics") -> None:
    """Serve ``registry`` in Prometheus' text format at ``path`` of a FastAPI app.

    The handler is synchronous, so FastAPI runs the store read in its thread pool rather than on
    the event loop.

    Args:
        app: The app.
        registry: E.g. from `model_metrics_registry`.
        path: The route (must not be taken yet, e.g. the trigger service's own ``/metrics``).
    """
    from fastapi.responses import Response

    def metrics() -> Any:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)


def serve_metrics(
    store_uri: str,
    models: Sequence[str],
    port: int,
    *,
    addr: str = "0.0.0.0",
    cache_seconds: float = DEFAULT_CACHE_SECONDS,
    verify_chain: bool = True,
) -> tuple[WSGIServer, threading.Thread, ModelMetricsCollector]:
    """Start an HTTP server (a daemon thread) exposing the models' metrics at ``/metrics``.

    Args:
        store_uri: Root of refit's store.
        models: The models to export.
        port: TCP port (0: any free port; read it from ``server.server_port``).
        addr: Address to listen on.
        cache_seconds: See `ModelMetricsCollector`.
        verify_chain: See `ModelMetricsCollector`.

    Returns:
        The server (``shutdown()`` stops it), its thread and the collector.
    """
    from prometheus_client import start_http_server

    registry, collector = model_metrics_registry(
        store_uri, models, cache_seconds=cache_seconds, verify_chain=verify_chain
    )
    server, thread = start_http_server(port, addr, registry=registry)
    return server, thread, collector


__all__ = [
    "LATENCY_BUCKETS",
    "ModelMetricsCollector",
    "ModelSnapshot",
    "add_model",
    "model_metrics_registry",
    "mount_metrics",
    "read_model",
    "serve_metrics",
]
