"""Serving latency check (TFX InfraValidator's idea): load models as served, time real requests.

Challenger and champion are loaded the way the server loads them
(:func:`refit.training.artifacts.load_model`: sha256 verified, pickles refused, skops types on
the allowlist), then answer the same sample requests built from holdout rows in the KServe V2
(Open Inference Protocol) JSON form: one tensor per feature column, ``batch_size`` rows each.
Every request goes through the whole in-process serving path, timed with
:func:`time.perf_counter`: JSON decode -> table -> ``predict_proba`` (``predict`` for a
regressor) -> JSON encode. Warm-up requests are sent first and not counted. Requests alternate
between the two models (challenger, champion, champion, challenger, ...), so whatever else loads
the machine weighs on both alike. The result holds p50/p99/mean latency, single-worker
throughput (requests and rows per second), load time, and errors (count and the first one).

A model that fails to load or fails a request is recorded, not raised: the gate blocks on it
with the error named.
"""

from __future__ import annotations

import gc
import json
import math
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError, PolicyError
from refit.training.artifacts import load_model
from refit.training.trainers import TrainedModel

__all__ = [
    "ModelSource",
    "ServingConfig",
    "ServingReport",
    "ServingStats",
    "build_requests",
    "serving_check",
]

#: A model folder (loaded with :func:`refit.training.artifacts.load_model`) or a function that
#: loads the model the way it is served (e.g. ``lambda: registry.load_model(version)``).
ModelSource = str | os.PathLike[str] | Callable[[], TrainedModel]


def _positive_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(
            f"gate field 'serving.{what}' must be an integer >= {minimum}, got {value!r}"
        )
    return value


def _non_negative(value: Any, what: str) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise PolicyError(f"gate field 'serving.{what}' must be a number >= 0, got {value!r}")
    return float(value)


@dataclass
class ServingConfig:
    """The gate's ``serving`` section.

    Attributes:
        requests: Timed requests per model.
        warmup: Untimed requests per model sent first.
        batch_size: Rows per request.
        max_p99_ms: Ceiling on the challenger's p99 latency in milliseconds, or None.
        max_p99_increase: Largest relative increase of the challenger's p99 over the champion's
            measured in the same run (0.5 = 50 % slower), or None. Without a champion only the
            ceiling applies.
        min_p99_increase_ms: An increase over the champion must also exceed this many
            milliseconds to block: sub-millisecond jitter on a shared machine is noise, not a
            regression.
    """

    requests: int = 200
    warmup: int = 10
    batch_size: int = 1
    max_p99_ms: float | None = None
    max_p99_increase: float | None = None
    min_p99_increase_ms: float = 1.0

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        self.requests = _positive_int(self.requests, "requests", 1)
        self.warmup = _positive_int(self.warmup, "warmup", 0)
        self.batch_size = _positive_int(self.batch_size, "batch_size", 1)
        self.max_p99_ms = _non_negative(self.max_p99_ms, "max_p99_ms")
        self.max_p99_increase = _non_negative(self.max_p99_increase, "max_p99_increase")
        slack = _non_negative(self.min_p99_increase_ms, "min_p99_increase_ms")
        self.min_p99_increase_ms = 0.0 if slack is None else slack

    @classmethod
    def from_dict(cls, data: Any) -> ServingConfig:
        """Build the section from ``{"requests": 200, "max_p99_increase": 0.5, ...}``.

        Raises:
            PolicyError: Not a mapping, unknown keys or invalid values.
        """
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise PolicyError(f"gate field 'serving' must be a mapping, got {data!r}")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyError(
                f"gate field 'serving' has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        return cls(**{k: v for k, v in data.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "requests": self.requests,
            "warmup": self.warmup,
            "batch_size": self.batch_size,
            "max_p99_ms": self.max_p99_ms,
            "max_p99_increase": self.max_p99_increase,
            "min_p99_increase_ms": self.min_p99_increase_ms,
        }


@dataclass
class ServingStats:
    """How one model served the sample requests.

    Attributes:
        loaded: Whether the model loaded.
        load_error: Why it did not load, or None.
        load_ms: Time to load it, in milliseconds.
        requests: Timed requests sent.
        errors: Timed requests that failed.
        first_error: The first failure (type and message), or None.
        p50_ms: Median latency of the successful requests, in milliseconds.
        p99_ms: 99th percentile latency.
        mean_ms: Mean latency.
        max_ms: Slowest request.
        throughput_rps: Successful requests per second of serving time (one worker).
        rows_per_s: Rows per second of serving time.
    """

    loaded: bool
    load_error: str | None = None
    load_ms: float | None = None
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    throughput_rps: float | None = None
    rows_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return dict(self.__dict__)


@dataclass
class ServingReport:
    """Serving check of challenger and champion in one run.

    Attributes:
        config: The serving section used.
        protocol: The request form (``"kserve-v2-json"``).
        order: How requests were interleaved.
        challenger: The challenger's :class:`ServingStats`.
        champion: The champion's, or None without one.
        notes: Plain-language notes.
    """

    config: ServingConfig
    challenger: ServingStats
    champion: ServingStats | None = None
    protocol: str = "kserve-v2-json"
    order: str = "interleaved ABBA (challenger, champion, champion, challenger, ...)"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (the ``serving`` entry of ``evaluation.json``)."""
        return {
            **self.config.to_dict(),
            "protocol": self.protocol,
            "order": self.order,
            "challenger": self.challenger.to_dict(),
            "champion": None if self.champion is None else self.champion.to_dict(),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- V2 JSON

_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _datatype(dtype: pa.DataType) -> str:
    if pa.types.is_boolean(dtype):
        return "BOOL"
    if pa.types.is_integer(dtype):
        return "INT64"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "FP64"
    return "BYTES"


def _tensor_data(column: pa.ChunkedArray, datatype: str) -> list[Any]:
    if datatype == "BYTES" and not (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        column = column.cast(pa.string())
    values = column.to_pylist()
    if datatype == "FP64":  # JSON has no NaN: a missing number travels as null
        return [None if v is None or not math.isfinite(v) else float(v) for v in values]
    return values


def build_requests(
    table: pa.Table, columns: list[str], n: int, batch_size: int = 1, seed: int = 0
) -> list[bytes]:
    """Build ``n`` KServe V2 inference requests (JSON bytes) from seeded samples of rows.

    Each request carries one tensor per column: ``{"name", "shape": [batch_size],
    "datatype": "FP64" | "INT64" | "BOOL" | "BYTES", "data": [...]}``; missing values are null.

    Args:
        table: Rows to sample from (with replacement when there are fewer than needed).
        columns: Feature columns to send.
        n: Number of requests.
        batch_size: Rows per request.
        seed: Seed of the row sample.

    Returns:
        The request bodies.

    Raises:
        DataError: The table has no rows or lacks a column.
    """
    if table.num_rows == 0:
        raise DataError("serving check: the holdout has no rows to build requests from")
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"serving check: feature column(s) {missing} are not in the holdout; "
            f"columns present: {table.column_names}"
        )
    rng = np.random.default_rng(seed)
    total = n * batch_size
    replace = total > table.num_rows
    rows = rng.choice(table.num_rows, size=total, replace=replace)
    sample = table.select(columns).take(pa.array(rows))
    types = {c: _datatype(sample.column(c).type) for c in columns}
    data = {c: _tensor_data(sample.column(c), types[c]) for c in columns}
    bodies = []
    for i in range(n):
        part = slice(i * batch_size, (i + 1) * batch_size)
        inputs = [
            {"name": c, "shape": [batch_size], "datatype": types[c], "data": data[c][part]}
            for c in columns
        ]
        bodies.append(json.dumps({"id": str(i), "inputs": inputs}).encode())
    return bodies


def _serve(model: TrainedModel, model_name: str, body: bytes) -> bytes:
    """Answer one V2 request with the model server's own code (`refit.serving.protocol`)."""
    from refit.serving.outputs import predict_outputs
    from refit.serving.protocol import parse_infer_request
    from refit.serving.tables import request_to_table

    request = parse_infer_request(json.loads(body))
    table = request_to_table(request, model.spec, model=model_name)
    outputs = predict_outputs(model, table)
    return json.dumps({"model_name": model_name, "id": request.id, "outputs": outputs}).encode()


# --------------------------------------------------------------------------- the check


def _load(source: ModelSource) -> tuple[TrainedModel | None, ServingStats]:
    start = time.perf_counter()
    try:
        model = source() if callable(source) else load_model(source)
    except Exception as exc:  # any failure to load is the finding: named, not raised
        return None, ServingStats(loaded=False, load_error=f"{type(exc).__name__}: {exc}")
    return model, ServingStats(loaded=True, load_ms=(time.perf_counter() - start) * 1000)


class _Recorder:
    def __init__(self, model: TrainedModel, name: str) -> None:
        self.model = model
        self.name = name
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: str | None = None

    def send(self, body: bytes, timed: bool) -> None:
        start = time.perf_counter()
        try:
            _serve(self.model, self.name, body)
        except Exception as exc:  # a failed request is recorded, not raised
            if timed:
                self.errors += 1
                if self.first_error is None:
                    self.first_error = f"{type(exc).__name__}: {exc}"
            return
        elapsed = time.perf_counter() - start
        if timed:
            self.latencies.append(elapsed)

    def finish(self, stats: ServingStats, requests: int, batch_size: int) -> None:
        stats.requests = requests
        stats.errors = self.errors
        stats.first_error = self.first_error
        if not self.latencies:
            return
        ms = np.asarray(self.latencies) * 1000
        p50, p99 = np.percentile(ms, [50, 99])
        total_s = float(ms.sum()) / 1000
        stats.p50_ms, stats.p99_ms = float(p50), float(p99)
        stats.mean_ms, stats.max_ms = float(ms.mean()), float(ms.max())
        if total_s > 0:
            stats.throughput_rps = len(ms) / total_s
            stats.rows_per_s = len(ms) * batch_size / total_s


def serving_check(
    challenger: ModelSource,
    champion: ModelSource | None,
    table: pa.Table,
    config: ServingConfig,
    *,
    seed: int = 0,
) -> ServingReport:
    """Load challenger and champion as served and time the same V2 requests on both.

    Args:
        challenger: The challenger's model folder, or a function loading it as served.
        champion: The champion's, or None when there is none.
        table: Holdout rows to build requests from (the challenger's feature columns).
        config: The gate's serving section.
        seed: Seed of the row sample.

    Returns:
        The :class:`ServingReport`. Load failures and failed requests are recorded in it.

    Raises:
        DataError: The table has no rows or lacks a feature column.
    """
    chal_model, chal_stats = _load(challenger)
    report = ServingReport(config=config, challenger=chal_stats)
    champ_model = None
    if champion is None:
        report.notes.append("no champion: latency judged on the absolute ceiling alone")
    else:
        champ_model, report.champion = _load(champion)
    if chal_model is None:
        report.order = "nothing sent: the challenger did not load"
        return report
    served = [(chal_model, chal_stats, "challenger")]
    if champ_model is not None and report.champion is not None:
        served.append((champ_model, report.champion, "champion"))
    elif champion is None:
        report.order = "challenger alone (no champion)"
    else:
        report.order = "challenger alone (the champion did not load)"
    columns = chal_model.spec.feature_columns
    bodies = build_requests(
        table, columns, config.warmup + config.requests, config.batch_size, seed
    )
    recorders = [_Recorder(model, label) for model, _, label in served]
    gc.collect()
    for i, body in enumerate(bodies):
        timed = i >= config.warmup
        for recorder in recorders if i % 2 == 0 else recorders[::-1]:
            recorder.send(body, timed)
    for recorder, (_, stats, _) in zip(recorders, served, strict=True):
        recorder.finish(stats, config.requests, config.batch_size)
    return report
