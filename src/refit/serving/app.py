"""The local model server over HTTP (FastAPI): KServe V2 endpoints, traffic split, metrics.

Endpoints (KServe V2 / Open Inference Protocol, plus ``/metrics``):

- ``GET /v2/health/live``: 200 ``{"live": true}`` while the process runs;
- ``GET /v2/health/ready``, ``GET /v2/models/{name}/ready``: 200 ``{"ready": true}`` once every
  version in the traffic split loads; 503 ``{"ready": false, "error": ...}`` before there is a
  champion or when a version cannot be loaded;
- ``GET /v2/models/{name}/versions/{version}/ready``: the same for one version;
- ``GET /v2``: server metadata;
- ``GET /v2/models/{name}``, ``GET /v2/models/{name}/versions/{version}``: model metadata
  (name, versions, platform, input and output tensors; the unversioned form describes the
  champion and adds the current traffic split under ``refit.traffic``);
- ``POST /v2/models/{name}/infer``: routed to the champion or the canary (see
  `refit.serving.routing`);
- ``POST /v2/models/{name}/versions/{version}/infer``: pinned to one version;
- ``POST /v2/models/{name}/feedback``: A/B feedback events, appended to the server's feedback
  file (`refit.serving.feedback`; 404 when the server has none);
- ``GET /metrics``: Prometheus text (see `refit.serving.metrics`).

Errors answer ``{"error": "..."}`` (the V2 error format): 400 for a bad request (the message
names the input: bad JSON, ``NaN``/``Infinity``, a number out of range, a wrong shape or type),
404 for an unknown model or version, 413 for a request over the server's `RequestLimits` (a body
over ``max_body_bytes`` is refused from its ``Content-Length``, or as soon as the bytes read
pass the limit, before any parsing), 415 for a body that is not JSON by its ``Content-Type``,
500 for a version that cannot be loaded (a sha256 mismatch, say), an injected fault or a server
bug, 503 when nothing can serve yet. Only 5xx are server faults: the canary error-rate checks
count ``code=~"5.."`` (see `refit.serving.metrics`), so a client's mistakes never fail a rollout.

This module maps the endpoints onto a `refit.serving.server.ModelServer`, which answers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypedDict, Unpack

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from refit.monitoring.predictions import PredictionLog
from refit.serving.faults import Fault
from refit.serving.protocol import RequestLimits
from refit.serving.server import ModelServer, _Answer

__all__ = ["ServerOptions", "create_app"]

#: Server name in the ``GET /v2`` metadata.
SERVER_NAME = "refit-model-server"


class ServerOptions(TypedDict, total=False):
    """`ModelServer`'s keyword arguments (see its Args), as `create_app` takes them."""

    seed: int
    faults: Mapping[Any, Fault | Mapping[str, Any]] | None
    state_refresh_seconds: float
    clock: Callable[[], float]
    limits: RequestLimits
    prediction_log: PredictionLog | None
    feedback_path: str | None
    feedback_token: bytes | None


def create_app(store_uri: str, model_name: str, **options: Unpack[ServerOptions]) -> FastAPI:
    """Build the local model server's ASGI app for one model of refit's registry.

    Args:
        store_uri: refit's store (local folder, ``file://`` or ``gs://``).
        model_name: The model to serve.
        **options: `ModelServer`'s keyword arguments: ``seed``, ``faults``,
            ``state_refresh_seconds``, ``clock``, ``limits``, ``prediction_log``,
            ``feedback_path``, ``feedback_token``.

    Returns:
        The app; ``app.state.server`` is its `ModelServer`.

    Raises:
        RegistryError: The store URI or model name is invalid.
        DeployError: A fault or the refresh interval is invalid.
    """
    server = ModelServer(store_uri, model_name, **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(server.warm)
        yield
        server.shadow.close()

    app = FastAPI(title=f"refit model server: {model_name}", lifespan=lifespan)
    app.state.server = server
    app.include_router(_router)
    return app


_router = APIRouter()


def _server(request: Request) -> ModelServer:
    server: ModelServer = request.app.state.server
    return server


@_router.get("/v2/health/live")
async def _live() -> dict[str, bool]:
    return {"live": True}


async def _ready_answer(request: Request, name: str | None, version: str | None) -> JSONResponse:
    server = _server(request)
    try:
        if name is not None:
            server.check_name(name)
        pinned = None if version is None else server.check_version(version)
        await run_in_threadpool(server.readiness, pinned)
    except _Answer as exc:
        if exc.status == 503:
            return exc.response(ready=False)
        return exc.response()
    return JSONResponse({"ready": True} if name is None else {"name": name, "ready": True})


@_router.get("/v2/health/ready")
async def _ready(request: Request) -> JSONResponse:
    return await _ready_answer(request, None, None)


@_router.get("/v2/models/{name}/ready")
async def _model_ready(name: str, request: Request) -> JSONResponse:
    return await _ready_answer(request, name, None)


@_router.get("/v2/models/{name}/versions/{version}/ready")
async def _version_ready(name: str, version: str, request: Request) -> JSONResponse:
    return await _ready_answer(request, name, version)


@_router.get("/v2")
async def _server_metadata() -> dict[str, Any]:
    from refit import __version__

    return {"name": SERVER_NAME, "version": __version__, "extensions": []}


async def _metadata_answer(request: Request, name: str, version: str | None) -> JSONResponse:
    server = _server(request)
    try:
        server.check_name(name)
        pinned = None if version is None else server.check_version(version)
        return JSONResponse(await run_in_threadpool(server.metadata, pinned))
    except _Answer as exc:
        return exc.response()


@_router.get("/v2/models/{name}")
async def _metadata(name: str, request: Request) -> JSONResponse:
    return await _metadata_answer(request, name, None)


@_router.get("/v2/models/{name}/versions/{version}")
async def _version_metadata(name: str, version: str, request: Request) -> JSONResponse:
    return await _metadata_answer(request, name, version)


@_router.post("/v2/models/{name}/infer")
async def _infer(name: str, request: Request) -> JSONResponse:
    return await _server(request).infer(name, None, request)


@_router.post("/v2/models/{name}/versions/{version}/infer")
async def _infer_version(name: str, version: str, request: Request) -> JSONResponse:
    return await _server(request).infer(name, version, request)


@_router.post("/v2/models/{name}/feedback")
async def _feedback(name: str, request: Request) -> JSONResponse:
    return await _server(request).record_feedback(name, request)


@_router.get("/metrics")
async def _metrics(request: Request) -> Response:
    server = _server(request)
    server.router.state()  # the traffic gauge follows the rollout even without requests
    return Response(server.metrics.render(), media_type=CONTENT_TYPE_LATEST)
