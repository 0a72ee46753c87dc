"""The release record's lines: each audit record of an iteration decoded into cited lines.

`build_sections` reads the payload of every audit record of one iteration (`Iteration`, from
`refit.governance.history`) and lays it out as the record's sections, each line naming the hash
of the record it comes from. A step that did not run gets a "not run" note, and events this
version of refit does not know go to "Other records".
`refit.governance.record` assembles the sections into a `ReleaseRecord` and renders it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from refit.audit.events import RUN_EVENTS, AuditEvent
from refit.governance.history import VERSION_EVENTS, Iteration

__all__ = [
    "KNOWN_EVENTS",
    "NOT_RUN",
    "Line",
    "Section",
    "build_sections",
]

NOT_RUN: Final = "not run"
#: Events a section of the record renders; any other event of the run goes to "Other records".
KNOWN_EVENTS: Final = VERSION_EVENTS | RUN_EVENTS
#: Gate check kinds shown with the fairness and serving checks rather than the evaluation.
_FAIRNESS_SERVING_KINDS: Final = ("fairness", "serving", "latency", "throughput", "parity")
_SKIP_KEYS: Final = frozenset({"run_label", "model"})


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
    if p.get("champion_version") is not None:
        lines.append(Line("Compared with", f"champion v{p.get('champion_version')}", h))
    lines += _metric_lines(p, h)
    lines += _test_lines(p, h)
    for reason in _gate_reasons(p):
        if not _fairness_serving_reason(reason):
            lines.append(Line("Gate reason", reason, h))
    return lines


def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    found = payload.get(key)
    return found if isinstance(found, Mapping) else {}


def _metric_lines(p: Mapping[str, Any], h: tuple[str, ...]) -> list[Line]:
    """The holdout rows, then each metric: challenger, champion and their difference."""
    lines: list[Line] = []
    challenger, champion = _mapping(p, "challenger"), _mapping(p, "champion")
    n_rows = challenger.get("n_rows")
    if n_rows is not None:
        lines.append(
            Line(
                "Holdout rows", _fmt(n_rows) if not isinstance(n_rows, float) else f"{n_rows:g}", h
            )
        )
    ci_challenger = _metric_intervals(p, "challenger")
    ci_champion = _metric_intervals(p, "champion")
    paired = _mapping(p, "paired")
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
    return lines


def _test_lines(p: Mapping[str, Any], h: tuple[str, ...]) -> list[Line]:
    """One line per paired test: its p-value, its details, or why it did not run."""
    lines: list[Line] = []
    for name, value in sorted(_mapping(p, "tests").items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = f"p = {value:.4g}"
        elif isinstance(value, Mapping):
            text = _describe(value)
        else:
            text = f"not run: {value}"
        lines.append(Line(f"Test: {name}", text, h))
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


def _registered(p: Mapping[str, Any]) -> tuple[str, str]:
    parent = p.get("parent_version")
    return (
        "Registered",
        f"v{p.get('version')} (model sha256 {p.get('sha256', '—')}, "
        f"parent {'v' + str(parent) if parent is not None else 'none'})",
    )


def _canary_started(p: Mapping[str, Any]) -> tuple[str, str]:
    steps = p.get("steps") or []
    return (
        "Canary started",
        f"v{p.get('version')} on target {p.get('target', '—')}, steps "
        + " → ".join(f"{s}%" for s in steps)
        + f", primary {'v' + str(p['previous']) if p.get('previous') else 'none'}",
    )


def _canary_step(p: Mapping[str, Any]) -> tuple[str, str]:
    stage = p.get("stage", "canary")
    if stage == "shadow":
        return "Shadow", "copies of the champion's requests, no traffic"
    if stage == "ab_test":
        return "A/B test", f"{p.get('percent')}% of units to the challenger"
    return "Canary step", f"{p.get('percent')}% of traffic to the canary"


def _canary_check(p: Mapping[str, Any]) -> tuple[str, str]:
    verdict = "passed" if p.get("passed") else "FAILED"
    numbers = ", ".join(
        f"{k.replace('_', ' ')} {_fmt(p[k])}"
        for k in ("value", "primary_value", "threshold")
        if p.get(k) is not None
    )
    detail = f" — {p['detail']}" if p.get("detail") else ""
    return (
        "Shadow check" if p.get("stage") == "shadow" else f"Check at {p.get('percent')}%",
        f"{p.get('name', 'check')} {verdict}" + (f" ({numbers})" if numbers else "") + detail,
    )


def _promoted(p: Mapping[str, Any]) -> tuple[str, str]:
    prev = p.get("previous")
    return (
        "Promoted",
        f"v{p.get('version')} live (previous {'v' + str(prev) if prev else 'none'})"
        + (f": {p['reason']}" if p.get("reason") else ""),
    )


def _rolled_back(p: Mapping[str, Any]) -> tuple[str, str]:
    return (
        "Rolled back",
        f"v{p.get('previous')} → v{p.get('version')}"
        + (f": {p['reason']}" if p.get("reason") else ""),
    )


#: Event -> (label, value) of its line in "Registration and rollout".
_ROLLOUT_LINES: Final[dict[str, Callable[[Mapping[str, Any]], tuple[str, str]]]] = {
    AuditEvent.REGISTRATION: _registered,
    AuditEvent.CANARY_STARTED: _canary_started,
    AuditEvent.CANARY_STEP: _canary_step,
    AuditEvent.AB_TEST: lambda p: ("A/B result", _ab_result(p)),
    AuditEvent.CANARY_CHECK: _canary_check,
    AuditEvent.PROMOTION: _promoted,
    AuditEvent.ROLLBACK: _rolled_back,
}


def _lines_rollout(it: Iteration) -> list[Line]:
    lines: list[Line] = []
    for e in it.entries:
        line = _ROLLOUT_LINES.get(e.event)
        if line is not None:
            lines.append(Line(*line(e.payload), (e.hash,)))
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


def build_sections(it: Iteration) -> list[Section]:
    """Return the record's sections of one iteration, in reading order (no chain check)."""
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
