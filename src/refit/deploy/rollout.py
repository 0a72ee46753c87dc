"""The canary rollout controller: steps, analysis, promotion or rollback.

`run_canary` takes a registered version from the registry to 100% of traffic through a
`CanaryTarget`, step by step as a `RolloutPlan` says (an optional shadow stage before the steps,
an optional A/B stage after them), and analyses the canary after every interval. It rolls back
on its own on a decisive failure, more failed analyses than the plan allows, the deadline, or a
target that fails to apply a step. The target moves only traffic; this controller moves the
registry aliases (``canary`` while it runs, ``champion``/``previous`` on promotion) and writes
every step and check to the audit log. Errors before any traffic moves raise and move nothing.
The full contract is docs/decisions/0016-canary-rollout-plan-and-controller.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from refit.audit.events import AuditEvent
from refit.deploy.local import CHAMPION, PREVIOUS, Rollout, promotion_statuses
from refit.deploy.plan import RolloutPlan
from refit.deploy.rollout_types import (
    KEPT,
    PROMOTED,
    ROLLED_BACK,
    ABAnalyze,
    Analyzer,
    CheckOutcome,
    RolloutResult,
    ShadowAnalyze,
    StepRecord,
)
from refit.deploy.target import CanaryTarget, TrafficSplit
from refit.errors import ConflictError, DeployError, RefitError
from refit.registry import ANY, ModelRegistry

CANARY = "canary"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Rollback(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Keep(_Rollback):
    """The A/B test ended without a reason to promote, and the rule says keep the champion."""


def run_canary(
    registry: ModelRegistry,
    version: int,
    target: CanaryTarget,
    plan: RolloutPlan,
    analyze: Analyzer,
    *,
    reason: str = "",
    run_label: str = "",
    expected_champion: Any = ANY,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    shadow_analyze: ShadowAnalyze | None = None,
    ab_analyze: ABAnalyze | None = None,
) -> RolloutResult:
    """Roll ``version`` out through ``target`` step by step; promote it or roll it back.

    Args:
        registry: The model's registry.
        version: The registered version to roll out.
        target: Where traffic moves (`refit.deploy.target.CanaryTarget`).
        plan: Steps, interval, analyses per step, failures allowed, deadline (its checks
            are run by ``analyze``; see `refit.deploy.analyzers.prometheus_analyzer`).
        analyze: Runs the checks for one analysis (see `Analyzer`).
        reason: Why this version is rolled out (recorded with the promotion).
        run_label: Label of this pipeline run in the audit log.
        expected_champion: The champion the version was evaluated against (None: none); the
            rollout refuses to start when the champion moved since. `ANY` skips the check.
        clock: Monotonic clock (seconds); injectable for tests.
        sleep: Sleep function; injectable for tests.
        shadow_analyze: Judges the shadow stage (needed when the plan has one).
        ab_analyze: Looks at the A/B test (needed when the plan has one).

    Returns:
        The result: promoted or rolled back, with every step and check.

    Raises:
        RegistryError: Unknown version, or it is already the champion.
        IntegrityError: The version's model file does not match its sha256.
        ConflictError: The champion is not ``expected_champion``, or moved during the rollout.
        DeployError: The target refused the rollout before any traffic moved, or a rollback
            itself failed (the message says what state is left).
    """
    mv = registry.verify(version)
    champion = registry.champion()
    _check_start(
        registry, version, champion, target, plan, expected_champion, shadow_analyze, ab_analyze
    )
    target.preflight(mv, champion)  # raises before any traffic moves

    started, t0 = _now(), clock()
    run = _Run(
        registry=registry,
        target=target,
        plan=plan,
        mv=mv,
        old=None if champion is None else champion.version,
        audit_base={"model": registry.model_name, "version": version, "run_label": run_label},
        clock=clock,
        sleep=sleep,
        started=started,
        t0=t0,
    )
    if champion is None:
        # Nothing to compare a canary against: deploy alone, promote, say so.
        target.start(mv, None, 100)
        direct = target.promote()
        run.steps.append(StepRecord(100, _now(), outcome="promoted"))
        why = "no champion to compare a canary against: deployed directly to 100%"
        _promote_aliases(registry, version, None, reason or why, run.audit_base, target.name)
        return run.finish(PROMOTED, why, direct.primary_version or version)

    old = run.old
    registry.update_aliases(
        {CANARY: version},
        expected={CHAMPION: old},
        statuses={version: CANARY},
        event=AuditEvent.CANARY_STARTED,
        payload={
            **run.audit_base,
            "previous": old,
            "target": target.name,
            "steps": list(plan.steps),
        },
    )
    try:
        _run_stages(run, champion, analyze, shadow_analyze, ab_analyze)
    except _Keep as keep:
        run.steps[-1].outcome = KEPT
        _keep(registry, target, version, old, keep.reason, run.audit_base)
        return run.finish(KEPT, keep.reason, old)
    except _Rollback as rb:
        if run.steps and run.steps[-1].outcome == "passed":
            run.steps[-1].outcome = "failed"
        _rollback(registry, target, version, old, rb.reason, run.audit_base)
        return run.finish(ROLLED_BACK, rb.reason, old)
    why = reason or f"canary passed {len(run.steps) - 1} step(s) with {run.failed} failed analyses"
    _promote_aliases(registry, version, old, why, run.audit_base, target.name)
    return run.finish(PROMOTED, why, version)


def _check_start(
    registry: ModelRegistry,
    version: int,
    champion: Any,
    target: CanaryTarget,
    plan: RolloutPlan,
    expected_champion: Any,
    shadow_analyze: ShadowAnalyze | None,
    ab_analyze: ABAnalyze | None,
) -> None:
    """Refuse a rollout that cannot start.

    The version is already live, the champion moved, or the plan has a stage the target or the
    caller cannot run.
    """
    old = None if champion is None else champion.version
    if old == version:
        raise DeployError(
            f"cannot roll out model {registry.model_name!r} version {version}: it is already "
            "the champion"
        )
    if expected_champion is not ANY and old != expected_champion:
        raise ConflictError(
            f"alias 'champion' of model {registry.model_name!r}: expected version "
            f"{expected_champion} but it is {old} (changed by a concurrent writer)"
        )
    if plan.shadow is not None and (shadow_analyze is None or not hasattr(target, "shadow")):
        raise DeployError(
            f"the plan has a shadow stage but target {target.name!r} cannot mirror requests "
            "(the local target can; on a cluster use the Istio route of "
            "manifests/snippets/shadow-mirror) or no shadow analysis was given"
        )
    if plan.ab_test is not None and (ab_analyze is None or not hasattr(target, "start_experiment")):
        raise DeployError(
            f"the plan has an A/B stage but target {target.name!r} cannot hold a sticky split "
            "(the local target can) or no A/B analysis was given"
        )


@dataclass
class _Run:
    """One rollout under way: what it moves, its clock, and the steps and failures so far."""

    registry: ModelRegistry
    target: CanaryTarget
    plan: RolloutPlan
    mv: Any
    old: int | None
    audit_base: dict[str, Any]
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    started: str
    t0: float
    steps: list[StepRecord] = field(default_factory=list)
    failed: int = 0
    ab_payload: dict[str, Any] | None = None

    def finish(self, outcome: str, why: str, live: int | None) -> RolloutResult:
        return RolloutResult(
            model=self.registry.model_name,
            version=self.mv.version,
            previous=self.old,
            live_version=live,
            outcome=outcome,
            reason=why,
            target=self.target.name,
            steps=self.steps,
            failed_analyses=self.failed,
            started_at=self.started,
            finished_at=_now(),
            seconds=self.clock() - self.t0,
            ab_test=self.ab_payload,
        )

    def past_deadline(self) -> bool:
        return self.clock() - self.t0 > self.plan.deadline_seconds


def _run_stages(
    run: _Run,
    champion: Any,
    analyze: Analyzer,
    shadow_analyze: ShadowAnalyze | None,
    ab_analyze: ABAnalyze | None,
) -> None:
    """Shadow, canary steps, A/B test, promotion; raise `_Rollback` or `_Keep` to stop."""
    plan, target = run.plan, run.target
    if plan.shadow is not None:
        assert shadow_analyze is not None
        _run_shadow(run.registry, target, run.mv, champion, plan, shadow_analyze, run.steps,
                    run.audit_base, run.clock, run.sleep)  # fmt: skip
    split: TrafficSplit | None = None
    for percent in plan.steps[:-1]:
        split = _run_step(run, champion, percent, split, analyze)
    if plan.ab_test is not None:
        assert ab_analyze is not None
        run.ab_payload = _run_ab_test(
            run.registry,
            target,
            plan,
            ab_analyze,
            run.steps,
            run.audit_base,
            run.clock,
            run.sleep,
            run.t0,
            run.started,
        )
    elif run.past_deadline():
        raise _Rollback(f"deadline of {plan.deadline_seconds:g} s passed before 100%")
    now_champion = run.registry.get_alias(CHAMPION)
    if now_champion != run.old:
        raise _Rollback(
            f"the champion moved from v{run.old} to v{now_champion} during the rollout: this "
            "canary was compared with a model that is no longer live"
        )
    try:
        target.promote()
    except RefitError as exc:
        raise _Rollback(f"target failed to promote: {exc}") from exc
    run.steps.append(StepRecord(100, _now(), outcome="promoted"))


def _run_step(
    run: _Run, champion: Any, percent: int, split: TrafficSplit | None, analyze: Analyzer
) -> TrafficSplit:
    """Move the canary to ``percent`` and hold it for the plan's analyses at that step."""
    plan = run.plan
    if run.past_deadline():
        raise _Rollback(f"deadline of {plan.deadline_seconds:g} s passed before step {percent}%")
    try:
        split = (
            run.target.start(run.mv, champion, percent)
            if split is None
            else run.target.set_traffic(percent)
        )
    except RefitError as exc:
        raise _Rollback(f"target failed to apply step {percent}%: {exc}") from exc
    step = StepRecord(percent, _now())
    run.steps.append(step)
    run.registry.audit.append(
        AuditEvent.CANARY_STEP, {**run.audit_base, "percent": percent, "split": split.to_dict()}
    )
    for _ in range(plan.analyses_per_step):
        run.sleep(plan.interval_seconds)
        results = list(analyze(split, run.clock() - run.t0, percent, plan.interval_seconds))
        dicts = [r.to_dict() for r in results]
        step.analyses.append(dicts)
        for d in dicts:
            run.registry.audit.append(
                AuditEvent.CANARY_CHECK, {**run.audit_base, "percent": percent, **d}
            )
        _judge_analysis(run, step, results)
    return split


def _judge_analysis(run: _Run, step: StepRecord, results: list[CheckOutcome]) -> None:
    """Count a failed analysis; raise `_Rollback` on a decisive one or one too many."""
    bad = [r for r in results if not r.passed]
    if not results:
        bad_reason = "the analysis ran no checks (no data counts as failure)"
    elif bad:
        bad_reason = "; ".join(f"{r.name}: {r.detail}" for r in bad)
    else:
        return
    run.failed += 1
    decisive = [r for r in bad if r.decisive]
    if decisive:
        step.outcome = "failed"
        raise _Rollback(
            f"decisive failure at {step.percent}%: "
            + "; ".join(f"{r.name}: {r.detail}" for r in decisive)
        )
    if run.failed > run.plan.failures_allowed:
        step.outcome = "failed"
        raise _Rollback(
            f"{run.failed} failed analyses > {run.plan.failures_allowed} allowed "
            f"(at {step.percent}%: {bad_reason})"
        )


def _run_shadow(
    registry: ModelRegistry,
    target: Any,
    mv: Any,
    champion: Any,
    plan: RolloutPlan,
    analyze: ShadowAnalyze,
    steps: list[StepRecord],
    audit_base: dict[str, Any],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """The shadow stage: copies only, then pass, or raise `_Rollback` (early or at the end)."""
    spec = plan.shadow
    assert spec is not None
    try:
        split = target.shadow(mv, champion)
    except RefitError as exc:
        raise _Rollback(f"target failed to start the shadow: {exc}") from exc
    step = StepRecord(0, _now(), stage="shadow")
    steps.append(step)
    registry.audit.append(
        AuditEvent.CANARY_STEP,
        {**audit_base, "percent": 0, "stage": "shadow", "split": split.to_dict()},
    )
    s0 = clock()
    for i in range(spec.analyses):
        sleep(plan.interval_seconds)
        last = i == spec.analyses - 1
        results = list(analyze(split, clock() - s0, last))
        dicts = [r.to_dict() for r in results]
        step.analyses.append(dicts)
        for d in dicts:
            registry.audit.append(
                AuditEvent.CANARY_CHECK, {**audit_base, "percent": 0, "stage": "shadow", **d}
            )
        decisive = [r for r in results if not r.passed and (r.decisive or last)]
        if decisive or not results:
            step.outcome = "failed"
            when = "at its last analysis" if last else f"early, at analysis {i + 1}"
            raise _Rollback(
                f"shadow stage failed {when}, before any traffic moved: "
                + ("; ".join(f"{r.name}: {r.detail}" for r in decisive) or "no checks ran")
            )


def _run_ab_test(
    registry: ModelRegistry,
    target: Any,
    plan: RolloutPlan,
    analyze: ABAnalyze,
    steps: list[StepRecord],
    audit_base: dict[str, Any],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    t0: float,
    started: str,
) -> dict[str, Any]:
    """The A/B stage: hold the sticky split, look every interval, apply the declared rule.

    Returns:
        The ``ab_test`` audit payload when the rule promotes.

    Raises:
        _Keep: Inconclusive under ``on_inconclusive: keep``.
        _Rollback: Worse, or inconclusive under ``on_inconclusive: rollback``.
    """
    spec = plan.ab_test
    assert spec is not None
    salt = spec.salt or f"{registry.model_name}-v{audit_base['version']}-{started}"
    try:
        split = target.start_experiment(spec.percent, salt)
    except RefitError as exc:
        raise _Rollback(f"target failed to start the A/B split: {exc}") from exc
    since = time.time()
    step = StepRecord(spec.percent, _now(), stage="ab_test")
    steps.append(step)
    planned = spec.sample_size()
    registry.audit.append(
        AuditEvent.CANARY_STEP,
        {
            **audit_base,
            "percent": spec.percent,
            "stage": "ab_test",
            "split": split.to_dict(),
            "salt": salt,
            "planned": planned.to_dict(),
            "method": spec.method,
        },
    )
    while True:
        left = plan.deadline_seconds - (clock() - t0)
        final = left <= plan.interval_seconds
        sleep(max(0.0, min(plan.interval_seconds, left)))
        look = analyze(salt, final, since)
        check = look.check_dict()
        step.analyses.append([check])
        registry.audit.append(
            AuditEvent.CANARY_CHECK,
            {**audit_base, "percent": spec.percent, "stage": "ab_test", **check},
        )
        if look.decision == "continue":
            continue
        payload = {
            **audit_base,
            **look.to_dict(),
            "salt": salt,
            "method": spec.method,
            "metric": spec.metric,
            "rule": {"on_inconclusive": spec.on_inconclusive},
        }
        registry.audit.append(AuditEvent.AB_TEST, payload)
        if look.decision == "promote":
            return payload
        if look.decision == "keep":
            raise _Keep(f"A/B test: {look.reason}")
        step.outcome = "failed"
        raise _Rollback(f"A/B test: {look.reason}")


def _keep(
    registry: ModelRegistry,
    target: CanaryTarget,
    version: int,
    champion: int | None,
    reason: str,
    audit_base: dict[str, Any],
) -> None:
    """End an inconclusive A/B test: traffic back to the champion, no rollback mark."""
    try:
        target.rollback()
    except RefitError as exc:
        raise DeployError(
            f"ending the A/B test of model {registry.model_name!r} version {version} failed "
            f"on target {target.name!r}: {exc}; the target may still route units to it"
        ) from exc
    registry.update_aliases(
        {CANARY: None},
        statuses={version: "registered"},
        payload={**audit_base, "champion": champion, "kept": True, "reason": reason},
    )


def _promote_aliases(
    registry: ModelRegistry,
    version: int,
    old: int | None,
    reason: str,
    audit_base: dict[str, Any],
    target: str,
) -> None:
    old_prev = registry.get_alias(PREVIOUS)
    statuses = promotion_statuses(version, old, old_prev)
    rollout = Rollout(version, old, "promotion", _now(), reason)
    registry.update_aliases(
        {CHAMPION: version, PREVIOUS: old, CANARY: None},
        expected={CHAMPION: old, PREVIOUS: old_prev},
        statuses=statuses,
        event=AuditEvent.PROMOTION,
        payload={**rollout.to_dict(), **audit_base, "version": version, "target": target},
    )


def _rollback(
    registry: ModelRegistry,
    target: CanaryTarget,
    version: int,
    champion: int | None,
    reason: str,
    audit_base: dict[str, Any],
) -> None:
    target_error = ""
    try:
        target.rollback()
    except RefitError as exc:
        target_error = str(exc)
    rollout = Rollout(
        champion if champion is not None else version, version, "rollback", _now(), reason
    )
    registry.update_aliases(
        {CANARY: None},
        statuses={version: "rolled_back"},
        event=AuditEvent.ROLLBACK,
        payload={
            **audit_base,
            **rollout.to_dict(),
            "target": target.name,
            "target_error": target_error,
        },
    )
    if target_error:
        raise DeployError(
            f"rolling back model {registry.model_name!r} version {version} failed on target "
            f"{target.name!r}: {target_error}; the registry says champion v{champion} but the "
            "target may still route traffic to the canary: check it by hand"
        )
