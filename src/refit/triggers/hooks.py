"""The trigger service's event hooks, each turning a body into events the service decides.

``POST /hooks/alertmanager``, ``/hooks/storage``, ``/hooks/generic`` and ``/hooks/stream`` (see
`refit.triggers.app` for the answers).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from refit.triggers.http import HookContext
from refit.triggers.payloads import (
    TriggerEvent,
    alertmanager_events,
    generic_event,
    storage_event,
)
from refit.triggers.streaming import StreamDetectors, stream_batch

__all__ = ["hooks_router", "stream_router"]


def hooks_router(ctx: HookContext) -> APIRouter:
    """The Alertmanager, storage and generic hooks, deciding through ``ctx``."""
    router = APIRouter()

    @router.post("/hooks/alertmanager")
    async def alertmanager(request: Request) -> Response:
        events = await ctx.parse(request, "alertmanager", alertmanager_events)
        if isinstance(events, Response):
            return events
        if not events:
            return JSONResponse({"decisions": [], "note": "no firing alerts (resolved)"})
        return await ctx.decide_all("alertmanager", events)

    @router.post("/hooks/storage")
    async def storage(request: Request) -> Response:
        return await _storage(ctx, request)

    @router.post("/hooks/generic")
    async def generic(request: Request) -> Response:
        event = await ctx.parse(request, "generic", generic_event)
        if isinstance(event, Response):
            return event
        return await ctx.decide_all("generic", [event])

    return router


async def _storage(ctx: HookContext, request: Request) -> Response:
    """A GCS notification: an event for the model whose storage prefix holds the object."""
    parsed = await ctx.parse(request, "storage", storage_event)
    if isinstance(parsed, Response):
        return parsed
    if parsed is None:
        return JSONResponse({"decisions": [], "note": "not an OBJECT_FINALIZE event"})
    message_id, uri, rows, note = parsed
    model = ctx.service.config.model_for_object(uri)
    if model is None:
        return ctx.reject("storage", "unknown_model", 404, f"no model's storage prefix holds {uri}")
    event = TriggerEvent(
        hook="storage",
        model=model.name,
        dedupe_key=f"storage|{message_id}",
        summary=f"new object {uri} ({note})",
        new_rows=rows,
        data_uri=uri,
    )
    return await ctx.decide_all("storage", [event])


def stream_router(ctx: HookContext, detectors: StreamDetectors) -> APIRouter:
    """``POST /hooks/stream``: a batch fed to its detector (`refit.triggers.streaming`)."""
    router = APIRouter()

    @router.post("/hooks/stream")
    async def stream(request: Request) -> Response:
        batch = await ctx.parse(request, "stream", stream_batch)
        if isinstance(batch, Response):
            return batch
        refused = ctx.unknown_model("stream", [batch.model])
        if refused is not None:
            return refused
        return JSONResponse(await ctx.locked(detectors.process, batch))

    return router
