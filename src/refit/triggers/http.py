"""What every route of the trigger service shares, in one `HookContext`.

Bounded, authenticated reads of a body, counted error answers, and decisions taken one at a
time.

`HookContext` holds the service, the hook secret and the decision lock; `refit.triggers.app`
builds one per app and hands it to each group of routes (`refit.triggers.hooks`,
`refit.triggers.approvals`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from refit.triggers import auth
from refit.triggers.payloads import PayloadError, TriggerEvent, parse_json
from refit.triggers.service import TriggerService, UnknownModelError

__all__ = ["HookContext"]

T = TypeVar("T")


class HookContext:
    """The shared state of the trigger service's routes.

    Args:
        service: The decision logic and state.
        secret: Hook secret (from ``auth.load_secret``).
    """

    def __init__(self, service: TriggerService, secret: bytes) -> None:
        self.service = service
        self.secret = secret
        self.metrics = service.metrics
        self.limit = service.config.max_body_bytes
        # Decisions one at a time, off the event loop: with a store they read the registry
        # (champion, policy state) and append to its audit log, which on gs:// are network
        # calls that must not stall health probes and other requests.
        self.lock = asyncio.Lock()

    def reject(self, hook: str, reason: str, status: int, detail: str) -> JSONResponse:
        """Count a refused request under ``reason`` and answer ``{"detail": detail}``."""
        self.metrics.rejected.labels(hook, reason).inc()
        return JSONResponse({"detail": detail}, status_code=status)

    async def read(self, request: Request, hook: str) -> bytes | JSONResponse:
        """The request's body, or the answer refusing it: 413 over the limit, 401 unauthenticated.

        A declared ``Content-Length`` over ``max_body_bytes`` is refused without reading;
        otherwise the body is refused as soon as the bytes read pass the limit.
        """
        self.metrics.received.labels(hook).inc()
        limit = self.limit
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return self.reject(
                hook,
                "too_large",
                413,
                f"body of {int(declared)} bytes exceeds the limit of {limit} (max_body_bytes)",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return self.reject(
                    hook,
                    "too_large",
                    413,
                    f"body exceeds the limit of {limit} bytes (max_body_bytes)",
                )
        why = auth.check(
            self.secret,
            request.headers.get("authorization"),
            request.headers.get(auth.SIGNATURE_HEADER),
            bytes(body),
        )
        if why:
            return self.reject(hook, "unauthorized", 401, f"unauthorized: {why}")
        return bytes(body)

    async def parse(
        self, request: Request, hook: str, parse: Callable[[Any], T]
    ) -> T | JSONResponse:
        """Read the body (see `read`), decode its JSON and check it with ``parse``.

        Returns:
            What ``parse`` returns, or the answer refusing the request (422 for a
            `PayloadError`, with its reason).
        """
        body = await self.read(request, hook)
        if isinstance(body, Response):
            return body
        try:
            return parse(parse_json(body))
        except PayloadError as exc:
            return self.reject(hook, "malformed", 422, str(exc))

    def unknown_model(self, hook: str, models: Iterable[str]) -> JSONResponse | None:
        """The 404 answer when one of ``models`` is not configured, else None."""
        try:
            for model in models:
                self.service.model(model)
        except UnknownModelError as exc:
            return self.reject(hook, "unknown_model", 404, str(exc))
        return None

    async def decide_all(self, hook: str, events: list[TriggerEvent]) -> JSONResponse:
        """Decide ``events`` one at a time; 404 (nothing decided) if one names no model."""
        refused = self.unknown_model(hook, (e.model for e in events))
        if refused is not None:
            return refused
        async with self.lock:
            decisions = [await run_in_threadpool(self.service.handle, e) for e in events]
        return JSONResponse({"decisions": decisions})

    async def locked(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` in a worker thread, holding the decision lock."""
        async with self.lock:
            return await run_in_threadpool(fn, *args)
