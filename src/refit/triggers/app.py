"""The trigger service over HTTP (FastAPI): hooks, runs, health and metrics.

Every hook needs ``Authorization: Bearer <secret>`` or ``X-Refit-Signature: sha256=<HMAC>``
(see ``refit.triggers.auth``): 401 without. Bodies larger than ``max_body_bytes`` answer 413;
malformed bodies 422 with the reason; events naming an unconfigured model 404 with the reason.
Handled events answer 200 with the decision(s): ``launch``, ``skip``, ``held`` (cooldown or runs
in flight) or ``duplicate``, each with its reasons.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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


def create_app(service: TriggerService, secret: bytes, *, manage: bool = True) -> FastAPI:
    """Build the ASGI app around ``service``.

    Args:
        service: The decision logic and state.
        secret: Hook secret (from ``auth.load_secret``).
        manage: Start the service's workers on startup and stop them on shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ARG001
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
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return reject(hook, "too_large", 413, f"body of {declared} bytes exceeds {limit}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return reject(hook, "too_large", 413, f"body exceeds {limit} bytes")
        why = auth.check(
            secret,
            request.headers.get("authorization"),
            request.headers.get(auth.SIGNATURE_HEADER),
            body,
        )
        if why:
            return reject(hook, "unauthorized", 401, f"unauthorized: {why}")
        return body

    async def decide_all(hook: str, events: list[TriggerEvent]) -> JSONResponse:
        try:
            for e in events:
                service.model(e.model)
        except UnknownModelError as exc:
            return reject(hook, "unknown_model", 404, str(exc))
        async with lock:  # decisions one at a time; SQLite calls are sub-millisecond
            decisions = [service.handle(e) for e in events]
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

    @app.get("/runs")
    async def runs(status: str | None = None, limit: int = 100) -> dict[str, Any]:
        return {"runs": service.state.runs(status, limit)}

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

    return app
