"""The trigger service's logic, independent of HTTP: dedupe, policy, cooldown, launch, audit.

Each event is decided once: its dedupe key is claimed first (Alertmanager re-sends, Pub/Sub
redeliveries and retried generic hooks are answered ``duplicate`` and counted, not re-decided).
A new event's model must be configured; then the retrain policy (``refit.policy.decide``, the
one the ``decide_retrain`` component uses) decides on an observation built from the event, the
persisted policy state and whether a champion exists. A retrain is then held back by the
service's per-model cooldown or by the limit on runs in flight; otherwise a run is recorded
(``pending``) and handed to the launcher, with every input the pipeline needs: the configured
parameters, ``model_name`` (the judged model) and a ``run_label`` of its own (:func:`run_label`).
Every decision is appended to the audit log (``trigger_decision``) and returned to the caller.

Launches by a worker thread (kfp, local) that fail stay ``pending`` with their error and are
retried every ``retry_seconds``, also after a restart: a trigger is never lost to a down server.

With a ``store_uri``, the scheduler thread also rejects approval requests past their timeout
(``refit.governance.approval.expire_stale``) every ``approval_sweep_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from refit.audit import AuditLog
from refit.audit.events import AuditEvent
from refit.audit.objects import ObjectAuditLog
from refit.errors import RefitError
from refit.policy import Observation, PolicyState, decide

# Imported here, not on the first event: refit.steps pulls in scipy.stats and the trainers, which
# took 8 s on a busy two-core machine and held up the first alert's decision.
from refit.steps.decide import POLICY_STATE_KEY
from refit.triggers.config import ModelConfig, ServiceConfig
from refit.triggers.inputs import pipeline_inputs
from refit.triggers.launchers import Launcher, LaunchError
from refit.triggers.payloads import TriggerEvent
from refit.triggers.state import StateStore

log = logging.getLogger("refit.triggers")


class UnknownModelError(RefitError, LookupError):
    """An event names a model the service is not configured for."""


class Metrics:
    """Prometheus metrics of one service (own registry, so tests may run several)."""

    def __init__(self) -> None:
        """Create the collectors."""
        self.registry = CollectorRegistry()
        self.received = Counter(
            "refit_hooks_received", "Hook requests received.", ["hook"], registry=self.registry
        )
        self.deduped = Counter(
            "refit_hooks_deduped", "Events dropped as duplicates.", ["hook"],
            registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "refit_hooks_rejected", "Hook requests rejected.", ["hook", "reason"],
            registry=self.registry,
        )  # fmt: skip
        self.launched = Counter(
            "refit_runs_launched", "Runs launched.", ["model", "launcher"], registry=self.registry
        )
        self.launch_failures = Counter(
            "refit_launch_failures", "Launch attempts that failed.", ["model", "launcher"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "refit_decision_latency_seconds", "Time to decide an event.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def run_label(model: str, event: TriggerEvent, now: float) -> str:
    """The ``run_label`` of a triggered run: ``trigger-MODEL-UTCTIME-HASH``.

    The hash is of the event's dedupe key, so two events decided in the same second still get
    two labels, and the release records of their runs never merge.
    """
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(event.dedupe_key.encode()).hexdigest()[:8]
    return f"trigger-{model}-{stamp}-{digest}"


class TriggerService:
    """Decides events and launches runs; state in SQLite, decisions in the audit log."""

    def __init__(
        self,
        config: ServiceConfig,
        launcher: Launcher,
        *,
        clock: Any = time.time,
        retry_seconds: float = 30.0,
        scheduler_tick: float = 1.0,
        approval_sweep_seconds: float = 60.0,
    ) -> None:
        """Open the state and the audit log; call :meth:`start` to run the workers."""
        self.config = config
        self.approval_sweep_seconds = approval_sweep_seconds
        self.launcher = launcher
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.scheduler_tick = scheduler_tick
        self.state = StateStore(config.state_path)
        self.metrics = Metrics()
        # One lock per model: a fleet's decisions for different models run at once (each waits
        # only on its own model's audit appends and fsyncs); one model's decisions stay serial.
        # The in-flight limit, shared by all models, is checked in the run's SQLite insert.
        self._decide_locks = {name: threading.Lock() for name in config.models}
        self._audit_lock = threading.Lock()
        self._audit_locks = {name: threading.Lock() for name in config.models}
        # The embedded scheduler's next fire per model, (last fire, due), so a tick over a
        # fleet reads neither SQLite nor croniter for models that are not due.
        self._due: dict[str, tuple[float, float]] = {}
        self._service_audit = (
            None if config.store_uri else AuditLog(Path(str(config.state_path) + ".audit.jsonl"))
        )
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Keys decided by this process: a re-send is answered without touching SQLite.
        self._seen: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the launch worker, the retry loop and the embedded scheduler."""
        self._stop.clear()
        for target in (self._worker, self._retry_loop, self._scheduler_loop):
            t = threading.Thread(target=target, daemon=True, name=f"refit-{target.__name__}")
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop the threads and close the state."""
        self._stop.set()
        self._queue.put(None)
        for t in self._threads:
            t.join(10)
        self._threads = []
        self.state.close()

    # -- audit ------------------------------------------------------------------------------
    def audit_log(self, model: str) -> AuditLog | ObjectAuditLog:
        """Where decisions about ``model`` are recorded."""
        if self._service_audit is not None:
            return self._service_audit
        from refit.registry import open_registry

        return open_registry(str(self.config.store_uri), model).audit

    def _audit(self, model: str, payload: dict[str, Any]) -> None:
        # The service's own log is one file for all models; the store has one per model.
        shared = self._service_audit is not None or model not in self._audit_locks
        with self._audit_lock if shared else self._audit_locks[model]:
            self.audit_log(model).append(AuditEvent.TRIGGER_DECISION, payload)

    # -- deciding ---------------------------------------------------------------------------
    def model(self, name: str) -> ModelConfig:
        """The configuration of ``name``.

        Raises:
            UnknownModelError: Naming the model and the configured ones.
        """
        model = self.config.models.get(name)
        if model is None:
            names = sorted(self.config.models)
            listed = ", ".join(names[:20]) + (
                f" and {len(names) - 20} more" if len(names) > 20 else ""
            )
            raise UnknownModelError(f"unknown model {name[:200]!r}; configured: {listed}")
        return model

    def _has_champion(self, model: str) -> bool:
        if not self.config.store_uri:
            return False
        from refit.registry import open_registry

        return open_registry(str(self.config.store_uri), model).champion() is not None

    def _policy_state(self, model: str) -> PolicyState:
        data = self.state.policy_state(model)
        if data is None and self.config.store_uri:
            from refit.registry import open_registry

            data = open_registry(str(self.config.store_uri), model).read_state(POLICY_STATE_KEY)
        return PolicyState.from_dict(data or {})

    def handle(self, event: TriggerEvent) -> dict[str, Any]:
        """Decide one event (see the module docstring); the decision as a dict.

        Raises:
            UnknownModelError: The event's model is not configured (nothing is recorded).
        """
        started = time.perf_counter()
        model = self.model(event.model)
        now = self.clock()
        base = {"event": event.dedupe_key, "hook": event.hook, "model": event.model}
        ttl = self.config.dedupe_ttl_seconds
        seen = self._seen.get(event.dedupe_key)
        if (seen is not None and now - seen < ttl) or not self.state.claim(
            event.dedupe_key, now, ttl
        ):
            if seen is None:
                self._seen[event.dedupe_key] = now
            self.metrics.deduped.labels(event.hook).inc()
            self.metrics.latency.observe(time.perf_counter() - started)
            return {
                **base,
                "decision": "duplicate",
                "launched": False,
                "reasons": ["duplicate: this event was already decided"],
            }
        self._seen[event.dedupe_key] = now
        if len(self._seen) > 100_000:
            self._seen.clear()
        with self._decide_locks[model.name]:
            result = self._decide(model, event, now)
        self.metrics.latency.observe(time.perf_counter() - started)
        return {**base, **result}

    def _decide(self, model: ModelConfig, event: TriggerEvent, now: float) -> dict[str, Any]:
        state = self._policy_state(model.name)
        if event.force:
            retrain, reasons, new_state = True, [event.summary], state
            policy_reasons: list[str] = []
        else:
            observation = Observation(
                drift_share=event.drift_share,
                metric_value=event.metric_value,
                new_rows=event.new_rows,
                now=_iso(now),
                has_champion=self._has_champion(model.name),
            )
            decision = decide(model.policy, state, observation)
            retrain, reasons, new_state = decision.retrain, list(decision.reasons), decision.state
            policy_reasons = list(decision.reasons)
        blocked = self._blocked(model.name, now) if retrain else ""
        run_id: int | None = None
        if retrain and not blocked:
            inputs = pipeline_inputs(self.config.pipeline)
            params = dict(model.params)
            if event.data_uri and "data_uri" in inputs.inputs:
                params["data_uri"] = event.data_uri
            params = inputs.arguments(model.name, params, run_label(model.name, event, now))
            run_id = self.state.add_run(
                model=model.name,
                hook=event.hook,
                trigger=event.summary,
                reasons=reasons,
                params=params,
                launcher=self.launcher.name,
                now=now,
                max_in_flight=self.config.max_in_flight,
            )
            if run_id is None:  # another model's run took the last slot meanwhile
                blocked = f"runs in flight reached the limit {self.config.max_in_flight}"
        if run_id is not None:
            self.state.save_policy_state(model.name, new_state.to_dict())
            status = self._launch_now(run_id, model.name, params)
            decision_name, launched = "launch", True
        else:
            # Not launched: keep accumulating evidence, as a skipped window would.
            history = list(state.metric_history)
            if event.metric_value is not None:
                history.append(float(event.metric_value))
            kept = replace(
                state,
                windows_since_retrain=state.windows_since_retrain + (0 if event.force else 1),
                metric_history=history[-model.policy.consecutive_windows :],
                rows_since_training=state.rows_since_training + event.new_rows,
            )
            self.state.save_policy_state(model.name, kept.to_dict())
            if blocked:
                reasons = [blocked, *(f"suppressed: {r}" for r in reasons)]
            run_id, status = None, None
            decision_name, launched = ("held" if blocked else "skip"), False
        payload = {
            "event": event.dedupe_key,
            "hook": event.hook,
            "model": model.name,
            "trigger": event.summary,
            "decision": decision_name,
            "launched": launched,
            "reasons": reasons,
            "policy_reasons": policy_reasons,
            "run_id": run_id,
            "launcher": self.launcher.name,
            "at": _iso(now),
        }
        self._audit(model.name, payload)
        return {
            "decision": decision_name,
            "launched": launched,
            "reasons": reasons,
            "run_id": run_id,
            "status": status,
            "trigger": event.summary,
        }

    def _blocked(self, model: str, now: float) -> str:
        """Why a retrain of ``model`` must wait (cooldown, runs in flight), or ``""``."""
        last = self.state.last_launch(model)
        cooldown = self.config.cooldown_seconds
        in_flight = self.state.in_flight()
        if last is not None and now - last < cooldown:
            return (
                f"cooldown: last run for {model} launched {now - last:.0f} s ago (< {cooldown:g} s)"
            )
        if in_flight >= self.config.max_in_flight:
            return f"{in_flight} run(s) in flight (limit {self.config.max_in_flight})"
        return ""

    # -- launching --------------------------------------------------------------------------
    def _launch_now(self, run_id: int, model: str, params: dict[str, Any]) -> str:
        if not self.launcher.synchronous:
            self._queue.put(run_id)
            return "pending"
        return self._launch(run_id, model, params, attempts=0)

    def _launch(self, run_id: int, model: str, params: dict[str, Any], attempts: int) -> str:
        try:
            if not self.launcher.synchronous:
                self.state.update_run(run_id, status="running")
            external = self.launcher.launch(run_id, model, params)
        except LaunchError as exc:
            self.metrics.launch_failures.labels(model, self.launcher.name).inc()
            self.state.update_run(run_id, status="pending", attempts=attempts + 1, error=str(exc))
            log.error("run %s for %s not launched, kept for retry: %s", run_id, model, exc)
            return "pending"
        except Exception as exc:  # the pipeline itself failed (local launcher)
            self.state.update_run(
                run_id, status="failed", attempts=attempts + 1, error=f"{type(exc).__name__}: {exc}"
            )
            return "failed"
        # log: recorded only; kfp: submitted to the cluster; local: the run has finished.
        status = {"log": "logged", "kfp": "submitted"}.get(self.launcher.name, "succeeded")
        self.state.update_run(run_id, status=status, external_id=external, attempts=attempts + 1)
        self.metrics.launched.labels(model, self.launcher.name).inc()
        return status

    def _worker(self) -> None:
        while not self._stop.is_set():
            run_id = self._queue.get()
            if run_id is None:
                return
            rows = [r for r in self.state.runs("pending") if r["id"] == run_id]
            if rows:
                r = rows[0]
                self._launch(r["id"], r["model"], r["params"], r["attempts"])

    def retry_pending(self) -> int:
        """Queue every pending run for another launch attempt; how many were queued."""
        pending = self.state.runs("pending")
        for r in reversed(pending):
            if self.launcher.synchronous:
                self._launch(r["id"], r["model"], r["params"], r["attempts"])
            else:
                self._queue.put(r["id"])
        return len(pending)

    def _retry_loop(self) -> None:
        self.retry_pending()  # runs left pending by a previous process
        while not self._stop.wait(self.retry_seconds):
            self.retry_pending()

    # -- embedded scheduler -----------------------------------------------------------------
    def scheduler_tick_once(self) -> list[dict[str, Any]]:
        """Fire the schedules that are due (no catch-up: one fire however many were missed)."""
        from croniter import croniter

        now = self.clock()
        fired = []
        for model in self.config.models.values():
            if model.schedule is None:
                continue
            cached = self._due.get(model.name)
            if cached is not None and now < cached[1]:
                continue
            last = self.state.last_fire(model.name)
            if last is None:
                self.state.set_last_fire(model.name, now)
                last = now
            due = croniter(model.schedule.standard, datetime.fromtimestamp(last, UTC)).get_next(
                float
            )
            self._due[model.name] = (last, due)
            if now < due:
                continue
            self.state.set_last_fire(model.name, now)
            self._due.pop(model.name, None)
            event = TriggerEvent(
                hook="schedule",
                model=model.name,
                dedupe_key=f"schedule|{model.name}|{due:.0f}",
                summary=f"schedule {model.schedule.standard!r} due at {_iso(due)}",
                force=True,
            )
            fired.append(self.handle(event))
        return fired

    def _scheduler_loop(self) -> None:
        next_sweep = 0.0
        while not self._stop.wait(self.scheduler_tick):
            try:
                self.scheduler_tick_once()
            except Exception:  # keep the scheduler alive; the error is logged
                log.exception("scheduler tick failed")
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.approval_sweep_seconds
                try:
                    self.expire_approvals()
                except Exception:
                    log.exception("approval sweep failed")

    # -- approvals --------------------------------------------------------------------------
    def expire_approvals(self) -> list[dict[str, Any]]:
        """Reject the approval requests past their timeout, for every configured model.

        Does nothing without a ``store_uri``. Returns what was rejected (model, version, reason).
        """
        if not self.config.store_uri:
            return []
        from refit.governance.approval import expire_stale
        from refit.registry import open_registry

        now = datetime.fromtimestamp(self.clock(), UTC)
        swept = []
        for name in sorted(self.config.models):
            registry = open_registry(str(self.config.store_uri), name)
            for request in expire_stale(registry, now):
                log.info("model %s version %s: %s", name, request.version, request.reason)
                swept.append({"model": name, "version": request.version, "reason": request.reason})
        return swept
