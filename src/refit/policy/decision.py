"""A retrain decision per monitoring window: :func:`decide` and the gates after the rules.

:func:`decide` takes the policy, the state carried between windows and this window's
observation, and returns a :class:`Decision` with readable reasons and the new state, which the
caller persists (e.g. with the registry's ``write_state``). The rules, how they combine, and the
gates (no champion, cooldown, budget, deferral): docs/decisions/0014-declarative-retrain-policy.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from refit.errors import PolicyError
from refit.fields import FieldChecks
from refit.policy.combine import describe_combine, evaluate_combine
from refit.policy.rules import RetrainPolicy, RuleInputs, judge_rules
from refit.policy.state import (
    MAX_BUDGET_RECORDS,
    MAX_DEFERRED_REASONS,
    MAX_UNLABELLED_WINDOWS,
    Observation,
    PolicyState,
    check_observation,
)

_CHECK = FieldChecks(PolicyError)


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`.

    Attributes:
        retrain: Whether to retrain now.
        reasons: Readable reasons with the numbers (why retrain, or why not).
        state: The new state after this window; the caller persists it.
    """

    retrain: bool
    reasons: list[str]
    state: PolicyState

    @property
    def reason(self) -> str:
        """All reasons joined with ``"; "``."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "state": self.state.to_dict(),
        }


def _budget(
    policy: RetrainPolicy, state: PolicyState, now: datetime
) -> tuple[list[dict[str, Any]], str]:
    """The retrains inside the budget period, and why the budget blocks one more ('' if not)."""
    period = policy.budget_period_days
    kept = [
        r
        for r in state.retrains
        if (now - _CHECK.parse_time(r["at"], "state.retrains.at")).total_seconds() < period * 86400
    ]
    count, spent = len(kept), sum(r["cost"] for r in kept)
    days = f"{period:g} days"
    if policy.max_retrains is not None and count >= policy.max_retrains:
        return (
            kept,
            f"retraining budget: {count} of {policy.max_retrains} retrains used in the last {days}",
        )
    if policy.max_cost is not None and spent + policy.retrain_cost > policy.max_cost:
        return kept, (
            f"retraining budget: cost {spent:g} spent in the last {days}, one more retrain "
            f"({policy.retrain_cost:g}) would pass {policy.max_cost:g}"
        )
    return kept, ""


def decide(policy: RetrainPolicy, state: PolicyState, observation: Observation) -> Decision:
    """Decide whether to retrain in this window.

    Args:
        policy: The retrain policy.
        state: The state after the previous window (``PolicyState()`` the first time).
        observation: What this window saw.

    Returns:
        The decision, its reasons (the rules that fired when retraining; each rule's verdict
        when skipping; the windows still unlabelled last) and the new state.

    Raises:
        PolicyError: If the observation or state holds invalid values (bad time, negative rows).
    """
    now = check_observation(observation)
    windows = state.windows_since_retrain + 1
    inputs = _rule_inputs(policy, state, observation, now)
    unlabelled = _unlabelled(state, observation)
    fired, texts = judge_rules(policy, inputs)
    triggers, notes = _triggers(policy, observation, fired, texts)

    deferred = state.deferred_retrain
    fired_now = list(triggers)  # what this window's own rules call for
    if deferred is not None and observation.trainable:
        triggers.append(
            f"retrain deferred from window {deferred['window']} (no labels to train on): "
            + "; ".join(deferred["reasons"])
        )

    kept, blocked = _budget(policy, state, now)
    retrain, reasons, deferred = _gate(
        policy, observation, windows, triggers, blocked, deferred, fired_now
    )
    if not triggers:
        reasons = notes or ["no retrain trigger fired"]
    if unlabelled:
        shown = ", ".join(unlabelled[-5:]) + (
            f" and {len(unlabelled) - 5} earlier" if len(unlabelled) > 5 else ""
        )
        reasons = [*reasons, f"{len(unlabelled)} window(s) still unlabelled: {shown}"]

    if retrain:
        kept = [*kept, {"at": observation.now, "cost": policy.retrain_cost}][-MAX_BUDGET_RECORDS:]
        new_state = replace(
            state,
            windows_since_retrain=0,
            metric_history=[],
            rows_since_training=0,
            retrains=kept,
            unlabelled_windows=unlabelled,
            deferred_retrain=None,
        )
    else:
        new_state = replace(
            state,
            windows_since_retrain=windows,
            metric_history=inputs.history,
            rows_since_training=inputs.rows,
            retrains=kept,
            unlabelled_windows=unlabelled,
            deferred_retrain=deferred,
        )
    return Decision(retrain=retrain, reasons=reasons, state=new_state)


def _rule_inputs(
    policy: RetrainPolicy, state: PolicyState, observation: Observation, now: datetime
) -> RuleInputs:
    """The window as the rules see it: rows since training, the metric and its history."""
    labelled = observation.metric_value is not None
    estimated = not labelled and observation.estimated_metric is not None
    metric_value = observation.metric_value if labelled else observation.estimated_metric
    history = list(state.metric_history)
    if metric_value is not None:
        history.append(float(metric_value))
    return RuleInputs(
        observation=observation,
        state=state,
        now=now,
        rows=state.rows_since_training + observation.new_rows,
        history=history[-policy.consecutive_windows :],
        metric_value=metric_value,
        estimated=estimated,
    )


def _unlabelled(state: PolicyState, observation: Observation) -> list[str]:
    """The unlabelled windows after this one (listed when a champion judged it without labels)."""
    unlabelled = list(state.unlabelled_windows)
    if observation.has_champion and not observation.labelled:
        name = observation.window or observation.now
        if name not in unlabelled:
            unlabelled.append(name)
        unlabelled = unlabelled[-MAX_UNLABELLED_WINDOWS:]
    return unlabelled


def _triggers(
    policy: RetrainPolicy,
    observation: Observation,
    fired: dict[str, bool],
    texts: dict[str, str],
) -> tuple[list[str], list[str]]:
    """What calls for a retrain (no champion; the rules, combined) and the other verdicts."""
    triggers: list[str] = []
    if not observation.has_champion:
        triggers.append("no champion model: training the first one")
    rules_fire = evaluate_combine(policy.combine, fired) if fired else False
    combined = policy.combine != "any"
    if rules_fire:
        triggers += [texts[r] for r in fired if fired[r] and r in texts]
        if combined:
            triggers.append(f"rules combined as {describe_combine(policy.combine)}")
    notes = [texts[r] for r in fired if r in texts and not (rules_fire and fired[r])]
    hits = [r for r in fired if fired[r]]
    if not rules_fire and combined and hits:
        notes.append(
            f"rules combined as {describe_combine(policy.combine)}: only {', '.join(hits)} fired"
        )
    return triggers, notes


def _gate(
    policy: RetrainPolicy,
    observation: Observation,
    windows: int,
    triggers: list[str],
    blocked: str,
    deferred: dict[str, Any] | None,
    fired_now: list[str],
) -> tuple[bool, list[str], dict[str, Any] | None]:
    """Whether the triggers retrain now: ``(retrain, reasons, deferred retrain)``.

    The cooldown and the budget suppress a retrain (not the first model's); a window without
    labels defers it. With no trigger the reasons are left to the caller.
    """
    if not triggers:
        return False, triggers, deferred
    suppressed = "; ".join(triggers)
    if observation.has_champion and windows <= policy.cooldown_windows:
        return (
            False,
            [
                f"cooldown: window {windows} of {policy.cooldown_windows} after the last retrain; "
                f"suppressed: {suppressed}"
            ],
            deferred,
        )
    if observation.has_champion and blocked:
        return False, [f"{blocked}; suppressed: {suppressed}"], deferred
    if not observation.trainable:
        if deferred is None:
            deferred = {
                "window": observation.window or observation.now,
                "at": observation.now,
                "reasons": fired_now[:MAX_DEFERRED_REASONS],
            }
        return (
            False,
            [
                "retrain deferred: the window has no labels to train on; rerun when its labels "
                "land (e.g. after `refit labels join`), or the next labelled window retrains for "
                f"it; fired: {suppressed}"
            ],
            deferred,
        )
    return True, triggers, deferred
