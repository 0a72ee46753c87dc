"""Hook payloads turned into trigger events.

* ``/hooks/alertmanager``: Alertmanager webhook, payload ``version`` ``"4"``. Each firing alert
  names its model in the ``model`` label (alert labels, else ``commonLabels``). Optional
  annotations ``drift_share`` and ``metric_value`` (numbers, e.g. ``{{ $value }}``) feed the
  policy's observation. Dedupe key: ``groupKey`` and the sorted fingerprints of the firing
  alerts, so Alertmanager's re-sends of the same group are one event.
* ``/hooks/storage``: a Pub/Sub push of a GCS notification. ``message.attributes.eventType``
  must be ``OBJECT_FINALIZE`` (others are acknowledged and ignored); the object
  ``gs://{bucketId}/{objectId}`` is matched to a model by its storage prefixes; the object's
  custom metadata ``rows`` (from ``message.data``, base64 JSON) counts toward the volume
  trigger. Dedupe key: ``message.messageId``.
* ``/hooks/generic``::

      {"event_id": "unique id", "model": "credit-default",
       "reason": "free text", "drift_share": 0.4, "metric_value": 0.71, "new_rows": 5000}

  ``event_id`` and ``model`` are required, the rest optional. Dedupe key: ``event_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from refit.errors import RefitError


class PayloadError(RefitError, ValueError):
    """A hook body is malformed (answered 422 with this message)."""


@dataclass(frozen=True)
class TriggerEvent:
    """One event that asks for a decision about one model.

    Attributes:
        hook: ``alertmanager``, ``storage``, ``generic``, ``schedule`` or ``stream`` (a
            streaming change detector fired: `refit.triggers.streaming`).
        model: Model name.
        dedupe_key: Identical keys are one event.
        summary: Readable description (alert names, object URI, reason).
        drift_share: Drift share carried by the event, if any.
        metric_value: Monitored metric carried by the event, if any.
        new_rows: New rows the event reports.
        data_uri: Data the event points at (a storage object), if any.
        force: Launch without asking the policy (scheduled runs: the pipeline decides).
    """

    hook: str
    model: str
    dedupe_key: str
    summary: str
    drift_share: float | None = None
    metric_value: float | None = None
    new_rows: int = 0
    data_uri: str | None = None
    force: bool = False


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"body holds {name}, which is not JSON; send a finite number or null")


def parse_json(body: bytes | str, where: str = "body") -> Any:
    """Decode strict JSON (no ``NaN``/``Infinity``).

    Raises:
        PayloadError: Not UTF-8 JSON, a ``NaN``/``Infinity`` constant, an integer over 4300
            digits, or nesting too deep for the parser.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError(f"{where} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int over 4300 digits
        raise PayloadError(f"{where} is not valid JSON: {exc}") from None


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a client's value echoed in a message."""
    try:
        text = repr(value)
    except ValueError:  # an int over 4300 digits
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where} must be a non-empty string, got {_short(value)}")
    return value


def _number(value: Any, where: str, low: float | None = None, high: float | None = None) -> float:
    given = value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PayloadError(f"{where} must be a number, got {_short(given)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where} must be a finite number, got {_short(given)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError(f"{where} must be a finite number, got {_short(given)}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise PayloadError(f"{where} must be in [{low}, {high}], got {_short(given)}")
    return number


def _rows(value: Any, where: str) -> int:
    number = _number(value, where, 0)
    if not number.is_integer():
        raise PayloadError(f"{where} must be a whole number, got {_short(value)}")
    return int(number)


def alertmanager_events(data: Any) -> list[TriggerEvent]:
    """Events of an Alertmanager v4 webhook: one per model with firing alerts.

    Raises:
        PayloadError: Not a version 4 payload, or a field of the wrong shape or missing.
    """
    data = _obj(data, "body")
    version = data.get("version")
    if version != "4":
        raise PayloadError(f'version must be "4" (Alertmanager webhook v4), got {_short(version)}')
    group_key = _str(data.get("groupKey"), "groupKey")
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("alerts must be a non-empty list")
    common = _obj(data.get("commonLabels") or {}, "commonLabels")
    by_model = _firing_by_model(alerts, common)
    return [_alert_event(group_key, model, firing) for model, firing in sorted(by_model.items())]


def _firing_by_model(alerts: list[Any], common: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Check every alert; the firing ones grouped by their ``model`` label."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for i, alert in enumerate(alerts):
        alert = _obj(alert, f"alerts[{i}]")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(
                f"alerts[{i}].status must be firing or resolved, got {_short(status)}"
            )
        labels = _obj(alert.get("labels") or {}, f"alerts[{i}].labels")
        _str(alert.get("fingerprint"), f"alerts[{i}].fingerprint")
        model = labels.get("model") or common.get("model")
        if not model:
            raise PayloadError(f"alerts[{i}] has no 'model' label (nor commonLabels.model)")
        if status == "firing":
            by_model.setdefault(str(model), []).append(alert)
    return by_model


def _alert_event(group_key: str, model: str, firing: list[dict[str, Any]]) -> TriggerEvent:
    """The event of one model's firing alerts: the largest drift share, the lowest metric."""
    fingerprints = sorted(a["fingerprint"] for a in firing)
    drift = metric = None
    for j, a in enumerate(firing):
        ann = _obj(a.get("annotations") or {}, f"alerts[{j}].annotations")
        if "drift_share" in ann:
            value = _number(ann["drift_share"], "annotations.drift_share", 0.0, 1.0)
            drift = value if drift is None else max(drift, value)
        if "metric_value" in ann:
            value = _number(ann["metric_value"], "annotations.metric_value")
            metric = value if metric is None else min(metric, value)
    names = sorted({str((a.get("labels") or {}).get("alertname", "alert")) for a in firing})
    return TriggerEvent(
        hook="alertmanager",
        model=model,
        dedupe_key=f"am|{group_key}|{model}|{','.join(fingerprints)}",
        summary=f"alert(s) {', '.join(names)} firing ({len(firing)})",
        drift_share=drift,
        metric_value=metric,
    )


def storage_event(data: Any) -> tuple[str, str, int, str] | None:
    """The object of a Pub/Sub push of a GCS notification.

    Returns:
        ``(message_id, gs://bucket/object, rows, note)`` for ``OBJECT_FINALIZE``; ``None`` for
        other event types.

    Raises:
        PayloadError: Not a Pub/Sub push body, or a GCS notification missing its attributes.
    """
    data = _obj(data, "body")
    message = _obj(data.get("message"), "message")
    message_id = _str(message.get("messageId") or message.get("message_id"), "message.messageId")
    attributes = _obj(message.get("attributes"), "message.attributes")
    event_type = _str(attributes.get("eventType"), "message.attributes.eventType")
    if event_type != "OBJECT_FINALIZE":
        return None
    bucket = _str(attributes.get("bucketId"), "message.attributes.bucketId")
    name = _str(attributes.get("objectId"), "message.attributes.objectId")
    rows, note = 0, "object has no 'rows' metadata: counted as 0 rows"
    raw = message.get("data")
    if raw:
        try:
            decoded = base64.b64decode(_str(raw, "message.data"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadError(f"message.data is not base64 JSON: {exc}") from None
        meta = parse_json(decoded, "message.data (base64 JSON)")
        custom = _obj(_obj(meta, "message.data").get("metadata") or {}, "message.data.metadata")
        if "rows" in custom:
            rows = _rows(custom["rows"], "message.data.metadata.rows")
            note = f"{rows} new rows"
    return message_id, f"gs://{bucket}/{name}", rows, note


def generic_event(data: Any) -> TriggerEvent:
    """The event of a generic hook body (see the module docstring).

    Raises:
        PayloadError: A missing or wrongly typed field.
    """
    data = _obj(data, "body")
    known = {"event_id", "model", "reason", "drift_share", "metric_value", "new_rows"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PayloadError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    event_id = _str(data.get("event_id"), "event_id")
    model = _str(data.get("model"), "model")
    drift = data.get("drift_share")
    metric = data.get("metric_value")
    return TriggerEvent(
        hook="generic",
        model=model,
        dedupe_key=f"generic|{event_id}",
        summary=str(data.get("reason") or f"generic event {event_id}"),
        drift_share=None if drift is None else _number(drift, "drift_share", 0.0, 1.0),
        metric_value=None if metric is None else _number(metric, "metric_value"),
        new_rows=_rows(data.get("new_rows", 0), "new_rows"),
    )
