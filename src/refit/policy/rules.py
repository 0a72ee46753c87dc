"""The retrain policy's rules: their settings (:class:`RetrainPolicy`) and each rule's verdict.

The rules and how they fire: docs/decisions/0014-declarative-retrain-policy.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from refit.errors import PolicyError
from refit.fields import FieldChecks
from refit.policy.combine import RULES, check_combine
from refit.policy.state import Observation, PolicyState

_CHECK = FieldChecks(PolicyError)

#: How a window without labels is named in reasons.
ESTIMATED = "estimated (CBPE, assumes no concept shift)"


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with 2 decimals, or more when needed to tell them apart."""
    for digits in (2, 3, 4, 5, 6):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if sa != sb or a == b:
            return sa, sb
    return f"{a:g}", f"{b:g}"


def _check_low(value: float | None, name: str, *, strict: bool) -> None:
    """Refuse a set ``value`` below 0 (``strict``: at 0 too), naming the field."""
    if value is not None and (value <= 0 if strict else value < 0):
        raise PolicyError(f"{name} must be {'>' if strict else '>='} 0, got {value}")


@dataclass
class RetrainPolicy:
    """When to retrain.

    Attributes:
        drift_share_threshold: Retrain when the drift share reaches this (in [0, 1]); ``None``
            disables the drift trigger.
        metric: Name of the monitored metric, used in reasons.
        metric_threshold: Retrain when the metric is worse than this for
            ``consecutive_windows`` windows; ``None`` disables the metric trigger.
        consecutive_windows: Windows in a row the metric must be worse (>= 1).
        max_model_age_days: Retrain when the model is at least this old (> 0); ``None``
            disables.
        new_data_fraction: Retrain when the new rows since training reach this fraction of the
            training rows (> 0); ``None`` disables.
        cooldown_windows: Windows after a retrain in which no retrain happens (>= 0).
        metric_higher_is_better: ``True`` for accuracy-like metrics (worse = below the
            threshold), ``False`` for losses and errors (worse = above).
        label_drift_threshold: Retrain when the label drift (largest change of a class share)
            reaches this (>= 0); ``None`` disables.
        prediction_drift_threshold: Retrain when the prediction drift (PSI of the champion's
            scores) reaches this (>= 0); ``None`` disables.
        mean_shift_sd: Retrain when a numeric feature's mean moved by at least this many
            reference standard deviations (> 0); ``None`` disables.
        max_retrains: Retraining budget: at most this many retrains (>= 1) within
            ``budget_period_days``; ``None``: no limit.
        max_cost: Retraining budget: at most this cost (> 0) within ``budget_period_days``, each
            retrain costing ``retrain_cost``; ``None``: no limit.
        retrain_cost: Cost charged per retrain against ``max_cost`` (>= 0).
        budget_period_days: The budget's sliding period in days (> 0).
        combine: How the enabled rules combine: ``"any"``, ``"all"`` or a nested expression
            ``{"any"|"all": [rule name or expression, ...]}`` (module docstring).
    """

    drift_share_threshold: float | None = 0.3
    metric: str = "accuracy"
    metric_threshold: float | None = None
    consecutive_windows: int = 2
    max_model_age_days: float | None = None
    new_data_fraction: float | None = None
    cooldown_windows: int = 0
    metric_higher_is_better: bool = True
    label_drift_threshold: float | None = None
    prediction_drift_threshold: float | None = None
    mean_shift_sd: float | None = None
    max_retrains: int | None = None
    max_cost: float | None = None
    retrain_cost: float = 1.0
    budget_period_days: float = 30.0
    combine: str | dict[str, Any] = "any"

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        self.drift_share_threshold = _CHECK.number(
            self.drift_share_threshold, "drift_share_threshold", optional=True
        )
        if self.drift_share_threshold is not None and not 0.0 <= self.drift_share_threshold <= 1:
            raise PolicyError(
                f"drift_share_threshold must be in [0, 1], got {self.drift_share_threshold}"
            )
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise PolicyError(f"metric must be a non-empty string, got {self.metric!r}")
        self.metric_threshold = _CHECK.number(
            self.metric_threshold, "metric_threshold", optional=True
        )
        self.consecutive_windows = _CHECK.integer(
            self.consecutive_windows, "consecutive_windows", 1
        )
        self.max_model_age_days = _CHECK.number(
            self.max_model_age_days, "max_model_age_days", optional=True
        )
        _check_low(self.max_model_age_days, "max_model_age_days", strict=True)
        self.new_data_fraction = _CHECK.number(
            self.new_data_fraction, "new_data_fraction", optional=True
        )
        _check_low(self.new_data_fraction, "new_data_fraction", strict=True)
        self.cooldown_windows = _CHECK.integer(self.cooldown_windows, "cooldown_windows", 0)
        if not isinstance(self.metric_higher_is_better, bool):
            raise PolicyError(
                "metric_higher_is_better must be true or false, got "
                f"{self.metric_higher_is_better!r}"
            )
        for name in ("label_drift_threshold", "prediction_drift_threshold"):
            value = _CHECK.number(getattr(self, name), name, optional=True)
            _check_low(value, name, strict=False)
            setattr(self, name, value)
        self.mean_shift_sd = _CHECK.number(self.mean_shift_sd, "mean_shift_sd", optional=True)
        _check_low(self.mean_shift_sd, "mean_shift_sd", strict=True)
        if self.max_retrains is not None:
            self.max_retrains = _CHECK.integer(self.max_retrains, "max_retrains", 1)
        self.max_cost = _CHECK.number(self.max_cost, "max_cost", optional=True)
        _check_low(self.max_cost, "max_cost", strict=True)
        self.retrain_cost = float(_CHECK.number(self.retrain_cost, "retrain_cost"))
        _check_low(self.retrain_cost, "retrain_cost", strict=False)
        self.budget_period_days = float(
            _CHECK.number(self.budget_period_days, "budget_period_days")
        )
        _check_low(self.budget_period_days, "budget_period_days", strict=True)
        check_combine(self.combine, self.enabled_rules())

    def enabled_rules(self) -> list[str]:
        """Names of the rules this policy turns on, in :data:`RULES` order."""
        settings = {
            "drift_share": self.drift_share_threshold,
            "metric": self.metric_threshold,
            "model_age": self.max_model_age_days,
            "new_data": self.new_data_fraction,
            "label_drift": self.label_drift_threshold,
            "prediction_drift": self.prediction_drift_threshold,
            "mean_shift": self.mean_shift_sd,
        }
        return [name for name in RULES if settings[name] is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainPolicy:
        """Build a policy from a dict; missing fields take their defaults.

        Raises:
            PolicyError: Unknown keys, or a value of the wrong type or out of range.
        """
        _CHECK.check_keys(data, [f.name for f in fields(cls)], "retrain policy")
        return cls(**dict(data))


@dataclass(frozen=True)
class RuleInputs:
    """One window as the rules see it.

    Attributes:
        observation: What the window saw.
        state: The state after the previous window.
        now: The window's time.
        rows: New rows since training, this window's included.
        history: Recent metric values, this window's last (at most ``consecutive_windows``).
        metric_value: This window's metric: measured, else estimated, else ``None``.
        estimated: Whether ``metric_value`` is the estimate (no labels).
    """

    observation: Observation
    state: PolicyState
    now: datetime
    rows: int
    history: list[float]
    metric_value: float | None
    estimated: bool


#: A rule's verdict: whether it fired, and the verdict in words (None: nothing to say).
Verdict = tuple[bool, str | None]


def _drift_share_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    threshold, share_value = policy.drift_share_threshold, w.observation.drift_share
    if threshold is None:
        return None
    if share_value is None:
        return False, "drift share unknown (no reference yet)"
    share, limit = _fmt_pair(share_value, threshold)
    hit = share_value >= threshold
    return hit, f"drift share {share} {'>=' if hit else '<'} {limit}"


def _estimate_suffix(w: RuleInputs) -> str:
    """`` (estimated ..., interval [lo, hi])`` when the metric is the estimate, else ``""``."""
    if not w.estimated:
        return ""
    suffix = f" ({ESTIMATED}"
    if w.observation.estimated_interval is not None:
        lo, hi = w.observation.estimated_interval
        suffix += f", interval [{lo:.3f}, {hi:.3f}]"
    return suffix + ")"


def _worse_run(policy: RetrainPolicy, limit: float, history: list[float]) -> int:
    """How many of the latest metric values in a row are worse than ``limit``."""
    run = 0
    for value in reversed(history):
        worse = value < limit if policy.metric_higher_is_better else value > limit
        if not worse:
            break
        run += 1
    return run


def _metric_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    """Metric decay over consecutive windows (estimated where labels are missing)."""
    if policy.metric_threshold is None:
        return None
    name, limit_value, n = policy.metric, policy.metric_threshold, policy.consecutive_windows
    worse_op, ok_op = ("<", ">=") if policy.metric_higher_is_better else (">", "<=")
    suffix = _estimate_suffix(w)
    run = _worse_run(policy, limit_value, w.history)
    if run >= n:
        values = ", ".join(_fmt_pair(v, limit_value)[0] for v in w.history[-n:])
        limit_s = _fmt_pair(w.history[-1], limit_value)[1]
        return True, (
            f"{name} {worse_op} {limit_s} for {n} consecutive window(s) ({values})"
            + (f"; this window{suffix}" if suffix else "")
        )
    if w.metric_value is None:
        return False, f"{name} not measured this window"
    value_s, limit_s = _fmt_pair(w.metric_value, limit_value)
    if run > 0:
        return False, (
            f"{name} {value_s} {worse_op} {limit_s} for {run} of {n} consecutive windows{suffix}"
        )
    return False, f"{name} {value_s} {ok_op} {limit_s}{suffix}"


def _model_age_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    if policy.max_model_age_days is None:
        return None
    if w.state.model_trained_at is None:
        unknown = "model age unknown (no training time recorded)"
        return False, unknown if w.observation.has_champion else None
    trained = _CHECK.parse_time(w.state.model_trained_at, "state.model_trained_at")
    age = (w.now - trained).total_seconds() / 86400.0
    age_s, max_s = f"{age:.1f}", f"{policy.max_model_age_days:.1f}"
    hit = age >= policy.max_model_age_days
    return hit, f"model age {age_s} days {'>=' if hit else '<'} {max_s}"


def _new_data_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    if policy.new_data_fraction is None:
        return None
    training_rows = w.state.training_rows
    if training_rows <= 0:
        skipped = "new-data check skipped (training rows unknown)"
        return False, skipped if w.observation.has_champion else None
    needed = policy.new_data_fraction * training_rows
    frac = f"{policy.new_data_fraction:.2f}"
    detail = f"{frac} x {training_rows} training rows = {needed:g}"
    hit = w.rows >= needed
    return hit, f"new rows {w.rows} {'>=' if hit else '<'} {detail}"


def _drift_rule(value: float | None, limit: float | None, what: str) -> Verdict | None:
    """Label drift or prediction drift, apart from the features' drift share."""
    if limit is None:
        return None
    if value is None:
        return False, f"{what} unknown (not measured this window)"
    value_s, limit_s = _fmt_pair(value, limit)
    hit = value >= limit
    return hit, f"{what} {value_s} {'>=' if hit else '<'} {limit_s}"


def _label_drift_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    return _drift_rule(w.observation.label_drift, policy.label_drift_threshold, "label drift")


def _prediction_drift_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    return _drift_rule(
        w.observation.prediction_drift, policy.prediction_drift_threshold, "prediction drift"
    )


def _mean_shift_rule(policy: RetrainPolicy, w: RuleInputs) -> Verdict | None:
    """Feature mean shift in reference standard deviations."""
    if policy.mean_shift_sd is None:
        return None
    k, shifts = policy.mean_shift_sd, w.observation.mean_shifts
    if not shifts:
        return False, "mean shift unknown (no reference yet)"
    ranked = sorted(shifts.items(), key=lambda kv: (-kv[1], kv[0]))
    beyond = [f for f, v in ranked if v >= k]
    if not beyond:
        top, top_value = ranked[0]
        return False, f"largest feature mean shift {top} {top_value:.2f} sd < {k:.2f}"
    listed = ", ".join(f"{f} {shifts[f]:.2f}" for f in beyond[:5]) + (
        f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
    )
    return True, f"feature mean shift >= {k:.2f} sd: {listed}"


#: Each rule's verdict, in :data:`RULES` order (the order of the reasons).
_RULE_VERDICTS: dict[str, Callable[[RetrainPolicy, RuleInputs], Verdict | None]] = {
    "drift_share": _drift_share_rule,
    "metric": _metric_rule,
    "model_age": _model_age_rule,
    "new_data": _new_data_rule,
    "label_drift": _label_drift_rule,
    "prediction_drift": _prediction_drift_rule,
    "mean_shift": _mean_shift_rule,
}


def judge_rules(policy: RetrainPolicy, w: RuleInputs) -> tuple[dict[str, bool], dict[str, str]]:
    """Every enabled rule's verdict on the window.

    Returns:
        ``(fired, texts)``: rule -> whether it fired, for every enabled rule, in :data:`RULES`
        order; rule -> its verdict in words, for the rules that have something to say.
    """
    fired: dict[str, bool] = {}
    texts: dict[str, str] = {}
    for rule in RULES:
        verdict = _RULE_VERDICTS[rule](policy, w)
        if verdict is None:
            continue
        fired[rule], text = verdict
        if text is not None:
            texts[rule] = text
    return fired, texts
