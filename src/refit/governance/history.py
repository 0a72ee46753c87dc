"""A model's history read back from its audit log: one iteration per pipeline run, in log order.

Every pipeline step appends a record tagged with its run's ``run_label`` to the model's
hash-chained audit log (``ModelRegistry(store, name).audit``). `build_history` groups those
records into iterations, ordered by each run's first record, and every figure an `Iteration`
reports (trigger, drift share, decision, cost, latency, versions) is computed from the records
alone and names the hashes of the records behind it (`Iteration.backing`).

Records are attached to an iteration as follows:

- a version-scoped event (``approval_requested``, ``approval``, ``rejection``, ``canary_*``,
  ``promotion``, ``rollback``) belongs to the run that registered the version it names (for a
  rollback: the version rolled back), whatever its label, so an approval given later from the
  command line, its release, or a manual rollback land in the release they concern;
- any other record (and a version-scoped one naming a version no run registered) belongs to the
  run its payload's ``run_label`` names, when that label is non-empty;
- a ``trigger_decision`` of the trigger service that launched run ``N`` is the trigger of the run
  labelled ``trigger-N`` (the label its local launcher gives): latency is then measured from it;
- anything else is kept in `History.unattached`.

Unknown events are kept in their iteration's `Iteration.entries`, so new steps show up in the
release record without a change here; missing events leave their fields None ("not run").

Over 600 lines because `Iteration` is one value type with a property per figure the records
give; the live model's confidence, which reads more than the log, is `refit.governance.confidence`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from refit.audit import events
from refit.audit.events import AuditEvent
from refit.errors import IntegrityError

if TYPE_CHECKING:  # pragma: no cover
    from refit.registry import ModelRegistry

#: Events that concern one registered version (see the module docstring).
VERSION_EVENTS: Final = events.VERSION_EVENTS
#: Decisions an iteration can end with (`Iteration.decision`).
DECISIONS: Final = ("retrain", "skip", "blocked", "unknown")
#: How many drifted features `Iteration.top_drifted` keeps.
TOP_DRIFTED: Final = 5
TRIGGER_EVENT: Final = AuditEvent.TRIGGER_DECISION
#: `Iteration.outcome` of a run that did not retrain, by its decision.
_DECISION_OUTCOMES: Final = {
    "blocked": "blocked by validation",
    "skip": "no retrain",
    "unknown": "no decision recorded",
}
#: `Iteration.outcome` of a registered version neither promoted nor rolled back, by approval.
_APPROVAL_OUTCOMES: Final = {
    "awaiting": "awaiting approval",
    "approved": "approved",
    "rejected": "rejected",
    "timed out": "rejected (approval timed out)",
}


@dataclass(frozen=True)
class Entry:
    """One audit record, as an iteration holds it.

    Attributes:
        seq: The record's sequence number in the log.
        time: When it was appended (UTC, ISO 8601).
        event: The event name.
        hash: The record's hash (sha256 hex of its canonical JSON).
        payload: The event's details.
    """

    seq: int
    time: str
    event: str
    hash: str
    payload: dict[str, Any]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Entry:
        """Build an entry from an audit record (missing fields become empty)."""
        payload = record.get("payload")
        seq = record.get("seq")
        return cls(
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
            time=str(record.get("time") or ""),
            event=str(record.get("event") or ""),
            hash=str(record.get("hash") or ""),
            payload=dict(payload) if isinstance(payload, Mapping) else {},
        )

    def get(self, key: str, default: Any = None) -> Any:
        """Return one payload field."""
        return self.payload.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry's identity (seq, time, event, hash) as a JSON-ready dict."""
        return {"seq": self.seq, "time": self.time, "event": self.event, "hash": self.hash}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_time(value: str) -> datetime | None:
    """Parse an ISO 8601 time; None when it is empty or malformed."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _seconds_between(start: str, end: str) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return (b - a).total_seconds()


def trigger_kind(reason: str) -> str:
    """Name the policy trigger a retrain reason stands for.

    Args:
        reason: One reason of a ``decision`` record (the policy's wording).

    Returns:
        ``first model``, ``drift``, ``metric decay``, ``model age``, ``data volume``,
        ``cooldown`` or ``policy`` (any other wording).
    """
    text = reason.strip().lower()
    if text.startswith("no champion"):
        return "first model"
    if text.startswith("drift share"):
        return "drift"
    if "consecutive window" in text:
        return "metric decay"
    if text.startswith("model age"):
        return "model age"
    if text.startswith("new rows"):
        return "data volume"
    if text.startswith("cooldown"):
        return "cooldown"
    return "policy"


@dataclass
class Iteration:
    """One pipeline run of a model, read from its audit records.

    Attributes:
        run_label: The run's label.
        index: Position among the model's iterations (0 = oldest).
        entries: The run's records, in log order.
        trigger_entry: The trigger service's ``trigger_decision`` that launched the run, if any.
        live_version: The live version when the run's last record was written (promotions and
            rollbacks of the whole log replayed up to it); None when nothing was live.
        live_entry: The promotion or rollback record that set ``live_version``.
    """

    run_label: str
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    trigger_entry: Entry | None = None
    live_version: int | None = None
    live_entry: Entry | None = None

    # -- records ------------------------------------------------------------------------------
    def all(self, event: str) -> list[Entry]:
        """Return the run's records of one event, in log order."""
        return [e for e in self.entries if e.event == event]

    def first(self, event: str) -> Entry | None:
        """Return the run's first record of ``event``, or None."""
        found = self.all(event)
        return found[0] if found else None

    def last(self, event: str) -> Entry | None:
        """Return the run's last record of ``event`` (a retried task's final attempt), or None."""
        found = self.all(event)
        return found[-1] if found else None

    @property
    def events(self) -> list[str]:
        """The distinct events of the run, in order of first appearance."""
        return list(dict.fromkeys(e.event for e in self.entries))

    # -- times --------------------------------------------------------------------------------
    @property
    def started_at(self) -> str:
        """When the run's first record was written."""
        return self.entries[0].time if self.entries else ""

    @property
    def trigger_at(self) -> str:
        """When the run was triggered: the trigger service's decision, else the first record."""
        return self.trigger_entry.time if self.trigger_entry is not None else self.started_at

    @property
    def promotion(self) -> Entry | None:
        """The run's last promotion record."""
        return self.last(AuditEvent.PROMOTION)

    @property
    def went_live(self) -> Entry | None:
        """The record that first put the run's model live: its first promotion, or None.

        A later promotion of the same version (a canary drill, a rollback undone) belongs to
        the run too (it names the version the run registered), but it is not when the run's
        retraining ended: latency is measured to this one.
        """
        return self.first(AuditEvent.PROMOTION)

    @property
    def live_at(self) -> str | None:
        """When the run's model first went live (:attr:`went_live`), or None."""
        return None if self.went_live is None else self.went_live.time

    @property
    def latency_s(self) -> float | None:
        """Retraining latency, trigger to live, in seconds; None when nothing went live."""
        live_at = self.live_at
        return None if live_at is None else _seconds_between(self.trigger_at, live_at)

    # -- data ---------------------------------------------------------------------------------
    @property
    def snapshot(self) -> Entry | None:
        """The run's snapshot record."""
        return self.first(AuditEvent.SNAPSHOT)

    @property
    def snapshot_sha256(self) -> str | None:
        """Content hash of the window's snapshot."""
        snap = self.snapshot
        return None if snap is None else snap.get("sha256")

    @property
    def rows(self) -> int | None:
        """Rows of the window."""
        snap = self.snapshot
        return None if snap is None else _int(snap.get("rows"))

    @property
    def validation(self) -> Entry | None:
        """The run's last validation record."""
        return self.last(AuditEvent.VALIDATION)

    @property
    def anomalies(self) -> list[dict[str, Any]] | None:
        """Validation anomalies (None when validation did not run)."""
        val = self.validation
        if val is None:
            return None
        found = val.get("anomalies")
        return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []

    @property
    def validation_passed(self) -> bool | None:
        """Whether the window passed validation (None: not run)."""
        val = self.validation
        return None if val is None else bool(val.get("passed"))

    # -- drift and decision -------------------------------------------------------------------
    @property
    def drift(self) -> Entry | None:
        """The run's last drift record."""
        return self.last(AuditEvent.DRIFT)

    @property
    def drift_share(self) -> float | None:
        """Share of features that drifted (None: not run, or no reference yet)."""
        d = self.drift
        return None if d is None else _number(d.get("drift_share"))

    @property
    def drifted(self) -> list[str]:
        """Features that drifted, in the order the drift step listed them."""
        d = self.drift
        found = [] if d is None else d.get("drifted", [])
        return [str(x) for x in found] if isinstance(found, list) else []

    @property
    def top_drifted(self) -> list[str]:
        """The first `TOP_DRIFTED` drifted features."""
        return self.drifted[:TOP_DRIFTED]

    @property
    def decision_entry(self) -> Entry | None:
        """The run's last retrain-decision record."""
        return self.last(AuditEvent.DECISION)

    @property
    def decision(self) -> str:
        """``blocked`` (validation failed), ``retrain``, ``skip``, or ``unknown`` (not recorded)."""
        if self.validation_passed is False:
            return "blocked"
        dec = self.decision_entry
        if dec is None:
            return "unknown"
        return "retrain" if dec.get("retrain") else "skip"

    @property
    def reasons(self) -> list[str]:
        """Why: the anomalies of a blocked window, else the decision's reasons."""
        if self.decision == "blocked":
            return [
                f"{a.get('feature') or 'dataset'}: {a.get('description', a.get('kind', ''))}"
                for a in self.anomalies or []
            ]
        dec = self.decision_entry
        found = [] if dec is None else dec.get("reasons", [])
        return [str(r) for r in found] if isinstance(found, list) else []

    @property
    def trigger(self) -> str:
        """What started the retrain.

        The hook (when the trigger service launched the run) and the policy triggers that fired
        (``drift``, ``metric decay``...); ``none`` when none fired.
        """
        hook = ""
        if self.trigger_entry is not None:
            hook = f"{self.trigger_entry.get('hook') or 'trigger'} hook"
        kinds: list[str] = []
        if self.decision == "retrain":
            kinds = list(dict.fromkeys(trigger_kind(r) for r in self.reasons))
        elif self.decision == "skip" and any(trigger_kind(r) == "cooldown" for r in self.reasons):
            kinds = ["suppressed by cooldown"]
        policy = ", ".join(kinds) if kinds else ("none" if self.decision != "unknown" else "")
        if hook and policy:
            return f"{hook}: {policy}"
        return hook or policy or "unknown"

    @property
    def champion_metric(self) -> tuple[str, float] | None:
        """The champion's metric on this window, as the decision recorded it."""
        dec = self.decision_entry
        if dec is None:
            return None
        value = _number(dec.get("champion_metric"))
        return None if value is None else (str(dec.get("metric") or "metric"), value)

    # -- training and evaluation --------------------------------------------------------------
    @property
    def training(self) -> Entry | None:
        """The run's last training record (the attempt whose model was used)."""
        return self.last(AuditEvent.TRAINING)

    @property
    def cost(self) -> float | None:
        """Cost of the iteration's training; None when nothing was trained.

        The sum over every recorded attempt: each retried attempt ran on a node too.
        """
        costs = [_number(t.get("cost")) for t in self.all(AuditEvent.TRAINING)]
        known = [c for c in costs if c is not None]
        return sum(known) if known else None

    @property
    def evaluation(self) -> Entry | None:
        """The run's last evaluation record."""
        return self.last(AuditEvent.EVALUATION)

    @property
    def blessed(self) -> bool | None:
        """The gate's verdict (None: not evaluated)."""
        ev = self.evaluation
        return None if ev is None else bool(ev.get("blessed"))

    @property
    def registered_version(self) -> int | None:
        """The version the run registered."""
        reg = self.last(AuditEvent.REGISTRATION)
        return None if reg is None else _int(reg.get("version"))

    @property
    def promoted_version(self) -> int | None:
        """The version the run promoted to live."""
        promo = self.promotion
        return None if promo is None else _int(promo.get("version"))

    @property
    def rollbacks(self) -> list[Entry]:
        """Rollbacks of the run's release."""
        return self.all(AuditEvent.ROLLBACK)

    @property
    def approval_state(self) -> str | None:
        """``awaiting``, ``approved``, ``rejected`` or ``timed out``; None when not requested."""
        last = None
        for e in self.entries:
            if e.event in events.APPROVAL_EVENTS:
                last = e
        if last is None:
            return None
        if last.event == AuditEvent.APPROVAL_REQUESTED:
            return "awaiting"
        if last.event == AuditEvent.APPROVAL:
            return "approved"
        return "timed out" if last.get("timed_out") else "rejected"

    @property
    def outcome(self) -> str:
        """How the iteration ended, in a few words."""
        decision = self.decision
        if decision in _DECISION_OUTCOMES:
            return _DECISION_OUTCOMES[decision]
        if self.training is None:
            return "retrain: no training recorded"
        if self.blessed is None:
            return "trained, not evaluated"
        if not self.blessed:
            return "not blessed by the gate"
        version = self.registered_version
        if version is None:
            return "blessed, not registered"
        return self._release_outcome(version)

    def _release_outcome(self, version: int) -> str:
        """How a registered version's release ended: rollback, promotion, or approval."""
        if self.rollbacks and (
            self.promotion is None or self.rollbacks[-1].seq > self.promotion.seq
        ):
            return f"v{version} rolled back"
        if self.promotion is not None:
            return f"promoted v{self.promoted_version}"
        approval = self.approval_state
        if approval in _APPROVAL_OUTCOMES:
            return f"v{version} {_APPROVAL_OUTCOMES[approval]}"
        return f"registered v{version}"

    # -- provenance ---------------------------------------------------------------------------
    @property
    def backing(self) -> dict[str, list[str]]:
        """Field -> hashes of the audit records it is computed from (empty fields left out)."""

        def hashes(*entries: Entry | None) -> list[str]:
            return [e.hash for e in entries if e is not None]

        decision_src = self.validation if self.decision == "blocked" else self.decision_entry
        start = self.trigger_entry or (self.entries[0] if self.entries else None)
        out = {
            "trigger": hashes(self.trigger_entry, decision_src),
            "decision": hashes(self.validation, self.decision_entry),
            "reasons": hashes(decision_src),
            "snapshot": hashes(self.snapshot),
            "validation": hashes(self.validation),
            "drift": hashes(self.drift),
            "training": hashes(self.training),
            "cost": [e.hash for e in self.all(AuditEvent.TRAINING)],
            "evaluation": hashes(self.evaluation),
            "registration": hashes(self.last(AuditEvent.REGISTRATION)),
            "approval": [e.hash for e in self.entries if e.event in events.APPROVAL_EVENTS],
            "rollout": [e.hash for e in self.entries if e.event in events.CANARY_EVENTS],
            "promotion": hashes(self.promotion),
            "rollbacks": [e.hash for e in self.rollbacks],
            "latency": hashes(start, self.went_live) if self.went_live is not None else [],
            "live_version": hashes(self.live_entry),
        }
        return {k: v for k, v in out.items() if v}

    def to_dict(self) -> dict[str, Any]:
        """Return the iteration's summary as a JSON-ready dict (with its backing hashes)."""
        training = self.training
        evaluation = self.evaluation
        metric = self.champion_metric
        return {
            "run_label": self.run_label,
            "index": self.index,
            "started_at": self.started_at,
            "trigger_at": self.trigger_at,
            "live_at": self.live_at,
            "trigger": self.trigger,
            "decision": self.decision,
            "reasons": self.reasons,
            "outcome": self.outcome,
            "snapshot_sha256": self.snapshot_sha256,
            "rows": self.rows,
            "anomalies": None if self.anomalies is None else len(self.anomalies),
            "drift_share": self.drift_share,
            "top_drifted": self.top_drifted,
            "champion_metric": None if metric is None else {"name": metric[0], "value": metric[1]},
            "training": None
            if training is None
            else {k: v for k, v in training.payload.items() if k != "run_label"},
            "cost": self.cost,
            "evaluation": None
            if evaluation is None
            else {k: v for k, v in evaluation.payload.items() if k != "run_label"},
            "blessed": self.blessed,
            "registered_version": self.registered_version,
            "approval": self.approval_state,
            "promoted_version": self.promoted_version,
            "rolled_back": bool(self.rollbacks),
            "latency_s": self.latency_s,
            "live_version": self.live_version,
            "events": [e.to_dict() for e in self.entries],
            "backing": self.backing,
        }


@dataclass
class History:
    """A model's iterations, oldest first.

    Attributes:
        iterations: One per run label, ordered by each run's first record.
        unattached: Records that belong to no run (see the module docstring).
        live_version: The live version after the last promotion or rollback in the log.
        records: How many records the log held.
        head_hash: The hash of the log's last record ("" for an empty log).
        problems: Lines of the log that could not be read (a damaged log; see
            `AuditLog.verify` for the full check).
    """

    iterations: list[Iteration] = field(default_factory=list)
    unattached: list[Entry] = field(default_factory=list)
    live_version: int | None = None
    records: int = 0
    head_hash: str = ""
    problems: list[str] = field(default_factory=list)

    def get(self, run_label: str) -> Iteration | None:
        """Return the iteration of ``run_label``, or None."""
        for it in self.iterations:
            if it.run_label == run_label:
                return it
        return None

    def last(self, n: int | None) -> list[Iteration]:
        """Return the last ``n`` iterations (all of them when ``n`` is None)."""
        if n is None:
            return list(self.iterations)
        return self.iterations[-n:] if n > 0 else []

    @property
    def decisions(self) -> dict[str, int]:
        """How many iterations ended with each decision (every name in `DECISIONS`)."""
        counts = dict.fromkeys(DECISIONS, 0)
        for it in self.iterations:
            counts[it.decision] = counts.get(it.decision, 0) + 1
        return counts

    @property
    def rollbacks(self) -> int:
        """How many rollbacks the log records (attached to a run or not)."""
        return sum(len(it.rollbacks) for it in self.iterations) + sum(
            e.event == AuditEvent.ROLLBACK for e in self.unattached
        )


def build_history(records: Iterable[Mapping[str, Any]]) -> History:
    """Group audit records into iterations (pure: reads nothing else).

    Args:
        records: The model's audit records in log order (``AuditLog.records()``).

    Returns:
        The iterations, unattached records and the live version.
    """
    entries = [Entry.from_record(r) for r in records]
    history = History(records=len(entries), head_hash=entries[-1].hash if entries else "")
    runs = _Runs(history)
    live: int | None = None
    live_entry: Entry | None = None
    last_live: dict[str, tuple[int | None, Entry | None]] = {}

    for entry in entries:
        if entry.event == TRIGGER_EVENT:
            runs.add_trigger(entry)
            continue
        target = runs.target(entry)
        if entry.event in events.LIVE_EVENTS:
            version = _int(entry.get("version"))
            if version is not None:
                live, live_entry = version, entry
        if target is None:
            history.unattached.append(entry)
            continue
        runs.attach(entry, target)
        last_live[target.run_label] = (live, live_entry)

    for it in history.iterations:
        it.live_version, it.live_entry = last_live.get(it.run_label, (None, None))
    history.unattached.extend(runs.triggers.values())
    history.unattached.sort(key=lambda e: e.seq)
    history.live_version = live
    return history


class _Runs:
    """The iterations of a history being built, by run label and by the version each registered."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.by_label: dict[str, Iteration] = {}
        self.version_run: dict[int, Iteration] = {}
        self.triggers: dict[str, Entry] = {}

    def add_trigger(self, entry: Entry) -> None:
        """Keep a launched run's trigger for the run labelled ``trigger-N``; else unattached."""
        run_id = entry.get("run_id")
        if entry.get("launched") and run_id is not None:
            self.triggers[f"trigger-{run_id}"] = entry
        else:
            self.history.unattached.append(entry)

    def target(self, entry: Entry) -> Iteration | None:
        """The iteration a record belongs to (see the module docstring), created when new."""
        target: Iteration | None = None
        if entry.event in VERSION_EVENTS:
            version = _version_named(entry)
            target = self.version_run.get(version) if version is not None else None
        label = entry.get("run_label")
        if target is None and isinstance(label, str) and label:
            target = self.by_label.get(label)
            if target is None:
                target = self._new(label)
        return target

    def _new(self, label: str) -> Iteration:
        target = Iteration(run_label=label, index=len(self.history.iterations))
        if label in self.triggers:
            target.trigger_entry = self.triggers.pop(label)
        self.by_label[label] = target
        self.history.iterations.append(target)
        return target

    def attach(self, entry: Entry, target: Iteration) -> None:
        """Add a record to its iteration, noting the version a registration names."""
        target.entries.append(entry)
        if entry.event == AuditEvent.REGISTRATION:
            version = _int(entry.get("version"))
            if version is not None:
                self.version_run[version] = target


def _version_named(entry: Entry) -> int | None:
    """The version a version-scoped record concerns (a rollback: the version rolled back)."""
    key = "previous" if entry.event == AuditEvent.ROLLBACK else "version"
    version = _int(entry.get(key))
    if version is None and entry.event == AuditEvent.ROLLBACK:
        version = _int(entry.get("version"))
    return version


def read_history(registry: ModelRegistry) -> History:
    """Read a model's audit log and build its history.

    A log with lines that are not JSON (damaged) is still read, line by line where the log is a
    local file: those lines are skipped and named in `History.problems`.

    Args:
        registry: The model's registry (local or ``gs://``).

    Returns:
        The history.

    Raises:
        IntegrityError: The log cannot be read at all.
    """
    audit = registry.audit
    try:
        return build_history(audit.records())
    except IntegrityError as exc:
        path = getattr(audit, "path", None)
        if path is None or not hasattr(path, "read_text"):
            raise
        records, problems = [], [str(exc)]
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"line {number} skipped: not valid JSON")
                continue
            if isinstance(record, dict):
                records.append(record)
        history = build_history(records)
        history.problems = problems
        return history
