"""The release record of one retraining iteration: what happened, and the audit records behind it.

`release_record` reads a model's hash-chained audit log, picks the iteration of one run
(`refit.governance.history`), and lays it out in sections an auditor reads top to bottom:
trigger and reasons, data, validation and drift, training, evaluation, fairness and serving
checks, approval, registration and rollout, and the chain check. Every line names the hash of the
audit record it comes from, so each claim can be checked against the log (``refit audit verify``
checks the log itself; the record's last section says whether that check passed when the record
was made). A step that did not run, or an event this version of refit does not know, never
fails the record: its section says "not run", unknown events are listed under "Other records".

The retraining pipeline's exit handler passes how KFP says the run ended (`RunStatus`, from
``dsl.PipelineTaskFinalStatus``): a failed or cancelled run's record opens with a "Run status"
section that names the task that failed and why, as far as the audit log and KFP tell, and a
run that failed before its first audit record still gets a record.

`ReleaseRecord.to_markdown` and `ReleaseRecord.to_html` render it (the HTML is one
self-contained page: inline style, no script, no network, every text escaped, so it renders in
KFP's sandboxed iframe); `write_release_record` is the pipeline step that writes both.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from refit.audit.events import RUN_EVENTS, AuditEvent
from refit.errors import RegistryError
from refit.governance.history import VERSION_EVENTS, Entry, Iteration, read_history
from refit.registry import ModelRegistry, open_registry

NOT_RUN: Final = "not run"
#: Events a section of the record renders; any other event of the run goes to "Other records".
KNOWN_EVENTS: Final = VERSION_EVENTS | RUN_EVENTS
#: Gate check kinds shown with the fairness and serving checks rather than the evaluation.
_FAIRNESS_SERVING_KINDS: Final = ("fairness", "serving", "latency", "throughput", "parity")
_SKIP_KEYS: Final = frozenset({"run_label", "model"})
#: Event of the audit record the retraining pipeline's first task writes when it refuses a run.
REFUSAL_EVENT: Final = AuditEvent.RUN_REFUSED
#: The retraining pipeline's tasks in order, each with the audit event it ends with: a failed
#: run stopped in the first task after the last one the log holds a record of.
PIPELINE_STEPS: Final = (
    ("start-run", AuditEvent.RUN_REFUSED),
    ("snapshot-data", AuditEvent.SNAPSHOT),
    ("anonymize-data", AuditEvent.ANONYMIZATION),
    # validate-data and detect-drift are pure (no store): decide-retrain records their results
    # together with its decision, and record-results a blocked window's validation.
    ("resolve-champion, validate-data, detect-drift or decide-retrain", AuditEvent.VALIDATION),
    ("decide-retrain", AuditEvent.DRIFT),
    ("decide-retrain", AuditEvent.DECISION),
    ("train-model", AuditEvent.TRAINING),
    ("evaluate-model or record-results", AuditEvent.EVALUATION),
    ("register-model", AuditEvent.REGISTRATION),
    ("promote-model or canary-rollout", AuditEvent.PROMOTION),
)
#: Final states of a KFP task (``PipelineTaskFinalStatus.state``).
FINAL_STATES: Final = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Longest error message kept from KFP's final status (a traceback can be long).
MAX_ERROR_CHARS: Final = 2000


@dataclass(frozen=True)
class RunStatus:
    """How KFP says a run's body ended: the exit handler's ``dsl.PipelineTaskFinalStatus``.

    Attributes:
        state: ``SUCCEEDED``, ``FAILED`` or ``CANCELLED`` (others KFP may add are kept as given).
        task: The KFP task the status is about (the exit handler's group of tasks).
        error: KFP's error message, empty when there is none.
    """

    state: str
    task: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.state, str) or not self.state.strip():
            raise RegistryError(f"run status state must be a non-empty string, got {self.state!r}")
        object.__setattr__(self, "state", self.state.strip().upper())
        object.__setattr__(self, "task", str(self.task or ""))
        error = str(self.error or "")
        if len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + " …(cut)"
        object.__setattr__(self, "error", error)

    @property
    def failed(self) -> bool:
        """Whether the run did not succeed (failed, cancelled, or any state but SUCCEEDED)."""
        return self.state != "SUCCEEDED"


@dataclass(frozen=True)
class Line:
    """One line of a section: a field, its value and the audit records that back it.

    Attributes:
        label: What the line states.
        value: The value, as text.
        hashes: Hashes of the audit records the value comes from.
    """

    label: str
    value: str
    hashes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"label": self.label, "value": self.value, "hashes": list(self.hashes)}


@dataclass(frozen=True)
class Section:
    """One section of the record.

    Attributes:
        title: The section's heading.
        lines: Its lines; empty when the step did not run.
        note: Shown instead of the lines when there are none ("not run", "not requested").
    """

    title: str
    lines: tuple[Line, ...] = ()
    note: str = NOT_RUN

    @property
    def ran(self) -> bool:
        """Whether the section has anything to show."""
        return bool(self.lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "title": self.title,
            "ran": self.ran,
            "note": "" if self.ran else self.note,
            "lines": [line.to_dict() for line in self.lines],
        }


@dataclass
class ReleaseRecord:
    """The release record of one run of one model.

    Attributes:
        model: The model's name.
        run_label: The run's label.
        outcome: How the iteration ended ("promoted v2", "blocked by validation"...).
        sections: The record's sections, in reading order (the audit chain last).
        chain_ok: Whether `AuditLog.verify` found the whole log intact.
        chain_problems: What it found otherwise.
        audit_log: Where the audit log lives.
        records: How many records the log held.
        head_hash: The hash of the log's last record (pins the log this record was read from).
        iteration: The iteration the record describes.
        status: How KFP says the run ended, when the exit handler passed it.
    """

    model: str
    run_label: str
    outcome: str
    sections: list[Section]
    chain_ok: bool
    chain_problems: list[str]
    audit_log: str
    records: int
    head_hash: str
    iteration: Iteration = field(repr=False)
    status: RunStatus | None = None

    @property
    def chain_line(self) -> str:
        """The one-line verdict of the chain check.

        "audit chain verified: N records intact, head HASH" or "audit chain BROKEN: ...".
        """
        return self.section("Audit chain").lines[0].value

    def section(self, title: str) -> Section:
        """Return the section with this title.

        Raises:
            KeyError: No such section.
        """
        for s in self.sections:
            if s.title == title:
                return s
        raise KeyError(title)

    def hashes(self) -> set[str]:
        """Every audit-record hash the record cites."""
        return {h for s in self.sections for line in s.lines for h in line.hashes}

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict."""
        return {
            "model": self.model,
            "run_label": self.run_label,
            "outcome": self.outcome,
            "status": None
            if self.status is None
            else {"state": self.status.state, "task": self.status.task, "error": self.status.error},
            "chain": {
                "ok": self.chain_ok,
                "line": self.chain_line,
                "problems": list(self.chain_problems),
                "records": self.records,
                "head_hash": self.head_hash,
                "audit_log": self.audit_log,
            },
            "sections": [s.to_dict() for s in self.sections],
        }

    # -- Markdown -----------------------------------------------------------------------------
    def to_markdown(self) -> str:
        """Render the record as Markdown (a table per section; KFP's Output[Markdown])."""
        it = self.iteration
        out = [
            f"# Release record: {_md(self.model)}, run {_md(self.run_label)}",
            "",
            f"**Outcome:** {_md(self.outcome)} · **trigger:** {_md(it.trigger)} · "
            f"**decision:** {_md(it.decision)}",
            "",
            f"**{_md(_capitalise(self.chain_line))}**",
            "",
            f"Audit log: `{_md(self.audit_log)}`. Each line cites the hash of the audit record "
            "it comes from.",
        ]
        for s in self.sections:
            out += ["", f"## {_md(s.title)}", ""]
            if not s.ran:
                out.append(f"_{_md(s.note)}_")
                continue
            out += ["| field | value | audit record |", "|---|---|---|"]
            for line in s.lines:
                cited = " ".join(f"`{h}`" for h in line.hashes) or "—"
                out.append(f"| {_md(line.label)} | {_md(line.value)} | {cited} |")
        return "\n".join(out) + "\n"

    # -- HTML ---------------------------------------------------------------------------------
    def to_html(self) -> str:
        """Render the record as one self-contained HTML page (no script, no network)."""
        e = _esc
        it = self.iteration
        parts = []
        for s in self.sections:
            parts.append(f"<section><h2>{e(s.title)}</h2>")
            if not s.ran:
                parts.append(f'<p class="not-run">{e(s.note)}</p></section>')
                continue
            rows = []
            for line in s.lines:
                cited = "".join(f'<code class="hash">{e(h)}</code>' for h in line.hashes)
                rows.append(
                    f'<tr><th scope="row">{e(line.label)}</th><td>{e(line.value)}</td>'
                    f'<td class="cite">{cited or "—"}</td></tr>'
                )
            parts.append(
                "<table><thead><tr><th>field</th><th>value</th><th>audit record</th></tr>"
                f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
            )
        chain_class = "chain ok" if self.chain_ok else "chain broken"
        title = f"Release record: {self.model}, run {self.run_label}"
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2328}}
h1{{font-size:20px;margin:0 0 8px}}h2{{font-size:16px;margin:20px 0 6px}}
table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}}
thead th{{background:#f6f8fa}}tbody th{{font-weight:600;white-space:nowrap;width:14em}}
td.cite{{width:34em}}
code.hash{{display:block;font:11px/1.3 ui-monospace,monospace;color:#57606a;word-break:break-all}}
.not-run{{color:#57606a;font-style:italic}}
.chain{{padding:6px 10px;border-radius:4px;display:inline-block}}
.chain.ok{{background:#dafbe1;color:#116329}}.chain.broken{{background:#ffebe9;color:#a40e26}}
</style></head><body>
<h1>{e(title)}</h1>
<p class="summary">Outcome: <b>{e(self.outcome)}</b> · trigger: {e(it.trigger)} · decision:
{e(it.decision)}</p>
<p class="{chain_class}">{e(_capitalise(self.chain_line))}</p>
<p>Audit log: <code>{e(self.audit_log)}</code>. Each line cites the hash of the audit record it
comes from.</p>
{"".join(parts)}
</body></html>
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- value formatting


def _fmt(value: Any) -> str:
    """Format a payload value for a line."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
    return str(value)


def _describe(payload: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """Render a payload of unknown shape as ``key=value`` pairs (nested dicts flattened once)."""
    parts = []
    for key, value in payload.items():
        if key in _SKIP_KEYS or key in skip:
            continue
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
            parts.append(f"{key}=({inner})")
        else:
            parts.append(f"{key}={_fmt(value)}")
    return "; ".join(parts) or "—"


def _flatten(prefix: str, value: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """Flatten nested dicts into ``(a.b.c, leaf)`` pairs, three levels deep at most."""
    if isinstance(value, Mapping) and depth < 3:
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
        return out
    return [(prefix, value)]


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.3g} s"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


# --------------------------------------------------------------------------- sections


def _lines_trigger(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    trig = it.trigger_entry
    if trig is not None:
        lines.append(
            Line(
                "Hook",
                f"{trig.get('hook', '')}: {trig.get('trigger', '')} "
                f"(trigger-service run {trig.get('run_id')})",
                (trig.hash,),
            )
        )
    first = it.entries[0] if it.entries else None
    if first is not None:
        lines.append(Line("Run started", first.time, (first.hash,)))
    refusal = it.last(AuditEvent.RUN_REFUSED)
    if refusal is not None:
        lines.append(
            Line(f"Refused by {refusal.get('task', 'start-run')}", refusal.get("reason", "—"),
                 (refusal.hash,))
        )  # fmt: skip
    dec = it.decision_entry
    val = it.validation
    if it.decision == "blocked" and val is not None:
        lines.append(Line("Decision", "blocked: the window failed validation", (val.hash,)))
        for reason in it.reasons:
            lines.append(Line("Reason", reason, (val.hash,)))
    if dec is not None:
        hashes = (dec.hash,) + ((trig.hash,) if trig is not None else ())
        lines.append(Line("Trigger", it.trigger, hashes))
        lines.append(
            Line("Decision", "retrain" if dec.get("retrain") else "no retrain", (dec.hash,))
        )
        for reason in it.reasons if it.decision != "blocked" else []:
            lines.append(Line("Reason", reason, (dec.hash,)))
        metric = it.champion_metric
        if metric is not None:
            who = dec.get("champion_version")
            lines.append(
                Line(
                    "Champion on this window",
                    f"{metric[0]} {metric[1]:.4f}" + (f" (v{who})" if who is not None else ""),
                    (dec.hash,),
                )
            )
    return lines


def _lines_data(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    for snap in it.all(AuditEvent.SNAPSHOT):
        h = (snap.hash,)
        lines.append(Line("Snapshot sha256", _fmt(snap.get("sha256")), h))
        lines.append(Line("Rows", _fmt(snap.get("rows")), h))
        if snap.get("source"):
            lines.append(Line("Source", _fmt(snap.get("source")), h))
    for anon in it.all(AuditEvent.ANONYMIZATION):
        lines.append(Line("Anonymization", _describe(anon.payload), (anon.hash,)))
    training = it.training
    if training is not None and training.get("train_rows") is not None:
        lines.append(Line("Training rows", _fmt(training.get("train_rows")), (training.hash,)))
    return lines


def _lines_validation_drift(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    val = it.validation
    if val is not None:
        anomalies = it.anomalies or []
        verdict = "passed" if val.get("passed") else "failed"
        lines.append(Line("Validation", f"{verdict}, {len(anomalies)} anomalies", (val.hash,)))
        for a in anomalies:
            lines.append(
                Line(
                    "Anomaly",
                    f"{a.get('feature') or 'dataset'}: {a.get('description', '')} "
                    f"({a.get('kind', '')})",
                    (val.hash,),
                )
            )
    drift = it.drift
    if drift is not None:
        share = it.drift_share
        lines.append(
            Line(
                "Drift share",
                "no reference yet (no champion)" if share is None else f"{share:.3f}",
                (drift.hash,),
            )
        )
        lines.append(
            Line("Drifted features", _fmt(it.drifted) if it.drifted else "none", (drift.hash,))
        )
    return lines


def _lines_training(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    attempts = it.all(AuditEvent.TRAINING)
    t = it.training
    if t is None:
        return lines
    h = (t.hash,)
    lines += [
        Line("Trainer", _fmt(t.get("trainer")), h),
        Line("Parameters", _fmt(t.get("params") or {}), h),
        Line("Device", _fmt(t.get("device")), h),
        Line("Wall time", _seconds(t.get("wall_time_s")), h),
        Line(
            "Cost",
            f"{it.cost:.6f}" + (f" over {len(attempts)} attempts" if len(attempts) > 1 else "")
            if it.cost is not None
            else "—",
            tuple(a.hash for a in attempts),
        ),
        Line("Model sha256", _fmt(t.get("sha256")), h),
    ]
    if t.get("resumed_from_round"):
        lines.append(Line("Resumed from round", _fmt(t.get("resumed_from_round")), h))
    for key, value in t.payload.items():
        if key not in {
            "run_label",
            "trainer",
            "params",
            "device",
            "wall_time_s",
            "cost",
            "sha256",
            "resumed_from_round",
            "train_rows",
        }:
            lines.append(Line(key.replace("_", " ").capitalize(), _fmt(value), h))
    return lines


def _interval(data: Any) -> str:
    if not isinstance(data, Mapping):
        return ""
    low, high = data.get("low"), data.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return ""
    conf = data.get("confidence")
    words = [f"{conf:.0%}" if isinstance(conf, int | float) else "", str(data.get("method") or "")]
    tail = " ".join(w for w in words if w)
    return f" [{low:.4g}, {high:.4g}]" + (f" ({tail})" if tail else "")


def _metric_intervals(payload: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    intervals = payload.get("intervals")
    if not isinstance(intervals, Mapping):
        return {}
    found = intervals.get(side)
    return found if isinstance(found, Mapping) else {}


def _lines_evaluation(it: Iteration) -> list[Line]:
    ev = it.evaluation
    if ev is None:
        return []
    h = (ev.hash,)
    p = ev.payload
    verdict = "blessed" if p.get("blessed") else "not blessed"
    if p.get("first_run"):
        verdict += " (first model: absolute thresholds only, no champion to compare)"
    lines = [Line("Gate", verdict, h)]
    challenger = p["challenger"] if isinstance(p.get("challenger"), Mapping) else {}
    champion = p["champion"] if isinstance(p.get("champion"), Mapping) else {}
    if p.get("champion_version") is not None:
        lines.append(Line("Compared with", f"champion v{p.get('champion_version')}", h))
    n_rows = challenger.get("n_rows")
    if n_rows is not None:
        lines.append(
            Line(
                "Holdout rows", _fmt(n_rows) if not isinstance(n_rows, float) else f"{n_rows:g}", h
            )
        )
    ci_challenger = _metric_intervals(p, "challenger")
    ci_champion = _metric_intervals(p, "champion")
    paired = p["paired"] if isinstance(p.get("paired"), Mapping) else {}
    has_intervals = bool(ci_challenger or ci_champion or paired)
    for name in sorted(set(challenger) | set(ci_challenger)):
        if name == "n_rows":
            continue
        value = challenger.get(name, (ci_challenger.get(name) or {}).get("value"))
        text = f"challenger {_fmt(value)}{_interval(ci_challenger.get(name))}"
        if name in champion or name in ci_champion:
            other = champion.get(name, (ci_champion.get(name) or {}).get("value"))
            text += f" · champion {_fmt(other)}{_interval(ci_champion.get(name))}"
        if name in paired and isinstance(paired[name], Mapping):
            diff = paired[name].get("value")
            text += f" · difference {_fmt(diff)}{_interval(paired[name])}"
        lines.append(Line(name, text, h))
    if challenger and not has_intervals:
        lines.append(Line("Intervals", "not recorded in this evaluation's audit record", h))
    tests = p.get("tests")
    if isinstance(tests, Mapping):
        for name, value in sorted(tests.items()):
            if isinstance(value, int | float) and not isinstance(value, bool):
                text = f"p = {value:.4g}"
            elif isinstance(value, Mapping):
                text = _describe(value)
            else:
                text = f"not run: {value}"
            lines.append(Line(f"Test: {name}", text, h))
    for reason in _gate_reasons(p):
        if not _fairness_serving_reason(reason):
            lines.append(Line("Gate reason", reason, h))
    return lines


def _gate_reasons(payload: Mapping[str, Any]) -> list[str]:
    found = payload.get("reasons")
    return [str(r) for r in found] if isinstance(found, list) else []


def _fairness_serving_reason(reason: str) -> bool:
    """Whether a gate reason is the verdict of its fairness or serving section."""
    return reason.lower().startswith(("fairness", "serving"))


def _checks(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = payload.get("checks")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def _lines_fairness_serving(it: Iteration) -> list[Line]:
    ev = it.evaluation
    if ev is None:
        return []
    h = (ev.hash,)
    lines: list[Line] = []
    for key in ("fairness", "serving"):
        section = ev.get(key)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            lines.append(Line(key.capitalize(), _fmt(section), h))
            continue
        for path, value in _flatten("", section):
            lines.append(Line(f"{key.capitalize()}: {path}", _fmt(value), h))
    for reason in _gate_reasons(ev.payload):
        if _fairness_serving_reason(reason):
            lines.append(Line("Gate verdict", reason, h))
    for check in _checks(ev.payload):
        if str(check.get("kind", "")) in _FAIRNESS_SERVING_KINDS:
            verdict = "passed" if check.get("passed") else "FAILED"
            lines.append(
                Line(
                    f"Check: {check.get('metric', '')}",
                    f"{verdict}: {check.get('detail', '')}",
                    h,
                )
            )
    return lines


def _lines_approval(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    for e in it.entries:
        p = e.payload
        if e.event == AuditEvent.APPROVAL_REQUESTED:
            approvers = p.get("approvers") or []
            lines.append(
                Line(
                    "Approval requested",
                    f"v{p.get('version')}, expires {p.get('expires_at', '—')}; approvers: "
                    + (", ".join(map(str, approvers)) if approvers else "anyone"),
                    (e.hash,),
                )
            )
        elif e.event in (AuditEvent.APPROVAL, AuditEvent.REJECTION):
            label = "Approved" if e.event == AuditEvent.APPROVAL else "Rejected"
            if e.event == AuditEvent.REJECTION and p.get("timed_out"):
                label = "Rejected (timed out)"
            reason = f": {p.get('reason')}" if p.get("reason") else ""
            extra = _describe(
                p,
                skip=(
                    "version",
                    "by",
                    "reason",
                    "at",
                    "requested_at",
                    "expires_at",
                    "timed_out",
                ),
            )
            text = f"v{p.get('version')} by {p.get('by', '—')} at {p.get('at', e.time)}{reason}"
            lines.append(Line(label, text + ("" if extra == "—" else f" ({extra})"), (e.hash,)))
    return lines


def _lines_rollout(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    for e in it.entries:
        p = e.payload
        h = (e.hash,)
        if e.event == AuditEvent.REGISTRATION:
            parent = p.get("parent_version")
            lines.append(
                Line(
                    "Registered",
                    f"v{p.get('version')} (model sha256 {p.get('sha256', '—')}, "
                    f"parent {'v' + str(parent) if parent is not None else 'none'})",
                    h,
                )
            )
        elif e.event == AuditEvent.CANARY_STARTED:
            steps = p.get("steps") or []
            lines.append(
                Line(
                    "Canary started",
                    f"v{p.get('version')} on target {p.get('target', '—')}, steps "
                    + " → ".join(f"{s}%" for s in steps)
                    + f", primary {'v' + str(p['previous']) if p.get('previous') else 'none'}",
                    h,
                )
            )
        elif e.event == AuditEvent.CANARY_STEP:
            stage = p.get("stage", "canary")
            if stage == "shadow":
                lines.append(Line("Shadow", "copies of the champion's requests, no traffic", h))
            elif stage == "ab_test":
                lines.append(Line("A/B test", f"{p.get('percent')}% of units to the challenger", h))
            else:
                lines.append(
                    Line("Canary step", f"{p.get('percent')}% of traffic to the canary", h)
                )
        elif e.event == AuditEvent.AB_TEST:
            lines.append(Line("A/B result", _ab_result(p), h))
        elif e.event == AuditEvent.CANARY_CHECK:
            verdict = "passed" if p.get("passed") else "FAILED"
            numbers = ", ".join(
                f"{k.replace('_', ' ')} {_fmt(p[k])}"
                for k in ("value", "primary_value", "threshold")
                if p.get(k) is not None
            )
            detail = f" — {p['detail']}" if p.get("detail") else ""
            lines.append(
                Line(
                    "Shadow check"
                    if p.get("stage") == "shadow"
                    else f"Check at {p.get('percent')}%",
                    f"{p.get('name', 'check')} {verdict}"
                    + (f" ({numbers})" if numbers else "")
                    + detail,
                    h,
                )
            )
        elif e.event == AuditEvent.PROMOTION:
            prev = p.get("previous")
            lines.append(
                Line(
                    "Promoted",
                    f"v{p.get('version')} live (previous {'v' + str(prev) if prev else 'none'})"
                    + (f": {p['reason']}" if p.get("reason") else ""),
                    h,
                )
            )
        elif e.event == AuditEvent.ROLLBACK:
            lines.append(
                Line(
                    "Rolled back",
                    f"v{p.get('previous')} → v{p.get('version')}"
                    + (f": {p['reason']}" if p.get("reason") else ""),
                    h,
                )
            )
    latency = it.latency_s
    if latency is not None:
        start = it.trigger_entry or it.entries[0]
        assert it.went_live is not None
        lines.append(
            Line(
                "Retraining latency",
                f"{_seconds(latency)} (trigger {it.trigger_at} → live {it.live_at})",
                (start.hash, it.went_live.hash),
            )
        )
    return lines


def _ab_result(p: Mapping[str, Any]) -> str:
    """The A/B stage's decision with its effect, interval and units planned against observed."""
    test = p.get("test") or {}
    planned = p.get("planned") or {}
    arms = p.get("arms") or {}
    effect = (
        f"effect {_fmt(test.get('effect'))} [{_fmt(test.get('ci_low'))}, "
        f"{_fmt(test.get('ci_high'))}] ({test.get('test', '—')}, p {_fmt(test.get('p_value'))}, "
        f"alpha {_fmt(test.get('alpha'))})"
        if test
        else "no test (too few units)"
    )
    units = ", ".join(
        f"{arm} {(arms.get(arm) or {}).get('n', 0)}/{planned.get(arm, '—')}"
        for arm in ("control", "treatment")
    )
    return (
        f"{p.get('decision', '—')}: {effect}; units observed/planned {units}; {p.get('reason', '')}"
    )


def _lines_other(it: Iteration) -> list[Line]:
    return [
        Line(e.event, _describe(e.payload), (e.hash,))
        for e in it.entries
        if e.event not in KNOWN_EVENTS
    ]


def _sections(it: Iteration) -> list[Section]:
    blocked = "not run: the window was blocked by validation"
    skipped = "not run: no retrain"
    late = {"blocked": blocked, "skip": skipped}.get(it.decision, NOT_RUN)
    release = late
    if it.blessed is False:
        release = "not run: the gate did not bless the challenger"
    sections = [
        Section("Trigger and reasons", tuple(_lines_trigger(it))),
        Section("Data", tuple(_lines_data(it))),
        Section("Validation and drift", tuple(_lines_validation_drift(it))),
        Section("Training", tuple(_lines_training(it)), late),
        Section("Evaluation", tuple(_lines_evaluation(it)), late),
        Section("Fairness and serving checks", tuple(_lines_fairness_serving(it))),
        Section(
            "Approval",
            tuple(_lines_approval(it)),
            "not requested" if it.registered_version is not None else release,
        ),
        Section("Registration and rollout", tuple(_lines_rollout(it)), release),
    ]
    other = _lines_other(it)
    if other:
        sections.append(Section("Other records", tuple(other)))
    return sections


def _stopped_at(it: Iteration) -> tuple[str, str, Entry | None]:
    """Where a failed run stopped: (the task that failed, what the log shows, the last record).

    The task is the one after the last pipeline step the log holds a record of (a refusal
    names the first task itself); a run that decided not to go on has no later step to blame.
    """
    refusal = it.last(REFUSAL_EVENT)
    if refusal is not None:
        return "start-run", f"refused the run: {refusal.get('reason', '—')}", refusal
    done = [i for i, (_, event) in enumerate(PIPELINE_STEPS) if it.last(event) is not None]
    if not done:
        return "start-run or snapshot-data", "no step of this run left an audit record", None
    last = max(done)
    task, event = PIPELINE_STEPS[last]
    entry = it.last(event)
    if last + 1 >= len(PIPELINE_STEPS) or it.decision in ("blocked", "skip"):
        return "a task after " + task, f"the run's last step with a record is {task}", entry
    after = PIPELINE_STEPS[last + 1][0]
    return after, f"{task} recorded its result ({event}); {after} left no record", entry


def _status_section(it: Iteration, status: RunStatus) -> Section:
    task, shown, entry = _stopped_at(it)
    lines = [
        Line("KFP state", status.state + (f" (task {status.task})" if status.task else "")),
        Line("Failed task", task, (entry.hash,) if entry is not None else ()),
        Line("From the audit log", shown, (entry.hash,) if entry is not None else ()),
        Line("Error", status.error or "KFP gave no message; see the failed task's logs"),
    ]
    return Section("Run status", tuple(lines))


def release_record(
    registry: ModelRegistry, run_label: str, status: RunStatus | None = None
) -> ReleaseRecord:
    """Build the release record of one run from the model's audit log.

    Args:
        registry: The model's registry (local or ``gs://``).
        run_label: The run's label, as its steps recorded it.
        status: How KFP says the run ended (the pipeline's exit handler passes it). A failed
            or cancelled run's record then opens with a "Run status" section naming the failed
            task and KFP's error, and a run without any audit record gets a record too.

    Returns:
        The record; its chain section says whether `AuditLog.verify` found the log intact.

    Raises:
        RegistryError: No record of the log carries ``run_label`` and no failed ``status``
            explains why (the message lists the labels it has).
        IntegrityError: The audit log cannot be read at all.
    """
    history = read_history(registry)
    it = history.get(run_label)
    if it is None and status is not None and status.failed:
        it = Iteration(run_label, index=len(history.iterations))
    if it is None:
        labels = [i.run_label for i in history.iterations]
        shown = ", ".join(labels[-10:]) if labels else "none"
        raise RegistryError(
            f"run_label {run_label!r} has no records in the audit log of model "
            f"{registry.model_name!r} (its runs: {shown})"
        )
    audit = registry.audit
    problems = list(audit.verify())
    for problem in history.problems:
        if problem not in problems:
            problems.append(problem)
    head = history.head_hash
    if problems:
        n = len(problems)
        verdict = f"audit chain BROKEN: {n} problem{'s' if n != 1 else ''} found by verify()"
    else:
        verdict = f"audit chain verified: {history.records} records intact, head {head or 'none'}"
    chain = Section(
        "Audit chain",
        tuple(
            [Line("Chain", verdict)]
            + [Line("Problem", p) for p in problems]
            + [Line("Records", str(history.records)), Line("Head hash", head or "—")]
        ),
    )
    sections = _sections(it)
    outcome = it.outcome
    if status is not None and status.failed:
        sections.insert(0, _status_section(it, status))
        task = _stopped_at(it)[0]
        outcome = f"{status.state.lower()} in {task}" + (
            f" (after: {it.outcome})" if it.entries and it.decision != "unknown" else ""
        )
    return ReleaseRecord(
        model=registry.model_name,
        run_label=run_label,
        outcome=outcome,
        sections=[*sections, chain],
        chain_ok=not problems,
        chain_problems=problems,
        audit_log=str(getattr(audit, "path", "")),
        records=history.records,
        head_hash=head,
        iteration=it,
        status=status,
    )


def write_release_record(
    store_uri: str,
    model_name: str,
    run_label: str,
    markdown_path: str,
    html_path: str,
    status: RunStatus | None = None,
) -> ReleaseRecord:
    """Pipeline step: write one run's release record as Markdown and HTML.

    Args:
        store_uri: Root of refit's store.
        model_name: The model.
        run_label: The run's label.
        markdown_path: Where the Markdown goes (KFP Output[Markdown]); parent folders created.
        html_path: Where the HTML goes (KFP Output[HTML]); parent folders created.
        status: How KFP says the run ended (see `release_record`).

    Returns:
        The record.

    Raises:
        RegistryError: No record carries ``run_label`` and the run did not fail.
    """
    record = release_record(open_registry(store_uri, model_name), run_label, status)
    for path, text in ((markdown_path, record.to_markdown()), (html_path, record.to_html())):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return record


__all__ = [
    "KNOWN_EVENTS",
    "NOT_RUN",
    "PIPELINE_STEPS",
    "REFUSAL_EVENT",
    "RunStatus",
    "Entry",
    "Line",
    "ReleaseRecord",
    "Section",
    "release_record",
    "write_release_record",
]
