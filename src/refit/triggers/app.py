"""The trigger service over HTTP (FastAPI): hooks, runs, health and metrics.

Every hook, and ``GET /runs`` (the runs' parameters name data and stores), needs
``Authorization: Bearer <secret>`` or ``X-Refit-Signature: sha256=<HMAC>`` (see
``refit.triggers.auth``; a GET signs its empty body): 401 without. ``/healthz``, ``/metrics`` and
``/model-metrics`` stay open for probes and Prometheus' scrapes: they hold counts, not parameters.
Bodies larger than ``max_body_bytes`` answer 413 (from ``Content-Length``, or as soon as the bytes
read pass the limit); malformed bodies 422 with the reason (not JSON, ``NaN``, numbers out of
range, nesting too deep, a field of the wrong type); events naming an unconfigured model 404
with the reason.
Handled events answer 200 with the decision(s): ``launch``, ``skip``, ``held`` (cooldown or runs
in flight) or ``duplicate``, each with its reasons.
``POST /hooks/stream`` feeds a batch of the error or confidence stream to a streaming change
detector that triggers retraining through the same decisions (``refit.triggers.streaming``).

Human approval (``refit.governance.approval``), with the same authentication:
``POST /approvals/{model}/{version}/approve`` and ``.../reject`` with ``{"by": NAME, "reason":
TEXT}`` (reason required to reject). An approval releases the version to deployment at once.
Answers: 200 with the decision; 401 unauthenticated (nothing changes); 422 malformed body or
version; 404 a model the service is not configured for, or an unknown version; 403 ``by`` not
on the request's approvers; 409 not awaiting approval, expired, decided concurrently, or approved
but not released (the champion moved: ``"status": "approved", "released": false``); 503 when the
service has no ``store_uri``.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from refit.errors import RefitError, RegistryError
from refit.triggers import auth
from refit.triggers.payloads import (
    PayloadError,
    TriggerEvent,
    alertmanager_events,
    generic_event,
    parse_json,
    storage_event,
)
from refit.triggers.service import TriggerService, UnknownModelError
from refit.triggers.streaming import add_stream_route

#: ``GET /runs?status=``: the statuses a run can have (see `refit.triggers.service`).
RUN_STATUSES = ("pending", "running", "logged", "submitted", "succeeded", "failed")
#: ``GET /runs?limit=`` at most.
MAX_RUNS_LISTED = 1000


def _approval_body(data: Any, action: str) -> tuple[str, str]:
    """``(by, reason)`` of an approval request body.

    Raises:
        PayloadError: Not an object, unknown keys, or ``by``/``reason`` missing or not strings.
    """
    if not isinstance(data, dict):
        raise PayloadError(f"{action} body must be a JSON object with 'by' and 'reason'")
    unknown = sorted(set(data) - {"by", "reason"})
    if unknown:
        raise PayloadError(f"{action} body has unknown field(s) {', '.join(unknown)}")
    by, reason = data.get("by"), data.get("reason", "")
    if not isinstance(by, str) or not by.strip():
        raise PayloadError(f"{action} body: 'by' must name who decides, got {by!r}")
    if not isinstance(reason, str):
        raise PayloadError(f"{action} body: 'reason' must be a string, got {reason!r}")
    if action == "reject" and not reason.strip():
        raise PayloadError("reject body: 'reason' must say why")
    return by, reason


def _decide_approval(
    store_uri: str, model: str, version: int, action: str, by: str, reason: str, client: str
) -> tuple[int, dict[str, Any]]:
    """Approve (and release) or reject; the HTTP status and body. Blocking registry I/O."""
    from refit.governance.approval import (
        NotAnApproverError,
        approve,
        reject,
        release_approved,
    )
    from refit.registry import open_registry

    registry = open_registry(store_uri, model)
    if not registry.exists(version):
        return 404, {"detail": f"model {model!r} has no version {version}"}
    audit = {"via": "trigger-service", "client": client}
    decide = approve if action == "approve" else reject
    try:
        decided = decide(registry, version, by=by, reason=reason, audit=audit)
    except NotAnApproverError as exc:
        return 403, {"detail": str(exc)}
    except RegistryError as exc:
        return 409, {"detail": str(exc)}
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "status": decided.status,
        "by": decided.decided_by,
        "reason": decided.reason,
        "at": decided.decided_at,
        "released": False,
    }
    if action != "approve":
        return 200, body
    try:
        live = release_approved(registry, version, run_label="approval")
    except RefitError as exc:
        return 409, {**body, "detail": f"approved but not released: {exc}"}
    return 200, {**body, "released": True, "champion": live}


def create_app(service: TriggerService, secret: bytes, *, manage: bool = True) -> FastAPI:
    """Build the ASGI app around ``service``.

    Args:
        service: The decision logic and state.
        secret: Hook secret (from ``auth.load_secret``).
        manage: Start the service's workers on startup and stop them on shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage:
            service.start()
        yield
        if manage:
            service.stop()

    app = FastAPI(title="refit trigger service", lifespan=lifespan)
    metrics = service.metrics
    limit = service.config.max_body_bytes
    lock = asyncio.Lock()

    def reject(hook: str, reason: str, status: int, detail: str) -> JSONResponse:
        metrics.rejected.labels(hook, reason).inc()
        return JSONResponse({"detail": detail}, status_code=status)

    async def read(request: Request, hook: str) -> bytes | JSONResponse:
        metrics.received.labels(hook).inc()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return reject(
                hook,
                "too_large",
                413,
                f"body of {int(declared)} bytes exceeds the limit of {limit} (max_body_bytes)",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return reject(
                    hook,
                    "too_large",
                    413,
                    f"body exceeds the limit of {limit} bytes (max_body_bytes)",
                )
        why = auth.check(
            secret,
            request.headers.get("authorization"),
            request.headers.get(auth.SIGNATURE_HEADER),
            bytes(body),
        )
        if why:
            return reject(hook, "unauthorized", 401, f"unauthorized: {why}")
        return bytes(body)

    async def decide_all(hook: str, events: list[TriggerEvent]) -> JSONResponse:
        try:
            for e in events:
                service.model(e.model)
        except UnknownModelError as exc:
            return reject(hook, "unknown_model", 404, str(exc))
        async with lock:  # decisions one at a time, off the event loop: with a store they
            # read the registry (champion, policy state) and append to its audit log, which on
            # gs:// are network calls that must not stall health probes and other requests.
            decisions = [await run_in_threadpool(service.handle, e) for e in events]
        return JSONResponse({"decisions": decisions})

    @app.post("/hooks/alertmanager")
    async def alertmanager(request: Request) -> Response:
        body = await read(request, "alertmanager")
        if isinstance(body, Response):
            return body
        try:
            data = parse_json(body)
            events = alertmanager_events(data)
        except PayloadError as exc:
            return reject("alertmanager", "malformed", 422, str(exc))
        if not events:
            return JSONResponse({"decisions": [], "note": "no firing alerts (resolved)"})
        return await decide_all("alertmanager", events)

    @app.post("/hooks/storage")
    async def storage(request: Request) -> Response:
        body = await read(request, "storage")
        if isinstance(body, Response):
            return body
        try:
            parsed = storage_event(parse_json(body))
        except PayloadError as exc:
            return reject("storage", "malformed", 422, str(exc))
        if parsed is None:
            return JSONResponse({"decisions": [], "note": "not an OBJECT_FINALIZE event"})
        message_id, uri, rows, note = parsed
        model = service.config.model_for_object(uri)
        if model is None:
            return reject("storage", "unknown_model", 404, f"no model's storage prefix holds {uri}")
        event = TriggerEvent(
            hook="storage",
            model=model.name,
            dedupe_key=f"storage|{message_id}",
            summary=f"new object {uri} ({note})",
            new_rows=rows,
            data_uri=uri,
        )
        return await decide_all("storage", [event])

    @app.post("/hooks/generic")
    async def generic(request: Request) -> Response:
        body = await read(request, "generic")
        if isinstance(body, Response):
            return body
        try:
            event = generic_event(parse_json(body))
        except PayloadError as exc:
            return reject("generic", "malformed", 422, str(exc))
        return await decide_all("generic", [event])

    add_stream_route(app, service, read, reject, lock)  # POST /hooks/stream

    async def approval(request: Request, model: str, version: str, action: str) -> Response:
        hook = "approvals"
        body = await read(request, hook)
        if isinstance(body, Response):
            return body
        try:
            by, reason = _approval_body(parse_json(body), action)
        except PayloadError as exc:
            return reject(hook, "malformed", 422, str(exc))
        if not version.isdigit() or int(version) < 1:
            return reject(
                hook, "malformed", 422, f"version must be a positive integer, got {version!r}"
            )
        try:
            service.model(model)
        except UnknownModelError as exc:
            return reject(hook, "unknown_model", 404, str(exc))
        store_uri = service.config.store_uri
        if not store_uri:
            return reject(
                hook,
                "no_store",
                503,
                "approvals need the registry: set store_uri in the trigger config",
            )
        client = request.client.host if request.client else ""
        status, payload = await run_in_threadpool(
            _decide_approval, str(store_uri), model, int(version), action, by, reason, client
        )
        if status != 200:
            metrics.rejected.labels(hook, f"http_{status}").inc()
        return JSONResponse(payload, status_code=status)

    @app.post("/approvals/{model}/{version}/approve")
    async def approve_version(request: Request, model: str, version: str) -> Response:
        return await approval(request, model, version, "approve")

    @app.post("/approvals/{model}/{version}/reject")
    async def reject_version(request: Request, model: str, version: str) -> Response:
        return await approval(request, model, version, "reject")

    @app.get("/runs")
    async def runs(request: Request) -> Response:
        body = await read(request, "runs")
        if isinstance(body, Response):
            return body
        status = request.query_params.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            return reject(
                "runs",
                "malformed",
                422,
                f"status must be one of {', '.join(RUN_STATUSES)}, got {status[:100]!r}",
            )
        text = request.query_params.get("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS_LISTED:
            return reject(
                "runs",
                "malformed",
                422,
                f"limit must be an integer from 1 to {MAX_RUNS_LISTED}, got {text[:100]!r}",
            )
        rows = await run_in_threadpool(service.state.runs, status, int(text))
        return JSONResponse({"runs": rows})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "launcher": service.launcher.name,
            "models": sorted(service.config.models),
            "in_flight": service.state.in_flight(),
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if service.config.store_uri:
        # The models' own series (drift share, live version, decisions, retraining latency and
        # cost), read from the store on scrape: what the Grafana dashboard plots.
        from refit.monitoring.exporter import model_metrics_registry, mount_metrics

        model_registry, _ = model_metrics_registry(
            service.config.store_uri, sorted(service.config.models)
        )
        mount_metrics(app, model_registry, "/model-metrics")

    return app
