"""The release record of one retraining iteration: what happened, and the audit records behind it.

`release_record` reads a model's hash-chained audit log, picks the iteration of one run
(`refit.governance.history`), and lays it out in sections an auditor reads top to bottom
(`refit.governance.record_sections` decodes each record's payload into them):
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from refit.audit.events import AuditEvent
from refit.errors import RegistryError
from refit.governance.history import Entry, Iteration, read_history
from refit.governance.record_sections import Line, Section, build_sections
from refit.registry import ModelRegistry, open_registry

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
    sections = build_sections(it)
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
    "PIPELINE_STEPS",
    "REFUSAL_EVENT",
    "ReleaseRecord",
    "RunStatus",
    "release_record",
    "write_release_record",
]
