"""Feedback events for A/B tests: ``POST /v2/models/{name}/feedback`` appends them to a file.

A feedback event names the unit (the V2 request ``id`` the server answered, or the one it
generated and returned) and a value (a conversion 0/1, revenue...). The server appends the
events it accepts to a JSON Lines file, one ``{"id", "value", "ts"}`` object a line; the A/B
analysis (`refit.deploy.abtest`) reads that file and finds each event's arm from its id alone.

Body: one event ``{"id": "r1", "value": 1}`` or ``{"events": [...]}`` with at most
``max_events`` events. Each id is a non-empty string of at most 256 characters, each value a
finite number. A request with any bad event is refused whole (400, naming the event and the
field), so a client never has to guess which of its events were kept. The file is capped at
``max_file_bytes``: past it, events are refused (413) rather than filling the disk.

Feedback moves promotions, so it is authenticated: the server takes feedback only with a
secret (``REFIT_FEEDBACK_TOKEN``, or the file ``REFIT_FEEDBACK_TOKEN_FILE`` names: a mounted
Kubernetes secret; :func:`load_feedback_token`), and each feedback request carries it as
``Authorization: Bearer <secret>`` (compared in constant time); a request without it is
refused (401) before its body is read. Inference stays open, as KServe's is.

Every accepted request is one ``write`` on a file opened with ``O_APPEND``: requests never
interleave within a line, and a process killed mid-write leaves at most a torn last line, which
the reader skips.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from refit.errors import DataError

__all__ = [
    "FEEDBACK_TOKEN_ENV",
    "FEEDBACK_TOKEN_FILE_ENV",
    "FeedbackFull",
    "FeedbackLog",
    "check_feedback_token",
    "load_feedback_token",
    "parse_feedback",
]

FEEDBACK_TOKEN_ENV = "REFIT_FEEDBACK_TOKEN"
FEEDBACK_TOKEN_FILE_ENV = "REFIT_FEEDBACK_TOKEN_FILE"
#: Shortest secret accepted (as the trigger service's hook secret).
MIN_TOKEN_CHARS = 16

#: Longest unit id accepted (as `refit.deploy.abtest.MAX_ID_CHARS`).
MAX_ID_CHARS = 256


def load_feedback_token(environ: dict[str, str] | None = None) -> bytes:
    """The feedback secret from ``REFIT_FEEDBACK_TOKEN`` or the file ``..._FILE`` names.

    Raises:
        DataError: Neither is set, the file is unreadable or empty, or the secret is shorter
            than 16 characters.
    """
    env = dict(os.environ) if environ is None else environ
    token = env.get(FEEDBACK_TOKEN_ENV, "")
    if not token and env.get(FEEDBACK_TOKEN_FILE_ENV):
        path = Path(env[FEEDBACK_TOKEN_FILE_ENV])
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DataError(
                f"cannot read the feedback token file {path} named by "
                f"{FEEDBACK_TOKEN_FILE_ENV}: {exc}"
            ) from None
    if not token:
        raise DataError(
            f"feedback needs a secret: set {FEEDBACK_TOKEN_ENV}, or {FEEDBACK_TOKEN_FILE_ENV} to "
            "a file holding it; A/B feedback moves promotions, so the server takes none "
            "unauthenticated"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise DataError(
            f"the feedback secret is too short (< {MIN_TOKEN_CHARS} characters): "
            f"{FEEDBACK_TOKEN_ENV} / {FEEDBACK_TOKEN_FILE_ENV}"
        )
    return token.encode()


def check_feedback_token(secret: bytes, authorization: str | None) -> str:
    """Why a feedback request is not authenticated, or ``""`` when it is."""
    if not authorization:
        return "missing Authorization: Bearer token (the feedback secret)"
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), secret):
        return "bearer token does not match the feedback secret"
    return ""


class FeedbackFull(DataError):
    """The feedback file reached its size cap."""


def parse_feedback(data: Any, max_events: int) -> list[tuple[str, float]]:
    """Check a feedback body and return its ``(id, value)`` pairs.

    Raises:
        DataError: Not an event or ``{"events": [...]}``, too many events, or an event with a
            bad ``id`` or ``value`` (the message names it).
    """
    if isinstance(data, dict) and "events" in data:
        events = data["events"]
        if not isinstance(events, list):
            raise DataError("feedback 'events' must be a list of {id, value} objects")
    elif isinstance(data, dict):
        events = [data]
    else:
        raise DataError("feedback must be an {id, value} object or {'events': [...]}")
    if not events:
        raise DataError("feedback has no events")
    if len(events) > max_events:
        raise DataError(f"feedback has {len(events)} events; at most {max_events} per request")
    return [_feedback_event(event, f"feedback event {i}") for i, event in enumerate(events)]


def _feedback_event(event: Any, where: str) -> tuple[str, float]:
    """The ``(id, value)`` of one feedback event.

    Raises:
        DataError: Not an object, an unknown field, or a bad ``id`` or ``value``.
    """
    if not isinstance(event, dict):
        raise DataError(f"{where} must be an object with 'id' and 'value'")
    unknown = sorted(set(event) - {"id", "value"})
    if unknown:
        raise DataError(f"{where} has unknown field(s) {unknown}; known: ['id', 'value']")
    uid, value = event.get("id"), event.get("value")
    if not isinstance(uid, str) or not 0 < len(uid) <= MAX_ID_CHARS:
        raise DataError(
            f"{where}: 'id' must be the request id, a string of 1-{MAX_ID_CHARS} "
            f"characters, got {str(uid)[:40]!r}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: 'value' must be a number, got {str(value)[:40]!r}")
    if not math.isfinite(value):
        raise DataError(f"{where}: 'value' must be finite, got {value!r}")
    return uid, float(value)


class FeedbackLog:
    """Appends accepted feedback events to a JSON Lines file.

    Args:
        path: The file (created with its folder when missing).
        max_events: Events one request may carry.
        max_file_bytes: The file's size cap.
    """

    def __init__(
        self, path: str | Path, *, max_events: int = 1000, max_file_bytes: int = 1 << 30
    ) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_file_bytes = max_file_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, data: Any) -> int:
        """Check and append the events of one request; return how many were written.

        Raises:
            DataError: A bad body (nothing is written).
            FeedbackFull: The file is at its cap (nothing is written).
        """
        events = parse_feedback(data, self.max_events)
        ts = round(time.time(), 3)
        text = "".join(
            json.dumps({"id": uid, "value": value, "ts": ts}, separators=(",", ":")) + "\n"
            for uid, value in events
        ).encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size + len(text) > self.max_file_bytes:
                    raise FeedbackFull(
                        f"feedback file {self.path} is at its cap of {self.max_file_bytes} "
                        "bytes; end the experiment or start the server with a new file"
                    )
                os.write(fd, text)
            finally:
                os.close(fd)
        return len(events)
