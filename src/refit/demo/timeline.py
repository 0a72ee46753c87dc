"""Read a replay's timeline back from the audit log, and render it as HTML."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from refit.audit.events import AuditEvent

Decision = Literal["retrain", "skip", "blocked"]


@dataclass
class WindowRow:
    """One window of a replay, as the demo prints it."""

    window: int
    run_label: str
    rows: int | None = None
    anomalies: int = 0
    drift_share: float | None = None
    drifted: list[str] = field(default_factory=list)
    champion_accuracy: float | None = None
    decision: Decision = "skip"
    reasons: list[str] = field(default_factory=list)
    blessed: bool | None = None
    promoted_version: int | None = None
    live_version: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict (drift share 0.0 and live version 0 for none)."""
        out = asdict(self)
        out["drift_share"] = 0.0 if self.drift_share is None else self.drift_share
        out["live_version"] = 0 if self.live_version is None else self.live_version
        return out


def _snapshot(row: WindowRow, payload: dict[str, Any]) -> None:
    row.rows = payload["rows"]


def _validation(row: WindowRow, payload: dict[str, Any]) -> None:
    row.anomalies = len(payload["anomalies"])
    if not payload["passed"]:
        row.decision = "blocked"
        row.reasons = [
            f"{a['feature'] or 'dataset'}: {a['description']}" for a in payload["anomalies"]
        ]


def _drift(row: WindowRow, payload: dict[str, Any]) -> None:
    row.drift_share = payload["drift_share"]
    row.drifted = list(payload.get("drifted", []))


def _decision(row: WindowRow, payload: dict[str, Any]) -> None:
    row.decision = "retrain" if payload["retrain"] else "skip"
    row.reasons = list(payload["reasons"])
    if payload.get("metric") == "accuracy":
        row.champion_accuracy = payload.get("champion_metric")


def _evaluation(row: WindowRow, payload: dict[str, Any]) -> None:
    row.blessed = payload["blessed"]
    if not payload["blessed"]:
        row.reasons = row.reasons + [f"not promoted: {r}" for r in payload["reasons"]]


def _promotion(row: WindowRow, payload: dict[str, Any]) -> None:
    row.promoted_version = payload["version"]


#: What each audit event of a run fills in on its window's row.
_FILL: dict[str, Callable[[WindowRow, dict[str, Any]], None]] = {
    AuditEvent.SNAPSHOT: _snapshot,
    AuditEvent.VALIDATION: _validation,
    AuditEvent.DRIFT: _drift,
    AuditEvent.DECISION: _decision,
    AuditEvent.EVALUATION: _evaluation,
    AuditEvent.PROMOTION: _promotion,
}


def window_row(window: int, run_label: str, records: list[dict[str, Any]]) -> WindowRow:
    """Build one window's row from the audit records of its run.

    Args:
        window: Index of the window.
        run_label: The run's label; only records carrying it are read.
        records: Audit-log records (any run; filtered here).

    Returns:
        The row: rows, anomalies, drift, the champion's accuracy, the decision and its reasons,
        and the version promoted in it (``live_version`` is for the caller to fill in).
    """
    row = WindowRow(window=window, run_label=run_label)
    for rec in records:
        payload = rec.get("payload", {})
        if payload.get("run_label") != run_label:
            continue
        fill = _FILL.get(rec["event"])
        if fill is not None:
            fill(row, payload)
    return row


def render_timeline_html(rows: list[WindowRow], title: str) -> str:
    """Render a replay's timeline as one self-contained HTML page (no network, no scripts).

    Args:
        rows: The windows, in order.
        title: Page title.

    Returns:
        The HTML document.
    """
    e = html.escape
    colours = {"retrain": "#1f6feb", "skip": "#57606a", "blocked": "#cf222e"}
    body = []
    for r in rows:
        share = "—" if r.drift_share is None else f"{r.drift_share:.2f}"
        acc = "—" if r.champion_accuracy is None else f"{r.champion_accuracy:.3f}"
        bar = 0 if r.drift_share is None else round(100 * r.drift_share)
        promoted = f" → v{r.promoted_version}" if r.promoted_version else ""
        body.append(
            "<tr>"
            f"<td>{r.window}</td><td>{r.rows if r.rows is not None else '—'}</td>"
            f"<td>{r.anomalies}</td>"
            f"<td><div class=bar><span style='width:{bar}%'></span></div>{share}</td>"
            f"<td>{acc}</td>"
            f"<td><b style='color:{colours[r.decision]}'>{e(r.decision)}</b>{e(promoted)}</td>"
            f"<td>{'<br>'.join(e(x) for x in r.reasons)}</td>"
            f"<td>v{r.live_version if r.live_version else '—'}</td>"
            "</tr>"
        )
    counts = {d: sum(r.decision == d for r in rows) for d in colours}
    summary = ", ".join(f"{n} {d}" for d, n in counts.items())
    last = rows[-1].live_version if rows else None
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328}}
table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}}
th{{background:#f6f8fa}}
.bar{{display:inline-block;width:60px;height:8px;background:#eaeef2;margin-right:6px}}
.bar span{{display:block;height:8px;background:#bf8700}}
</style></head><body>
<h1>{e(title)}</h1>
<p>{len(rows)} windows: {e(summary)}. Live at the end: v{last or "—"}.</p>
<table><thead><tr><th>window</th><th>rows</th><th>anomalies</th><th>drift share</th>
<th>champion accuracy</th><th>decision</th><th>reasons</th><th>live</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
</body></html>
"""
