"""Shadow traffic on the local model server: the challenger answers copies, nobody sees them.

While the rollout state names a ``shadow`` version (`refit.serving.routing`), each unpinned
request the champion answered with 200 is copied, after its answer, through a bounded queue to
a worker thread that asks the shadow version (in a child process, `ShadowProcess`) for its own
answer and compares the two; a full queue drops the copy. Why a child process, and why the
client never waits: docs/decisions/0023-shadow-in-a-child-process.md.

Metrics (a contract with the shadow analysis, `refit.deploy.shadow`; ``revision`` is the shadow
version's label, e.g. ``v4``):

- ``refit_model_shadow_pairs_total{model, revision}``: rows (one per row of a request) both
  versions answered;
- ``refit_model_shadow_disagreements_total{model, revision}``: rows whose predicted labels
  differ (a regressor's predictions differing by more than 1% of the larger);
- ``refit_model_shadow_score_diff_total{model, revision}``: the sum over rows of the score
  difference (class probabilities: half the L1 distance between the two
  probability vectors, i.e. the total variation; regressors: the prediction's difference);
- ``refit_model_shadow_errors_total{model, revision}``: copies the shadow failed to answer;
- ``refit_model_shadow_dropped_total{model, revision}``: copies dropped because the queue was
  full (not compared);
- ``refit_model_predict_seconds{model, revision}``: histogram of the model's own predict time
  (parsing and scoring, no network): observed for the champion while a shadow runs, and for the
  shadow, so their latencies compare like with like.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from refit.serving.metrics import DURATION_BUCKETS

__all__ = [
    "PREDICT_SECONDS",
    "SHADOW_DISAGREEMENTS",
    "SHADOW_ERRORS",
    "SHADOW_PAIRS",
    "SHADOW_SCORE_DIFF",
    "PairComparison",
    "ShadowMirror",
    "compare_answers",
]

logger = logging.getLogger("refit.serving")

SHADOW_PAIRS = "refit_model_shadow_pairs_total"
SHADOW_DISAGREEMENTS = "refit_model_shadow_disagreements_total"
SHADOW_SCORE_DIFF = "refit_model_shadow_score_diff_total"
SHADOW_ERRORS = "refit_model_shadow_errors_total"
SHADOW_DROPPED = "refit_model_shadow_dropped_total"
PREDICT_SECONDS = "refit_model_predict_seconds"

#: Relative difference above which two regression predictions disagree.
REGRESSION_TOLERANCE = 0.01


@dataclass(frozen=True)
class PairComparison:
    """How one request's two answers compare.

    Attributes:
        rows: Rows in the request.
        disagreements: Rows whose predicted label (or regression value) differs.
        score_diff: Sum over rows of the score difference (total variation of the class
            probabilities, or the absolute prediction difference of a regressor).
    """

    rows: int
    disagreements: int
    score_diff: float


def _output(answer: dict[str, Any], name: str) -> Sequence[Any] | None:
    for out in answer.get("outputs", []):
        if out.get("name") == name:
            return out.get("data")
    return None


def compare_answers(champion: dict[str, Any], shadow: dict[str, Any]) -> PairComparison:
    """Compare two V2 answers to the same request.

    Raises:
        ValueError: The answers have no ``predict`` output or different row counts.
    """
    a, b = _output(champion, "predict"), _output(shadow, "predict")
    if a is None or b is None or len(a) != len(b):
        raise ValueError("the two answers' 'predict' outputs are missing or differ in length")
    rows = len(a)
    pa, pb = _output(champion, "predict_proba"), _output(shadow, "predict_proba")
    if pa is not None and pb is not None and rows and len(pa) == len(pb):
        k = len(pa) // rows
        disagree = sum(x != y for x, y in zip(a, b, strict=True))
        diff = sum(
            0.5 * sum(abs(pa[r * k + j] - pb[r * k + j]) for j in range(k)) for r in range(rows)
        )
        return PairComparison(rows, disagree, float(diff))
    if all(isinstance(x, int | float) for x in (*a, *b)):
        diffs = [abs(float(x) - float(y)) for x, y in zip(a, b, strict=True)]
        scale = [max(abs(float(x)), abs(float(y)), 1e-12) for x, y in zip(a, b, strict=True)]
        disagree = sum(d > REGRESSION_TOLERANCE * s for d, s in zip(diffs, scale, strict=True))
        return PairComparison(rows, disagree, float(sum(diffs)))
    disagree = sum(x != y for x, y in zip(a, b, strict=True))
    return PairComparison(rows, disagree, float(disagree))


class ShadowMirror:
    """One worker thread answering copies of requests with the shadow version and comparing.

    Args:
        model_name: The ``model`` label of the metrics.
        registry: The server's metrics registry (the shadow metrics join its exposition).
        predict: ``(version, body) -> (V2 answer, predict seconds)``, blocking (a
            `ShadowProcess`); it raises for an answer the shadow could not give.
        queue_size: Copies waiting at most; more are dropped (>= 1).
    """

    def __init__(
        self,
        model_name: str,
        registry: CollectorRegistry,
        predict: Callable[[int, bytes], tuple[dict[str, Any], float]],
        *,
        queue_size: int = 256,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"shadow queue_size must be >= 1, got {queue_size}")
        self.model_name = model_name
        self._predict = predict
        self._queue: queue.Queue[tuple[int, bytes, dict[str, Any]]] = queue.Queue(queue_size)
        labels = ("model", "revision")

        def counter(name: str, documentation: str) -> Counter:
            return Counter(name.removesuffix("_total"), documentation, labels, registry=registry)

        self.pairs = counter(SHADOW_PAIRS, "Rows answered by both the champion and the shadow.")
        self.disagreements = counter(
            SHADOW_DISAGREEMENTS,
            "Rows whose predicted label differs between the champion and the shadow.",
        )
        self.score_diff = counter(
            SHADOW_SCORE_DIFF,
            "Sum of per-row score differences between the champion and the shadow.",
        )
        self.errors = counter(SHADOW_ERRORS, "Request copies the shadow failed to answer.")
        self.dropped = counter(
            SHADOW_DROPPED, "Request copies dropped because the shadow queue was full."
        )
        self.predict_seconds = Histogram(
            PREDICT_SECONDS,
            "Model predict time in seconds (parse and score), by revision.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._ready: int | None = None
        self._preparing = False
        self._thread = threading.Thread(target=self._work, name="refit-shadow", daemon=True)
        self._thread.start()

    def observe_predict(self, revision: str, seconds: float) -> None:
        """Record a model's predict time."""
        self.predict_seconds.labels(self.model_name, revision).observe(seconds)

    def prepare(self, shadow: int) -> None:
        """Load ``shadow`` where it will answer, in the background (`ready` says when)."""
        if self._ready != shadow and not self._preparing:
            self._ready = None
            try:
                self._queue.put_nowait((shadow, b"", {}))
                self._preparing = True
            except queue.Full:
                pass

    def ready(self, shadow: int | None) -> bool:
        """Whether ``shadow`` is loaded and answering copies (asking again starts a retry)."""
        if shadow is None:
            return False
        if self._ready != shadow:
            self.prepare(shadow)
        return self._ready == shadow

    def offer(self, shadow: int, body: bytes, champion_answer: dict[str, Any]) -> bool:
        """Hand a copy to the worker without waiting; False (and counted) when it was dropped."""
        try:
            self._queue.put_nowait((shadow, body, champion_answer))
        except queue.Full:
            self.dropped.labels(self.model_name, f"v{shadow}").inc()
            return False
        return True

    def close(self) -> None:
        """Stop the shadow's child process, if any (the server's shutdown)."""
        close = getattr(self._predict, "close", None)
        if close is not None:
            close()

    def join(self) -> None:
        """Wait until every copy handed over so far is compared (tests, shutdown)."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            shadow, body, champion_answer = self._queue.get()
            try:
                self._compare(shadow, body, champion_answer)
            except Exception:  # the worker must outlive any one bad copy
                logger.exception("shadow comparison failed")
            finally:
                self._queue.task_done()

    def _compare(self, shadow: int, body: bytes, champion_answer: dict[str, Any]) -> None:
        revision = f"v{shadow}"
        if not body:  # prepare: load the version, count nothing
            try:
                self._predict(shadow, b"")
                self._ready = shadow
            except Exception as exc:
                logger.warning("shadow v%d cannot be loaded: %s", shadow, exc)
            finally:
                self._preparing = False
            return
        try:
            answer, seconds = self._predict(shadow, body)
        except Exception as exc:  # any failure of the shadow is its error, never the client's
            self.errors.labels(self.model_name, revision).inc()
            logger.debug("shadow v%d failed: %s", shadow, exc)
            return
        self.observe_predict(revision, seconds)
        try:
            pair = compare_answers(champion_answer, answer)
        except ValueError:
            self.errors.labels(self.model_name, revision).inc()
            return
        if pair.rows == 0 or not math.isfinite(pair.score_diff):
            return
        self.pairs.labels(self.model_name, revision).inc(pair.rows)
        self.disagreements.labels(self.model_name, revision).inc(pair.disagreements)
        self.score_diff.labels(self.model_name, revision).inc(pair.score_diff)


class ShadowError(RuntimeError):
    """The shadow could not answer a copy (the message says why)."""


class ShadowProcess:
    """The shadow's predictions in a child process, one copy at a time.

    The child loads versions from the same store (sha256 checked, as the server does) and
    answers ``(version, body)`` with the V2 outputs and its own predict time. It is started on
    the first call and restarted after it dies; it exits when the server does (daemon, and its
    pipe closes).

    Args:
        store_uri: refit's store.
        model_name: The model.
        limits: The server's request limits.
        timeout: Seconds to wait for one answer (a stuck child is restarted).
        start_timeout: Seconds to wait for the first answer of a new child (imports and the
            model's load: a few seconds on a quiet machine, 20-30 s on a loaded one).
    """

    def __init__(
        self,
        store_uri: str,
        model_name: str,
        limits: Any,
        timeout: float = 30.0,
        start_timeout: float = 180.0,
    ) -> None:
        self.args = (store_uri, model_name, limits)
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._fresh = False
        self._conn: Any = None
        self._proc: Any = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_shadow_child, args=(*self.args, child), name="refit-shadow", daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent

    def __call__(self, version: int, body: bytes) -> tuple[dict[str, Any], float]:
        """Answer one copy with ``version``.

        Raises:
            ShadowError: The shadow refused the request, failed, or did not answer in time.
        """
        if self._proc is None or not self._proc.is_alive():
            self._start()
            self._fresh = True
        timeout = self.start_timeout if self._fresh else self.timeout
        try:
            self._conn.send((version, body))
            if not self._conn.poll(timeout):
                raise ShadowError(f"no answer in {timeout:g} s")
            ok, answer, seconds = self._conn.recv()
            self._fresh = False
        except (OSError, EOFError, ShadowError) as exc:
            self.close()
            raise ShadowError(f"the shadow process failed: {exc}") from exc
        if not ok:
            raise ShadowError(answer)
        return answer, seconds

    def close(self) -> None:
        """Stop the child (the next call starts a new one)."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._proc = self._conn = None


def _shadow_child(store_uri: str, model_name: str, limits: Any, conn: Any) -> None:
    """The child's loop: ``(version, body)`` in, ``(ok, outputs or error, seconds)`` out."""
    from refit.registry import open_registry
    from refit.serving.outputs import predict_outputs
    from refit.serving.protocol import decode_json, parse_infer_request
    from refit.serving.server import ModelCache
    from refit.serving.tables import request_to_table

    cache = ModelCache(open_registry(store_uri, model_name))
    while True:
        try:
            version, body = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        started = time.perf_counter()
        try:
            model = cache.get(version)
            if not body:  # load only
                conn.send((True, {}, 0.0))
                continue
            request = parse_infer_request(decode_json(body), limits)
            table = request_to_table(request, model.spec, model=f"{model_name!r} v{version}")
            reply: tuple[bool, dict[str, Any] | str] = (
                True,
                {"outputs": predict_outputs(model, table, request.outputs)},
            )
        except Exception as exc:  # the shadow's failure, reported to the parent
            reply = (False, f"{type(exc).__name__}: {exc}")
        conn.send((*reply, time.perf_counter() - started))
