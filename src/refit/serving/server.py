"""The model server's request handling, apart from HTTP routing: `ModelServer` and `ModelCache`.

`ModelServer` holds what the app serves (the registry, the traffic router, the loaded versions,
faults, metrics, the shadow and the feedback log) and answers each request as a status and a V2
body; `refit.serving.app` maps the endpoints onto it. Errors are raised as `_Answer` (an HTTP
status with the V2 ``{"error": ...}`` body) and answered by the caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from refit.errors import DataError, RefitError, RegistryError, TrainingError
from refit.io.uri import is_gcs, local_path
from refit.monitoring.predictions import PredictionLog
from refit.registry import ModelRegistry, open_registry
from refit.serving.faults import Fault, check_faults
from refit.serving.feedback import FeedbackFull, FeedbackLog, check_feedback_token
from refit.serving.metrics import NO_REVISION, ServingMetrics
from refit.serving.outputs import model_metadata, predict_outputs
from refit.serving.protocol import (
    DEFAULT_LIMITS,
    RequestLimits,
    RequestTooLarge,
    decode_json,
    parse_infer_request,
)
from refit.serving.routing import (
    RolloutState,
    TrafficRouter,
    choose_version_for_unit,
    revision,
)
from refit.serving.shadow import ShadowMirror, ShadowProcess
from refit.serving.tables import request_to_table
from refit.training.trainers import TrainedModel

__all__ = ["ModelCache", "ModelServer"]

logger = logging.getLogger("refit.serving")


class ModelCache:
    """Loaded versions of one model, each loaded (and its sha256 verified) once.

    A failed load is not cached: the next request tries again. Thread-safe; two requests for
    a version that is not loaded yet wait for one load.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._models: dict[int, TrainedModel] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, version: int) -> TrainedModel:
        """Return a loaded version, loading it on first use.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: Its model file does not match the registered sha256, or is unsafe.
        """
        model = self._models.get(version)
        if model is not None:
            return model
        with self._guard:
            lock = self._locks.setdefault(version, threading.Lock())
        with lock:
            model = self._models.get(version)
            if model is None:
                model = self.registry.load_model(version)
                self._models[version] = model
                logger.info("loaded model %r version %d", self.registry.model_name, version)
        return model

    def loaded(self) -> list[int]:
        """The versions loaded so far, ascending."""
        return sorted(self._models)


#: Content types of a JSON body: JSON itself, and what curl -d and simple clients send. Anything
#: else (the V2 binary tensor extension's octet-stream, multipart forms...) answers 415.
JSON_CONTENT_TYPES = frozenset(
    {"application/json", "text/plain", "application/x-www-form-urlencoded"}
)


class _Answer(Exception):
    """An HTTP answer other than 200, raised to leave a handler early."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self, **extra: Any) -> JSONResponse:
        return JSONResponse({**extra, "error": self.message}, status_code=self.status)


class ModelServer:
    """What the HTTP app serves: the registry, the router, the model cache, faults and metrics.

    Args:
        store_uri: refit's store (local folder, ``file://`` or ``gs://``).
        model_name: The model served.
        seed: Seed of the routing and fault generators: the same seed and the same requests
            give the same routing.
        faults: Fault injection for canary drills, off by default: version -> `Fault` (or a
            mapping of its fields, ``{"error_rate": float, "latency_ms": float}``).
        state_refresh_seconds: How stale the rollout state (champion alias, canary state) may
            get before it is re-read from the registry.
        clock: Monotonic clock of the state refresh (tests pass their own).
        limits: How large an infer request may be (see `RequestLimits`; the defaults: 8 MiB
            of body, 1,000,000 tensor elements, 8 levels of nesting).
        prediction_log: Where each answered prediction is logged (`refit.monitoring.predictions`);
            None logs nothing.
        feedback_path: JSON Lines file the feedback endpoint appends to (None: no endpoint).
        feedback_token: The secret each feedback request must carry as a bearer token
            (required with ``feedback_path``; see `refit.serving.feedback`).

    Raises:
        RegistryError: The store URI or model name is invalid, or a local store is not a folder.
        DeployError: A fault or the refresh interval is invalid.
    """

    def __init__(
        self,
        store_uri: str,
        model_name: str,
        *,
        seed: int = 0,
        faults: Mapping[Any, Fault | Mapping[str, Any]] | None = None,
        state_refresh_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        limits: RequestLimits = DEFAULT_LIMITS,
        prediction_log: PredictionLog | None = None,
        feedback_path: str | None = None,
        feedback_token: bytes | None = None,
    ) -> None:
        if feedback_path and not feedback_token:
            raise DataError(
                "a feedback file needs a feedback secret (REFIT_FEEDBACK_TOKEN or "
                "REFIT_FEEDBACK_TOKEN_FILE): A/B feedback moves promotions"
            )
        self.feedback_token = feedback_token
        self.limits = limits
        self.prediction_log = prediction_log
        self.registry = open_registry(store_uri, model_name)
        if not is_gcs(store_uri) and not local_path(store_uri).is_dir():
            raise RegistryError(
                f"store {store_uri!r} is not a folder (a typo?): a local store is the folder "
                "that `refit registry` and the pipelines write"
            )
        self.model_name = model_name
        self.faults = check_faults(faults)
        self.metrics = ServingMetrics(model_name)
        self.cache = ModelCache(self.registry)
        self.router = TrafficRouter(
            self.registry,
            seed=seed,
            refresh_seconds=state_refresh_seconds,
            clock=clock,
            on_change=self._state_changed,
        )
        self._fault_rng = random.Random(f"refit-faults:{seed}")
        self._fault_lock = threading.Lock()
        self.shadow = ShadowMirror(
            model_name, self.metrics.registry, ShadowProcess(store_uri, model_name, limits)
        )
        self.feedback = None if not feedback_path else FeedbackLog(feedback_path)

    def _state_changed(self, state: RolloutState) -> None:
        self.metrics.set_traffic({revision(v): p for v, p in state.split().items()})
        if state.shadow is not None:
            self.shadow.prepare(state.shadow)
        logger.info("traffic split of model %r: %s", self.model_name, state.to_dict()["split"])

    # ----------------------------------------------------------------- checks

    def _no_model_message(self, state: RolloutState) -> str:
        detail = f" ({state.problem})" if state.problem else ""
        return (
            f"model {self.model_name!r} has no champion in store {self.registry.store_uri!r}: "
            f"nothing to serve yet{detail}; promote a version, or pin one with "
            f"/v2/models/{self.model_name}/versions/{{version}}/infer"
        )

    def check_name(self, name: str) -> None:
        """Refuse another model's name (404)."""
        if name != self.model_name:
            raise _Answer(
                404, f"model {name!r} is not served here; this server serves {self.model_name!r}"
            )

    def check_version(self, text: str) -> int:
        """Parse a version from a URL and check that it is registered (400 or 404)."""
        if not (text.isascii() and text.isdigit()) or text.strip("0") == "":
            raise _Answer(
                400,
                f"version {text[:40]!r} of model {self.model_name!r} must be a positive integer",
            )
        if len(text) > 18:  # beyond int64, and int() refuses over 4300 digits
            raise _Answer(404, f"model {self.model_name!r} has no version {text[:20]}...")
        version = int(text)
        if not self.registry.exists(version):
            raise _Answer(
                404,
                f"model {self.model_name!r} has no version {version} (versions: "
                f"{self.registry.list_version_numbers()})",
            )
        return version

    def load(self, version: int) -> TrainedModel:
        """A loaded version, or a 500 answer naming why it cannot be loaded."""
        try:
            return self.cache.get(version)
        except (RefitError, OSError, ValueError) as exc:  # refused, or the store is unreadable
            raise _Answer(
                500, f"model {self.model_name!r} version {version} cannot be loaded: {exc}"
            ) from exc

    def readiness(self, version: int | None = None) -> None:
        """Load what would serve (one version, or every version in the split); 503 if nothing.

        Raises:
            _Answer: 503 with the reason when not ready.
        """
        if version is None:
            state = self.router.state()
            versions = list(state.split())
            if not versions:
                raise _Answer(503, self._no_model_message(state))
        else:
            versions = [version]
        for v in versions:
            try:
                self.load(v)
            except _Answer as exc:
                raise _Answer(503, exc.message) from exc

    def warm(self) -> None:
        """Load the versions in the split now, so the first requests do not wait (best effort)."""
        try:
            self.readiness()
        except _Answer as exc:
            logger.warning("not ready yet: %s", exc.message)

    def metadata(self, version: int | None = None) -> dict[str, Any]:
        """Model metadata of one version, or of the champion with the current split."""
        state = None
        if version is None:
            state = self.router.state()
            version = state.primary if state.primary is not None else state.canary
            if version is None:
                raise _Answer(503, self._no_model_message(state))
        model = self.load(version)
        data = model_metadata(self.model_name, version, model, self.registry.list_version_numbers())
        if state is not None:
            data["refit"]["traffic"] = state.to_dict()
            data["refit"]["traffic"]["shadow_ready"] = self.shadow.ready(state.shadow)
        return data

    # ----------------------------------------------------------------- inference

    def fault_strikes(self, fault: Fault) -> bool:
        """Draw whether an injected error hits this request."""
        if fault.error_rate <= 0:
            return False
        with self._fault_lock:
            return self._fault_rng.random() < fault.error_rate

    async def read_body(self, request: Request) -> bytes:
        """The request's body, refused early when it is not JSON or is over the byte limit.

        A declared ``Content-Length`` over the limit is refused without reading; otherwise the
        body is read chunk by chunk and refused as soon as it passes the limit, so a client
        never makes the server hold more than ``max_body_bytes`` of it.

        Raises:
            _Answer: 415 for a content type that is not JSON, 413 for a body over the limit.
        """
        content_type = request.headers.get("content-type", "")
        media = content_type.partition(";")[0].strip().lower()
        if media and media not in JSON_CONTENT_TYPES and not media.endswith("+json"):
            raise _Answer(
                415,
                f"Content-Type {content_type[:100]!r} is not supported: send the V2 request as "
                "JSON (Content-Type: application/json)",
            )
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Answer(
                413,
                f"request body of {int(declared)} bytes (Content-Length) is over the server's "
                f"limit of {limit} bytes (max_body_bytes); split it into smaller batches",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _Answer(
                    413,
                    f"request body is over the server's limit of {limit} bytes (max_body_bytes); "
                    "split it into smaller batches",
                )
        return bytes(body)

    def predict(self, version: int, body: bytes, unit_id: str | None = None) -> dict[str, Any]:
        """Answer one infer request with ``version`` (blocking: call it from a worker thread).

        Raises:
            _Answer: 400 for a bad request, 413 for one over the element or depth limits, 500
                when the version cannot be loaded.
        """
        try:
            request = parse_infer_request(decode_json(body), self.limits)
        except RequestTooLarge as exc:
            raise _Answer(413, str(exc)) from exc
        except DataError as exc:
            raise _Answer(400, str(exc)) from exc
        model = self.load(version)
        try:
            table = request_to_table(
                request, model.spec, model=f"{self.model_name!r} version {version}"
            )
            outputs = predict_outputs(model, table, request.outputs)
        except (DataError, TrainingError) as exc:
            raise _Answer(400, str(exc)) from exc
        response = {
            "model_name": self.model_name,
            "model_version": str(version),
            "id": request.id if request.id is not None else (unit_id or str(uuid.uuid4())),
            "outputs": outputs,
        }
        if self.prediction_log is not None:
            self._log_prediction(response, model, table)
        return response

    def _log_prediction(self, response: dict[str, Any], model: TrainedModel, table: Any) -> None:
        """Append the answer to the prediction log; a failure is logged, never answered."""
        assert self.prediction_log is not None
        try:
            features = table.to_pydict() if self.prediction_log.log_features else None
            classes = None if model.spec.is_regression else list(model.classes)
            self.prediction_log.log_response(response, classes=classes, features=features)
        except (OSError, ValueError, TypeError):
            logger.exception("prediction %s not written to the prediction log", response["id"])

    async def _inject_fault(self, version: int) -> None:
        """Apply ``version``'s injected fault, if any: its latency, then perhaps a 500."""
        fault = self.faults.get(version)
        if fault is None:
            return
        if fault.latency_ms > 0:
            await asyncio.sleep(fault.latency_ms / 1000.0)
        if self.fault_strikes(fault):
            raise _Answer(
                500,
                f"injected fault: model {self.model_name!r} version {version} fails "
                f"{fault.error_rate:.0%} of requests (fault-injection drill)",
            )

    async def infer(self, name: str, pinned: str | None, http: Request) -> JSONResponse:
        """Route, read, fault, predict and count one infer request."""
        started = time.perf_counter()
        try:
            self.check_name(name)
            version = None if pinned is None else self.check_version(pinned)
        except _Answer as exc:  # not counted: the labels would be whatever a client sent
            return exc.response()
        state: RolloutState | None = None
        if version is None:
            version, state = self.router.route()
            if version is None:
                self.metrics.observe(NO_REVISION, 503, time.perf_counter() - started)
                return _Answer(503, self._no_model_message(state)).response()
        status = 500
        body: bytes | None = None
        unit_id: str | None = None
        try:
            if state is not None and state.salt:  # A/B: the arm is the request id's
                body = await self.read_body(http)
                unit_id = _request_id(body) or str(uuid.uuid4())
                version = choose_version_for_unit(state, unit_id) or version
            await self._inject_fault(version)
            if body is None:
                body = await self.read_body(http)
            predict_started = time.perf_counter()
            payload = await run_in_threadpool(self.predict, version, body, unit_id)
            if state is not None and state.shadow is not None and version == state.primary:
                self.shadow.observe_predict(
                    revision(version), time.perf_counter() - predict_started
                )
                self.shadow.offer(state.shadow, body, payload)  # never waits for the shadow
            status = 200
            return JSONResponse(payload)
        except _Answer as exc:
            status = exc.status
            return exc.response()
        except Exception as exc:  # a bug or a library failure: still a V2 error, still counted
            logger.exception("infer request to model %r version %d failed", name, version)
            return _Answer(
                500, f"model {self.model_name!r} version {version} failed to predict: {exc!r}"
            ).response()
        finally:
            self.metrics.observe(revision(version), status, time.perf_counter() - started)

    async def record_feedback(self, name: str, http: Request) -> JSONResponse:
        """Append one request's feedback events to the feedback file."""
        try:
            self.check_name(name)
            if self.feedback is None:
                raise _Answer(
                    404,
                    "this server takes no feedback: start it with --feedback-file FILE "
                    "(the file an A/B plan's feedback_path names)",
                )
            assert self.feedback_token is not None
            why = check_feedback_token(self.feedback_token, http.headers.get("authorization"))
            if why:
                raise _Answer(401, why)
            body = await self.read_body(http)
            try:
                accepted = await run_in_threadpool(self.feedback.record, decode_json(body))
            except FeedbackFull as exc:
                raise _Answer(413, str(exc)) from exc
            except DataError as exc:
                raise _Answer(400, str(exc)) from exc
        except _Answer as exc:
            return exc.response()
        return JSONResponse({"accepted": accepted})


def _request_id(body: bytes) -> str | None:
    """The V2 request's ``id`` when it is a usable unit id (a string of 1-256 characters)."""
    try:
        data = decode_json(body)
    except DataError:
        return None
    uid = data.get("id") if isinstance(data, dict) else None
    return uid if isinstance(uid, str) and 0 < len(uid) <= 256 else None
