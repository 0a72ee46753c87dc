"""Changes caught inside the window: a streaming change detector fed by the trigger service.

The trigger service runs River's Page-Hinkley test (`river.drift.PageHinkley`) over a stream it
is sent in batches, and asks for retraining the moment the test fires, not when a window closes
(why, and how the defaults were chosen: docs/decisions/0007-page-hinkley-in-trigger-service.md):

- the **error stream** (``"stream": "errors"``) where labels flow: 1 for a wrong prediction, 0
  for a right one (or any loss in [0, 1]); the test watches for its mean going **up**;
- the **confidence stream** (``"stream": "confidence"``) where they do not: the champion's
  probability of its predicted class, in [0, 1]; the test watches for its mean going **down**.

``POST /hooks/stream`` (``refit.triggers.hooks``; authenticated like every hook, body bounded by
``max_body_bytes``)::

    {"batch_id": "errors-2026-12-01T10:05", "model": "credit-default",
     "stream": "errors", "values": [0, 1, 0, 0, 1]}

``batch_id`` (non-empty, at most 256 characters) makes a re-sent batch a no-op (answered
``duplicate``, the detector untouched); ``values`` holds 1 to `MAX_VALUES` finite numbers in
[0, 1], in arrival order. The detector's state (per model and stream) and the batch id are
committed in one SQLite transaction in the service's state file, so a service killed at any
point resumes with the state of the last batch it answered, and never counts a batch twice.

When the test fires, a ``stream`` trigger event (dedupe key ``stream|MODEL|STREAM|BATCH``) goes
through the service's own decision path (`TriggerService.handle`), stored with the detector's
state before it is decided, so a detection is never lost; the detector restarts after firing.
Per-model settings (the model's ``streaming`` object in the trigger config): ``threshold``
(lambda, 100), ``delta`` (0.02), ``min_instances`` (30) and ``alpha`` (0.9999), see
`StreamSettings`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refit.triggers.payloads import PayloadError, TriggerEvent, _number, _obj, _short, _str

if TYPE_CHECKING:
    from river.drift import PageHinkley

    from refit.triggers.service import TriggerService

__all__ = [
    "MAX_VALUES",
    "STREAMS",
    "StreamBatch",
    "StreamDetectors",
    "StreamSettings",
    "stream_batch",
]

#: The streams a batch may carry, and the direction of change each watches for.
STREAMS = {"errors": "up", "confidence": "down"}
#: Values in one batch at most.
MAX_VALUES = 100_000
#: Longest ``batch_id``.
MAX_BATCH_ID = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_detector (
    model TEXT NOT NULL, stream TEXT NOT NULL, state TEXT NOT NULL,
    rows INTEGER NOT NULL, fires INTEGER NOT NULL, PRIMARY KEY (model, stream)
);
CREATE TABLE IF NOT EXISTS stream_batch (
    model TEXT NOT NULL, stream TEXT NOT NULL, batch_id TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (model, stream, batch_id)
);
CREATE TABLE IF NOT EXISTS stream_fire (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, summary TEXT NOT NULL, decided INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StreamSettings:
    """Page-Hinkley settings of one model (see the module docstring)."""

    threshold: float = 100.0
    delta: float = 0.02
    min_instances: int = 30
    alpha: float = 1 - 0.0001

    @classmethod
    def from_dict(cls, data: Any, where: str = "streaming") -> StreamSettings:
        """Checked settings from a config object.

        Raises:
            ValueError: An unknown key or a value out of range, naming it.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be an object, got {type(data).__name__}")
        known = {"threshold", "delta", "min_instances", "alpha"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where} has unknown field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")  # fmt: skip
        settings = cls(**data)
        ranges = {  # name: (value, lowest allowed, whether the lowest is allowed, highest)
            "threshold": (settings.threshold, 0.0, False, 1e9),
            "delta": (settings.delta, 0.0, True, 1.0),
            "alpha": (settings.alpha, 0.0, False, 1.0),
        }
        for name, (value, low, low_ok, high) in ranges.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if (
                not number
                or not math.isfinite(value)
                or value > high
                or value < low
                or (value == low and not low_ok)
            ):
                side = "[" if low_ok else "("
                raise ValueError(f"{where}.{name} must be a number in {side}{low:g}, {high:g}], "
                                 f"got {value!r}")  # fmt: skip
        m = settings.min_instances
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 1_000_000:
            raise ValueError(
                f"{where}.min_instances must be an integer from 1 to 1000000, got {m!r}"
            )
        return settings


@dataclass(frozen=True)
class StreamBatch:
    """A checked ``/hooks/stream`` body."""

    batch_id: str
    model: str
    stream: str
    values: tuple[float, ...]


def stream_batch(data: Any) -> StreamBatch:
    """Check a ``/hooks/stream`` body (see the module docstring).

    Raises:
        PayloadError: A missing, unknown or wrongly typed field, naming it.
    """
    data = _obj(data, "body")
    known = {"batch_id", "model", "stream", "values"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PayloadError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    batch_id = _str(data.get("batch_id"), "batch_id")
    if len(batch_id) > MAX_BATCH_ID:
        raise PayloadError(
            f"batch_id must be at most {MAX_BATCH_ID} characters, got {len(batch_id)}"
        )
    model = _str(data.get("model"), "model")
    stream = data.get("stream")
    if stream not in STREAMS:
        raise PayloadError(f"stream must be one of {', '.join(STREAMS)}, got {_short(stream)}")
    values = data.get("values")
    if not isinstance(values, list) or not values:
        raise PayloadError(
            f"values must be a non-empty list of numbers in [0, 1], got {_short(values)}"
        )
    if len(values) > MAX_VALUES:
        raise PayloadError(f"values holds {len(values)} numbers, over the limit of {MAX_VALUES}; "
                           "send smaller batches")  # fmt: skip
    checked = []
    for i, v in enumerate(values):
        if isinstance(v, str):  # a number as a string is a client's mistake here
            raise PayloadError(f"values[{i}] must be a number in [0, 1], got {_short(v)}")
        checked.append(_number(v, f"values[{i}]", 0.0, 1.0))
    return StreamBatch(batch_id, model, stream, tuple(checked))


def _detector(settings: StreamSettings, stream: str, state: dict[str, Any] | None) -> PageHinkley:
    """River's Page-Hinkley test, restored to ``state`` (a fresh one for None)."""
    from river.drift import PageHinkley

    ph = PageHinkley(
        min_instances=settings.min_instances,
        delta=settings.delta,
        threshold=settings.threshold,
        alpha=settings.alpha,
        mode=STREAMS[stream],
    )
    if state:
        ph._x_mean.n = float(state["n"])
        ph._x_mean._mean = float(state["mean"])
        ph._sum_increase = float(state["sum_increase"])
        ph._sum_decrease = float(state["sum_decrease"])
        ph._min_increase = math.inf if state["min_increase"] is None else state["min_increase"]
        ph._max_decrease = float(state["max_decrease"])
        ph._drift_detected = bool(state["drift_detected"])
    return ph


def _state(ph: PageHinkley) -> dict[str, Any]:
    """The detector's state as JSON data (the running mean, the two cumulative sums)."""
    return {
        "n": ph._x_mean.n,
        "mean": ph._x_mean._mean,
        "sum_increase": ph._sum_increase,
        "sum_decrease": ph._sum_decrease,
        "min_increase": None if math.isinf(ph._min_increase) else ph._min_increase,
        "max_decrease": ph._max_decrease,
        "drift_detected": ph.drift_detected,
    }


class StreamDetectors:
    """Per-model, per-stream Page-Hinkley detectors kept in the service's SQLite state file."""

    def __init__(self, service: TriggerService) -> None:
        """Open (and create) the tables beside the service's state."""
        self.service = service
        path = str(service.config.state_path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def settings(self, model: str) -> StreamSettings:
        """The model's detector settings."""
        return self.service.model(model).streaming

    def detector_state(self, model: str, stream: str) -> dict[str, Any] | None:
        """``{"state", "rows", "fires"}`` of one detector, None before its first batch."""
        with self._lock:
            row = self._db.execute(
                "SELECT state, rows, fires FROM stream_detector WHERE model = ? AND stream = ?",
                (model, stream),
            ).fetchone()
        if row is None:
            return None
        return {"state": json.loads(row[0]), "rows": row[1], "fires": row[2]}

    def process(self, batch: StreamBatch) -> dict[str, Any]:
        """Feed a batch to its detector; on a detection, decide a retrain through the service.

        Raises:
            UnknownModelError: The batch names a model the service is not configured for.
        """
        settings = self.settings(batch.model)
        now = self.service.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = self._update(batch, settings, now)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        result["decisions"] = self._decide_pending(batch.model)
        return result

    def _update(self, batch: StreamBatch, settings: StreamSettings, now: float) -> dict[str, Any]:
        base = {"model": batch.model, "stream": batch.stream, "batch_id": batch.batch_id}
        seen = self._db.execute(
            "INSERT INTO stream_batch(model, stream, batch_id, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (batch.model, batch.stream, batch.batch_id, now),
        )
        if seen.rowcount != 1:
            why = "duplicate: this batch was already fed to the detector"
            return {**base, "result": "duplicate", "fired": False, "reasons": [why]}
        ttl = self.service.config.dedupe_ttl_seconds
        self._db.execute("DELETE FROM stream_batch WHERE seen_at < ?", (now - ttl,))
        row = self._db.execute(
            "SELECT state, rows, fires FROM stream_detector WHERE model = ? AND stream = ?",
            (batch.model, batch.stream),
        ).fetchone()
        state, rows, fires = (None, 0, 0) if row is None else (json.loads(row[0]), row[1], row[2])
        ph = _detector(settings, batch.stream, state)
        fired_at: list[int] = []
        for i, value in enumerate(batch.values):
            ph.update(value)
            if ph.drift_detected:
                fired_at.append(i)
        direction = "rose" if STREAMS[batch.stream] == "up" else "fell"
        if fired_at:
            first = fired_at[0]
            summary = (
                f"Page-Hinkley on the {batch.stream} stream of {batch.model}: its mean {direction} "
                f"(fired at value {first} of batch {batch.batch_id!r}, stream row "
                f"{rows + first + 1}; threshold {settings.threshold:g}, delta {settings.delta:g})"
            )
            key = f"stream|{batch.model}|{batch.stream}|{batch.batch_id}"
            self._db.execute(
                "INSERT INTO stream_fire(key, model, summary, decided) VALUES (?, ?, ?, 0) "
                "ON CONFLICT DO NOTHING",
                (key, batch.model, summary),
            )
        self._db.execute(
            "INSERT INTO stream_detector(model, stream, state, rows, fires) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(model, stream) DO UPDATE SET "
            "state = excluded.state, rows = excluded.rows, fires = excluded.fires",
            (batch.model, batch.stream, json.dumps(_state(ph)), rows + len(batch.values),
             fires + len(fired_at)),
        )  # fmt: skip
        return {
            **base,
            "result": "fired" if fired_at else "no change",
            "fired": bool(fired_at),
            "fired_at": fired_at,
            "rows": rows + len(batch.values),
            "settings": asdict(settings),
        }

    def _decide_pending(self, model: str) -> list[dict[str, Any]]:
        """Decide every stored detection of ``model`` not decided yet (oldest first)."""
        with self._lock:
            pending = self._db.execute(
                "SELECT key, summary FROM stream_fire WHERE model = ? AND decided = 0 "
                "ORDER BY rowid",
                (model,),
            ).fetchall()
        decisions = []
        for key, summary in pending:
            event = TriggerEvent(
                hook="stream", model=model, dedupe_key=key, summary=summary, force=True
            )
            decisions.append(self.service.handle(event))
            with self._lock:
                self._db.execute("UPDATE stream_fire SET decided = 1 WHERE key = ?", (key,))
        return decisions

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
