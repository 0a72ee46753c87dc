"""Declarative retrain policy: a pure decision per monitoring window.

:func:`decide` takes the policy, the state carried between windows and this window's
observation, and returns a :class:`Decision` with readable reasons and the new state, which the
caller persists (e.g. with the registry's ``write_state``).

Rules (each enabled by setting its threshold; ``None`` turns it off):

``drift_share``
    share of drifted features ``>= drift_share_threshold`` (the label is not a feature).
``metric``
    the metric below ``metric_threshold`` (above, when ``metric_higher_is_better`` is false) in
    each of the last ``consecutive_windows`` windows that reported a metric (windows without a
    metric neither count nor break the run). A window without labels uses the metric
    *estimated* without labels (``Observation.estimated_metric``, CBPE: see
    :mod:`refit.monitoring.estimate`); its reason says "estimated (CBPE, assumes no concept
    shift)" with the interval, and the window is listed in ``state.unlabelled_windows`` until
    :func:`mark_labelled` takes it off.
``model_age``
    model age ``>= max_model_age_days`` (from ``state.model_trained_at``).
``new_data``
    new rows since training ``>= new_data_fraction * state.training_rows``.
``label_drift``
    label drift (prior shift) ``>= label_drift_threshold``: the largest change of one class's
    share between the reference and the window (L-infinity; PSI for a continuous label).
``prediction_drift``
    prediction drift ``>= prediction_drift_threshold``: PSI of the champion's scores on the
    window against its scores on the reference (its holdout when known).
``mean_shift``
    some numeric feature's mean moved by ``>= mean_shift_sd`` reference standard deviations.

Combining rules (``combine``): ``"any"`` (the default: any enabled rule fires a retrain, as
before), ``"all"`` (every enabled rule must fire), or a nested expression, the "hybrid" policy,
e.g. ``{"any": ["model_age", {"all": ["drift_share", "metric"]}]}``: retrain when the model is
too old, or when the features drifted *and* the metric fell. An expression names each enabled
rule at least once and no rule that is off. A rule that could not be measured this window (no
reference, no labels and no estimate) counts as not fired.

Always, whatever ``combine`` says: no champion model yet fires a retrain (and ignores the
cooldown and the budget: there is nothing to serve).

Gates, after the rules:

* a cooldown of ``cooldown_windows`` suppresses retraining in the first ``cooldown_windows``
  windows after a retrain;
* a retraining budget (the "quota" against accidental overload): at most ``max_retrains``
  retrains, and at most ``max_cost`` spent at ``retrain_cost`` per retrain, within any
  ``budget_period_days``; the retrains inside the period are kept in ``state.retrains``;
* a window that cannot train (``Observation.trainable`` false: no labels) defers the retrain
  it calls for: no retrain now, the deferral kept in ``state.deferred_retrain``, and the next
  trainable window retrains for it (still subject to the cooldown and the budget) without
  waiting for its rule to fire again.

After a retrain decision the returned state has its counters reset
(``windows_since_retrain=0``, ``metric_history=[]``, ``rows_since_training=0``);
``training_rows`` and ``model_trained_at`` are left for the caller to set once a model has
actually been trained. On a skip the counters accumulate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, overload

from refit.errors import PolicyError


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with 2 decimals, or more when needed to tell them apart."""
    for digits in (2, 3, 4, 5, 6):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if sa != sb or a == b:
            return sa, sb
    return f"{a:g}", f"{b:g}"


def _check_keys(cls: type, data: Mapping[str, Any], what: str) -> None:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{what} must be a mapping, got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise PolicyError(
            f"{what} has unknown field(s) {', '.join(map(str, unknown))}; "
            f"known fields: {', '.join(known)}"
        )


@overload
def _number(value: Any, name: str) -> float: ...
@overload
def _number(value: Any, name: str, *, optional: bool) -> float | None: ...
def _number(value: Any, name: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PolicyError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise PolicyError(f"{name} must be >= {minimum}, got {value}")
    return value


def _parse_time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{name} must be an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


#: Rule names, as ``combine`` expressions use them.
RULES = (
    "drift_share",
    "metric",
    "model_age",
    "new_data",
    "label_drift",
    "prediction_drift",
    "mean_shift",
)
#: Deepest nesting of a ``combine`` expression.
MAX_COMBINE_DEPTH = 4
#: Unlabelled windows the state lists at most (the oldest are dropped).
MAX_UNLABELLED_WINDOWS = 500
#: Reasons a deferred retrain keeps at most (one per rule that fired, and the no-champion one).
MAX_DEFERRED_REASONS = 16
#: Retrains the state remembers for the budget at most.
MAX_BUDGET_RECORDS = 1000
#: How a window without labels is named in reasons.
ESTIMATED = "estimated (CBPE, assumes no concept shift)"


def _check_combine(expr: Any, enabled: list[str]) -> None:
    """Validate a ``combine`` expression against the enabled rules.

    Raises:
        PolicyError: Unknown operator or rule, a rule that is off, an enabled rule left out.
    """
    if isinstance(expr, str):
        if expr not in ("any", "all"):
            raise PolicyError(f"combine must be 'any', 'all' or an expression, got {expr!r}")
        return
    used: set[str] = set()

    def walk(node: Any, depth: int, where: str) -> None:
        if isinstance(node, str):
            if node not in RULES:
                raise PolicyError(
                    f"combine: unknown rule {node!r} at {where}; rules: {', '.join(RULES)}"
                )
            if node not in enabled:
                raise PolicyError(
                    f"combine: rule {node!r} at {where} is off (set its threshold to use it)"
                )
            used.add(node)
            return
        if depth > MAX_COMBINE_DEPTH:
            raise PolicyError(f"combine: nested deeper than {MAX_COMBINE_DEPTH} at {where}")
        if not isinstance(node, Mapping) or len(node) != 1:
            raise PolicyError(
                f"combine: {where} must be a rule name or a one-key mapping "
                f"{{'any'|'all': [...]}}, got {node!r}"
            )
        ((op, items),) = node.items()
        if op not in ("any", "all"):
            raise PolicyError(f"combine: operator must be 'any' or 'all' at {where}, got {op!r}")
        if not isinstance(items, list | tuple) or not items:
            raise PolicyError(f"combine: {where}.{op} must be a non-empty list, got {items!r}")
        for i, item in enumerate(items):
            walk(item, depth + 1, f"{where}.{op}[{i}]")

    walk(expr, 1, "combine")
    left_out = [r for r in enabled if r not in used]
    if left_out:
        raise PolicyError(
            f"combine: enabled rule(s) {', '.join(left_out)} missing from the expression "
            "(use each enabled rule, or turn it off)"
        )


def _evaluate_combine(expr: Any, fired: Mapping[str, bool]) -> bool:
    if isinstance(expr, str):
        if expr in ("any", "all"):
            values = list(fired.values())
            return any(values) if expr == "any" else bool(values) and all(values)
        return fired.get(expr, False)
    ((op, items),) = expr.items()
    values = [_evaluate_combine(item, fired) for item in items]
    return any(values) if op == "any" else all(values)


def _describe_combine(expr: Any) -> str:
    if isinstance(expr, str):
        return expr
    ((op, items),) = expr.items()
    return f"{op}(" + ", ".join(_describe_combine(i) for i in items) + ")"


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
        self.drift_share_threshold = _number(
            self.drift_share_threshold, "drift_share_threshold", optional=True
        )
        if self.drift_share_threshold is not None and not 0.0 <= self.drift_share_threshold <= 1:
            raise PolicyError(
                f"drift_share_threshold must be in [0, 1], got {self.drift_share_threshold}"
            )
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise PolicyError(f"metric must be a non-empty string, got {self.metric!r}")
        self.metric_threshold = _number(self.metric_threshold, "metric_threshold", optional=True)
        self.consecutive_windows = _integer(self.consecutive_windows, "consecutive_windows", 1)
        self.max_model_age_days = _number(
            self.max_model_age_days, "max_model_age_days", optional=True
        )
        if self.max_model_age_days is not None and self.max_model_age_days <= 0:
            raise PolicyError(f"max_model_age_days must be > 0, got {self.max_model_age_days}")
        self.new_data_fraction = _number(self.new_data_fraction, "new_data_fraction", optional=True)
        if self.new_data_fraction is not None and self.new_data_fraction <= 0:
            raise PolicyError(f"new_data_fraction must be > 0, got {self.new_data_fraction}")
        self.cooldown_windows = _integer(self.cooldown_windows, "cooldown_windows", 0)
        if not isinstance(self.metric_higher_is_better, bool):
            raise PolicyError(
                "metric_higher_is_better must be true or false, got "
                f"{self.metric_higher_is_better!r}"
            )
        for name in ("label_drift_threshold", "prediction_drift_threshold"):
            value = _number(getattr(self, name), name, optional=True)
            if value is not None and value < 0:
                raise PolicyError(f"{name} must be >= 0, got {value}")
            setattr(self, name, value)
        self.mean_shift_sd = _number(self.mean_shift_sd, "mean_shift_sd", optional=True)
        if self.mean_shift_sd is not None and self.mean_shift_sd <= 0:
            raise PolicyError(f"mean_shift_sd must be > 0, got {self.mean_shift_sd}")
        if self.max_retrains is not None:
            self.max_retrains = _integer(self.max_retrains, "max_retrains", 1)
        self.max_cost = _number(self.max_cost, "max_cost", optional=True)
        if self.max_cost is not None and self.max_cost <= 0:
            raise PolicyError(f"max_cost must be > 0, got {self.max_cost}")
        self.retrain_cost = float(_number(self.retrain_cost, "retrain_cost"))
        if self.retrain_cost < 0:
            raise PolicyError(f"retrain_cost must be >= 0, got {self.retrain_cost}")
        self.budget_period_days = float(_number(self.budget_period_days, "budget_period_days"))
        if self.budget_period_days <= 0:
            raise PolicyError(f"budget_period_days must be > 0, got {self.budget_period_days}")
        _check_combine(self.combine, self.enabled_rules())

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
        _check_keys(cls, data, "retrain policy")
        return cls(**dict(data))


@dataclass
class PolicyState:
    """What the policy remembers between windows.

    Attributes:
        windows_since_retrain: Windows seen since the last retrain decision.
        metric_history: Recent metric values (at most ``consecutive_windows`` kept).
        rows_since_training: New rows seen since the last retrain decision.
        training_rows: Rows the current model was trained on (set by the caller).
        model_trained_at: ISO time the current model was trained (set by the caller).
        retrains: The retrains inside the budget's period, oldest first: ``{"at": ISO time,
            "cost": cost charged}``.
        unlabelled_windows: Windows (run labels, else their times) judged without labels,
            oldest first; :func:`mark_labelled` takes a window off once its labels land.
        deferred_retrain: A retrain a window without labels called for and could not do
            (``{"window": name, "at": ISO time, "reasons": [...]}``, the first such window's),
            or None; the next trainable window retrains for it, which clears it.
    """

    windows_since_retrain: int = 0
    metric_history: list[float] = field(default_factory=list)
    rows_since_training: int = 0
    training_rows: int = 0
    model_trained_at: str | None = None
    retrains: list[dict[str, Any]] = field(default_factory=list)
    unlabelled_windows: list[str] = field(default_factory=list)
    deferred_retrain: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        self.windows_since_retrain = _integer(
            self.windows_since_retrain, "windows_since_retrain", 0
        )
        if not isinstance(self.metric_history, list | tuple):
            raise PolicyError(f"metric_history must be a list, got {self.metric_history!r}")
        self.metric_history = [
            float(_number(v, f"metric_history[{i}]")) for i, v in enumerate(self.metric_history)
        ]
        self.rows_since_training = _integer(self.rows_since_training, "rows_since_training", 0)
        self.training_rows = _integer(self.training_rows, "training_rows", 0)
        if self.model_trained_at is not None:
            _parse_time(self.model_trained_at, "model_trained_at")
        if not isinstance(self.retrains, list | tuple):
            raise PolicyError(f"retrains must be a list, got {self.retrains!r}")
        retrains = []
        for i, entry in enumerate(self.retrains[-MAX_BUDGET_RECORDS:]):
            if not isinstance(entry, Mapping) or set(entry) != {"at", "cost"}:
                raise PolicyError(
                    f"retrains[{i}] must be {{'at': time, 'cost': number}}, got {entry!r}"
                )
            _parse_time(entry["at"], f"retrains[{i}].at")
            retrains.append(
                {"at": entry["at"], "cost": float(_number(entry["cost"], f"retrains[{i}].cost"))}
            )
        self.retrains = retrains
        if not isinstance(self.unlabelled_windows, list | tuple) or not all(
            isinstance(w, str) and w for w in self.unlabelled_windows
        ):
            raise PolicyError(
                "unlabelled_windows must be a list of non-empty strings, got "
                f"{self.unlabelled_windows!r}"
            )
        self.unlabelled_windows = list(self.unlabelled_windows)[-MAX_UNLABELLED_WINDOWS:]
        deferred = self.deferred_retrain
        if deferred is not None:
            if not isinstance(deferred, Mapping) or set(deferred) != {"window", "at", "reasons"}:
                raise PolicyError(
                    "deferred_retrain must be None or {'window': name, 'at': time, "
                    f"'reasons': [...]}}, got {deferred!r}"
                )
            reasons = deferred["reasons"]
            if not (isinstance(deferred["window"], str) and deferred["window"]) or not (
                isinstance(reasons, list | tuple)
                and 0 < len(reasons) <= MAX_DEFERRED_REASONS
                and all(isinstance(r, str) for r in reasons)
            ):
                raise PolicyError(
                    "deferred_retrain needs a non-empty window name and 1 to "
                    f"{MAX_DEFERRED_REASONS} reasons (strings), got {deferred!r}"
                )
            _parse_time(deferred["at"], "deferred_retrain.at")
            self.deferred_retrain = {
                "window": deferred["window"],
                "at": deferred["at"],
                "reasons": list(reasons),
            }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyState:
        """Build a state from a dict; missing fields take their defaults.

        Raises:
            PolicyError: Unknown keys or invalid values.
        """
        _check_keys(cls, data, "policy state")
        return cls(**dict(data))


@dataclass(frozen=True)
class Observation:
    """What one monitoring window saw.

    Attributes:
        drift_share: Share of drifted features, or ``None`` when not measured (no reference).
        metric_value: The monitored metric, or ``None`` when no labels arrived.
        new_rows: Rows that arrived in this window.
        now: ISO 8601 time of the window (naive times are taken as UTC).
        has_champion: Whether a champion model exists.
        label_drift: Label drift (largest change of a class share), or ``None`` when not
            measured (no labels or no reference).
        prediction_drift: Prediction drift (PSI of the champion's scores), or ``None``.
        mean_shifts: Numeric feature -> ``|mean(window) - mean(reference)| / std(reference)``;
            empty when not measured.
        estimated_metric: The metric estimated without labels (CBPE), used when
            ``metric_value`` is ``None``.
        estimated_interval: The estimate's interval ``(lower, upper)``.
        window: Name of the window (the run label) for ``state.unlabelled_windows``; empty:
            its time.
        labelled: Whether the window has labels (False: it is listed in
            ``state.unlabelled_windows``). A window without a metric is not unlabelled by that
            alone: an alert or a backfill without a champion score carries no metric either.
        trainable: Whether a challenger can be trained on this window (False: it has no
            labels); a retrain it calls for is deferred (``state.deferred_retrain``).
    """

    drift_share: float | None
    metric_value: float | None
    new_rows: int
    now: str
    has_champion: bool
    label_drift: float | None = None
    prediction_drift: float | None = None
    mean_shifts: Mapping[str, float] = field(default_factory=dict)
    estimated_metric: float | None = None
    estimated_interval: tuple[float, float] | None = None
    window: str = ""
    labelled: bool = True
    trainable: bool = True


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


def _check_observation(observation: Observation) -> datetime:
    if observation.drift_share is not None:
        share = _number(observation.drift_share, "observation.drift_share")
        if not 0.0 <= share <= 1.0:
            raise PolicyError(f"observation.drift_share must be in [0, 1], got {share}")
    if observation.metric_value is not None:
        _number(observation.metric_value, "observation.metric_value")
    for name in ("label_drift", "prediction_drift", "estimated_metric"):
        value = getattr(observation, name)
        if value is not None:
            _number(value, f"observation.{name}")
    if observation.label_drift is not None and observation.label_drift < 0:
        raise PolicyError(f"observation.label_drift must be >= 0, got {observation.label_drift}")
    if observation.prediction_drift is not None and observation.prediction_drift < 0:
        raise PolicyError(
            f"observation.prediction_drift must be >= 0, got {observation.prediction_drift}"
        )
    if not isinstance(observation.mean_shifts, Mapping):
        raise PolicyError(
            f"observation.mean_shifts must be a mapping, got {observation.mean_shifts!r}"
        )
    for name, value in observation.mean_shifts.items():
        _number(value, f"observation.mean_shifts[{name!r}]")
    if observation.estimated_interval is not None:
        interval = observation.estimated_interval
        if not isinstance(interval, list | tuple) or len(interval) != 2:
            raise PolicyError(
                f"observation.estimated_interval must be (lower, upper), got {interval!r}"
            )
        lo = _number(interval[0], "observation.estimated_interval[0]")
        hi = _number(interval[1], "observation.estimated_interval[1]")
        assert lo is not None and hi is not None
        if lo > hi:
            raise PolicyError(f"observation.estimated_interval has lower {lo} > upper {hi}")
    _integer(observation.new_rows, "observation.new_rows", 0)
    for flag in ("has_champion", "labelled", "trainable"):
        if not isinstance(getattr(observation, flag), bool):
            raise PolicyError(
                f"observation.{flag} must be true or false, got {getattr(observation, flag)!r}"
            )
    return _parse_time(observation.now, "observation.now")


def mark_labelled(state: PolicyState, windows: list[str] | tuple[str, ...]) -> PolicyState:
    """Take windows whose labels have landed off ``state.unlabelled_windows``.

    Args:
        state: The policy state.
        windows: Window names (run labels) now labelled; names not listed are ignored.

    Returns:
        A new state without those windows.
    """
    done = set(windows)
    return replace(state, unlabelled_windows=[w for w in state.unlabelled_windows if w not in done])


def _budget(
    policy: RetrainPolicy, state: PolicyState, now: datetime
) -> tuple[list[dict[str, Any]], str]:
    """The retrains inside the budget period, and why the budget blocks one more ('' if not)."""
    period = policy.budget_period_days
    kept = [
        r
        for r in state.retrains
        if (now - _parse_time(r["at"], "state.retrains.at")).total_seconds() < period * 86400
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
    now = _check_observation(observation)
    windows = state.windows_since_retrain + 1
    rows = state.rows_since_training + observation.new_rows
    labelled = observation.metric_value is not None
    estimated = not labelled and observation.estimated_metric is not None
    metric_value = observation.metric_value if labelled else observation.estimated_metric
    history = list(state.metric_history)
    if metric_value is not None:
        history.append(float(metric_value))
    history = history[-policy.consecutive_windows :]
    unlabelled = list(state.unlabelled_windows)
    if observation.has_champion and not observation.labelled:
        name = observation.window or observation.now
        if name not in unlabelled:
            unlabelled.append(name)
        unlabelled = unlabelled[-MAX_UNLABELLED_WINDOWS:]

    fired: dict[str, bool] = {}  # rule -> fired, for every enabled rule
    texts: dict[str, str] = {}  # rule -> its verdict in words
    notes: list[str] = []

    # Drift.
    if policy.drift_share_threshold is not None:
        if observation.drift_share is None:
            fired["drift_share"], texts["drift_share"] = (
                False,
                "drift share unknown (no reference yet)",
            )
        else:
            share, limit = _fmt_pair(observation.drift_share, policy.drift_share_threshold)
            hit = observation.drift_share >= policy.drift_share_threshold
            fired["drift_share"] = hit
            texts["drift_share"] = f"drift share {share} {'>=' if hit else '<'} {limit}"

    # Metric decay over consecutive windows (estimated without labels where labels are missing).
    if policy.metric_threshold is not None:
        name, limit_value, n = policy.metric, policy.metric_threshold, policy.consecutive_windows
        worse_op, ok_op = ("<", ">=") if policy.metric_higher_is_better else (">", "<=")
        suffix = ""
        if estimated:
            suffix = f" ({ESTIMATED}"
            if observation.estimated_interval is not None:
                lo, hi = observation.estimated_interval
                suffix += f", interval [{lo:.3f}, {hi:.3f}]"
            suffix += ")"

        def is_worse(v: float) -> bool:
            return v < limit_value if policy.metric_higher_is_better else v > limit_value

        run = 0
        for value in reversed(history):
            if not is_worse(value):
                break
            run += 1
        fired["metric"] = run >= n
        if run >= n:
            values = ", ".join(_fmt_pair(v, limit_value)[0] for v in history[-n:])
            limit_s = _fmt_pair(history[-1], limit_value)[1]
            texts["metric"] = (
                f"{name} {worse_op} {limit_s} for {n} consecutive window(s) ({values})"
                + (f"; this window{suffix}" if suffix else "")
            )
        elif metric_value is None:
            texts["metric"] = f"{name} not measured this window"
        else:
            value_s, limit_s = _fmt_pair(metric_value, limit_value)
            if run > 0:
                texts["metric"] = (
                    f"{name} {value_s} {worse_op} {limit_s} for {run} of {n} consecutive "
                    f"windows{suffix}"
                )
            else:
                texts["metric"] = f"{name} {value_s} {ok_op} {limit_s}{suffix}"

    # Model age.
    if policy.max_model_age_days is not None:
        fired["model_age"] = False
        if state.model_trained_at is None:
            if observation.has_champion:
                texts["model_age"] = "model age unknown (no training time recorded)"
        else:
            trained = _parse_time(state.model_trained_at, "state.model_trained_at")
            age = (now - trained).total_seconds() / 86400.0
            age_s, max_s = f"{age:.1f}", f"{policy.max_model_age_days:.1f}"
            fired["model_age"] = age >= policy.max_model_age_days
            texts["model_age"] = (
                f"model age {age_s} days {'>=' if fired['model_age'] else '<'} {max_s}"
            )

    # New data volume.
    if policy.new_data_fraction is not None:
        fired["new_data"] = False
        if state.training_rows <= 0:
            if observation.has_champion:
                texts["new_data"] = "new-data check skipped (training rows unknown)"
        else:
            needed = policy.new_data_fraction * state.training_rows
            frac = f"{policy.new_data_fraction:.2f}"
            detail = f"{frac} x {state.training_rows} training rows = {needed:g}"
            fired["new_data"] = rows >= needed
            texts["new_data"] = f"new rows {rows} {'>=' if fired['new_data'] else '<'} {detail}"

    # Label drift and prediction drift, apart from the features' drift share.
    for rule, drift_value, drift_limit, what in (
        ("label_drift", observation.label_drift, policy.label_drift_threshold, "label drift"),
        (
            "prediction_drift",
            observation.prediction_drift,
            policy.prediction_drift_threshold,
            "prediction drift",
        ),
    ):
        if drift_limit is None:
            continue
        if drift_value is None:
            fired[rule], texts[rule] = False, f"{what} unknown (not measured this window)"
        else:
            value_s, limit_s = _fmt_pair(drift_value, drift_limit)
            fired[rule] = drift_value >= drift_limit
            texts[rule] = f"{what} {value_s} {'>=' if fired[rule] else '<'} {limit_s}"

    # Feature mean shift in reference standard deviations.
    if policy.mean_shift_sd is not None:
        k = policy.mean_shift_sd
        if not observation.mean_shifts:
            fired["mean_shift"], texts["mean_shift"] = (
                False,
                "mean shift unknown (no reference yet)",
            )
        else:
            ranked = sorted(observation.mean_shifts.items(), key=lambda kv: (-kv[1], kv[0]))
            beyond = [f for f, v in ranked if v >= k]
            top, top_value = ranked[0]
            fired["mean_shift"] = bool(beyond)
            if beyond:
                listed = ", ".join(f"{f} {observation.mean_shifts[f]:.2f}" for f in beyond[:5]) + (
                    f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
                )
                texts["mean_shift"] = f"feature mean shift >= {k:.2f} sd: {listed}"
            else:
                texts["mean_shift"] = (
                    f"largest feature mean shift {top} {top_value:.2f} sd < {k:.2f}"
                )

    triggers: list[str] = []
    if not observation.has_champion:
        triggers.append("no champion model: training the first one")
    rules_fire = _evaluate_combine(policy.combine, fired) if fired else False
    if rules_fire:
        triggers += [texts[r] for r in fired if fired[r] and r in texts]
        if policy.combine != "any":
            triggers.append(f"rules combined as {_describe_combine(policy.combine)}")
    for rule in fired:
        if rule in texts and not (rules_fire and fired[rule]):
            notes.append(texts[rule])
    if fired and not rules_fire and policy.combine != "any" and any(fired.values()):
        hits = [r for r in fired if fired[r]]
        notes.append(
            f"rules combined as {_describe_combine(policy.combine)}: only {', '.join(hits)} fired"
        )

    deferred = state.deferred_retrain
    fired_now = list(triggers)  # what this window's own rules call for
    if deferred is not None and observation.trainable:
        triggers.append(
            f"retrain deferred from window {deferred['window']} (no labels to train on): "
            + "; ".join(deferred["reasons"])
        )

    retrain = bool(triggers)
    reasons = triggers
    kept, blocked = _budget(policy, state, now)
    if retrain and observation.has_champion and windows <= policy.cooldown_windows:
        retrain = False
        reasons = [
            f"cooldown: window {windows} of {policy.cooldown_windows} after the last retrain; "
            f"suppressed: {'; '.join(triggers)}"
        ]
    elif retrain and observation.has_champion and blocked:
        retrain = False
        reasons = [f"{blocked}; suppressed: {'; '.join(triggers)}"]
    elif retrain and not observation.trainable:
        retrain = False
        if deferred is None:
            name = observation.window or observation.now
            deferred = {
                "window": name,
                "at": observation.now,
                "reasons": fired_now[:MAX_DEFERRED_REASONS],
            }
        reasons = [
            "retrain deferred: the window has no labels to train on; rerun when its labels "
            "land (e.g. after `refit labels join`), or the next labelled window retrains for "
            f"it; fired: {'; '.join(triggers)}"
        ]
    elif not retrain:
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
            metric_history=history,
            rows_since_training=rows,
            retrains=kept,
            unlabelled_windows=unlabelled,
            deferred_retrain=deferred,
        )
    return Decision(retrain=retrain, reasons=reasons, state=new_state)
