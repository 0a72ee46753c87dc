"""Human approval over HTTP: the approve and reject routes of the trigger service.

``POST /approvals/{model}/{version}/approve`` and ``.../reject`` (`refit.governance.approval`;
the answers are listed in `refit.triggers.app`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from refit.errors import RefitError, RegistryError
from refit.triggers.http import HookContext
from refit.triggers.payloads import PayloadError

__all__ = ["approvals_router"]

#: The hook label of approval requests in the service's metrics.
HOOK = "approvals"


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


async def _approval(
    ctx: HookContext, request: Request, model: str, version: str, action: str
) -> Response:
    """Check and carry out one approval request."""
    checked = await ctx.parse(request, HOOK, lambda data: _approval_body(data, action))
    if isinstance(checked, Response):
        return checked
    by, reason = checked
    if not version.isdigit() or int(version) < 1:
        return ctx.reject(
            HOOK, "malformed", 422, f"version must be a positive integer, got {version!r}"
        )
    refused = ctx.unknown_model(HOOK, [model])
    if refused is not None:
        return refused
    store_uri = ctx.service.config.store_uri
    if not store_uri:
        return ctx.reject(
            HOOK,
            "no_store",
            503,
            "approvals need the registry: set store_uri in the trigger config",
        )
    client = request.client.host if request.client else ""
    status, payload = await run_in_threadpool(
        _decide_approval, str(store_uri), model, int(version), action, by, reason, client
    )
    if status != 200:
        ctx.metrics.rejected.labels(HOOK, f"http_{status}").inc()
    return JSONResponse(payload, status_code=status)


def approvals_router(ctx: HookContext) -> APIRouter:
    """The approve and reject routes."""
    router = APIRouter()

    @router.post("/approvals/{model}/{version}/approve")
    async def approve_version(request: Request, model: str, version: str) -> Response:
        return await _approval(ctx, request, model, version, "approve")

    @router.post("/approvals/{model}/{version}/reject")
    async def reject_version(request: Request, model: str, version: str) -> Response:
        return await _approval(ctx, request, model, version, "reject")

    return router
