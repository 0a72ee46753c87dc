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
The hooks live in ``refit.triggers.hooks``, the approvals in ``refit.triggers.approvals``, what
they share (bounded authenticated reads, counted errors, the decision lock) in
``refit.triggers.http``; this module builds the app and serves ``/runs``, ``/healthz`` and the
metrics.

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

from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from refit.triggers.approvals import approvals_router
from refit.triggers.hooks import hooks_router, stream_router
from refit.triggers.http import HookContext
from refit.triggers.service import TriggerService
from refit.triggers.streaming import StreamDetectors

#: ``GET /runs?status=``: the statuses a run can have (see `refit.triggers.service`).
RUN_STATUSES = ("pending", "running", "logged", "submitted", "succeeded", "failed")
#: ``GET /runs?limit=`` at most.
MAX_RUNS_LISTED = 1000


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
    ctx = HookContext(service, secret)
    app.state.streams = StreamDetectors(service)
    app.include_router(hooks_router(ctx))
    app.include_router(stream_router(ctx, app.state.streams))
    app.include_router(approvals_router(ctx))
    app.include_router(_status_router(ctx))
    if service.config.store_uri:
        # The models' own series (drift share, live version, decisions, retraining latency and
        # cost), read from the store on scrape: what the Grafana dashboard plots.
        from refit.monitoring.exporter import model_metrics_registry, mount_metrics

        model_registry, _ = model_metrics_registry(
            service.config.store_uri, sorted(service.config.models)
        )
        mount_metrics(app, model_registry, "/model-metrics")
    return app


def _status_router(ctx: HookContext) -> APIRouter:
    """``GET /runs`` (authenticated), ``/healthz`` and ``/metrics`` (open)."""
    router = APIRouter()
    service = ctx.service

    @router.get("/runs")
    async def runs(request: Request) -> Response:
        return await _runs(ctx, request)

    @router.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "launcher": service.launcher.name,
            "models": sorted(service.config.models),
            "in_flight": service.state.in_flight(),
        }

    @router.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _runs(ctx: HookContext, request: Request) -> Response:
    """The runs the service recorded, newest first, filtered by ``status`` and ``limit``."""
    body = await ctx.read(request, "runs")
    if isinstance(body, Response):
        return body
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        return ctx.reject(
            "runs",
            "malformed",
            422,
            f"status must be one of {', '.join(RUN_STATUSES)}, got {status[:100]!r}",
        )
    text = request.query_params.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS_LISTED:
        return ctx.reject(
            "runs",
            "malformed",
            422,
            f"limit must be an integer from 1 to {MAX_RUNS_LISTED}, got {text[:100]!r}",
        )
    rows = await run_in_threadpool(ctx.service.state.runs, status, int(text))
    return JSONResponse({"runs": rows})
