"""Declarative retrain policy: a pure decision per monitoring window.

:func:`decide` takes the policy, the state carried between windows and this window's
observation, and returns a :class:`Decision` with readable reasons and the new state, which the
caller persists (e.g. with the registry's ``write_state``).

Triggers (any one fires a retrain):

* no champion model yet (this one also ignores the cooldown: there is nothing to cool down);
* drift share ``>= drift_share_threshold``;
* the metric below ``metric_threshold`` (above, when ``metric_higher_is_better`` is false) in
  each of the last ``consecutive_windows`` windows that reported a metric (windows without a
  metric neither count nor break the run);
* model age ``>= max_model_age_days`` (from ``state.model_trained_at``);
* new rows since training ``>= new_data_fraction * state.training_rows``.

A cooldown of ``cooldown_windows`` suppresses retraining in the first ``cooldown_windows``
windows after a retrain. After a retrain decision the returned state has its counters reset
(``windows_since_retrain=0``, ``metric_history=[]``, ``rows_since_training=0``);
``training_rows`` and ``model_trained_at`` are left for the caller to set once a model has
actually been trained. On a skip the counters accumulate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

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
    """

    drift_share_threshold: float | None = 0.3
    metric: str = "accuracy"
    metric_threshold: float | None = None
    consecutive_windows: int = 2
    max_model_age_days: float | None = None
    new_data_fraction: float | None = None
    cooldown_windows: int = 0
    metric_higher_is_better: bool = True

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
    """

    windows_since_retrain: int = 0
    metric_history: list[float] = field(default_factory=list)
    rows_since_training: int = 0
    training_rows: int = 0
    model_trained_at: str | None = None

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
    """

    drift_share: float | None
    metric_value: float | None
    new_rows: int
    now: str
    has_champion: bool


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
    _integer(observation.new_rows, "observation.new_rows", 0)
    if not isinstance(observation.has_champion, bool):
        raise PolicyError(
            f"observation.has_champion must be true or false, got {observation.has_champion!r}"
        )
    return _parse_time(observation.now, "observation.now")


def decide(policy: RetrainPolicy, state: PolicyState, observation: Observation) -> Decision:
    """Decide whether to retrain in this window.

    Args:
        policy: The retrain policy.
        state: The state after the previous window (``PolicyState()`` the first time).
        observation: What this window saw.

    Returns:
        The decision, its reasons (triggers when retraining; each check's verdict when
        skipping) and the new state.

    Raises:
        PolicyError: If the observation or state holds invalid values (bad time, negative rows).
    """
    now = _check_observation(observation)
    windows = state.windows_since_retrain + 1
    rows = state.rows_since_training + observation.new_rows
    history = list(state.metric_history)
    if observation.metric_value is not None:
        history.append(float(observation.metric_value))
    history = history[-policy.consecutive_windows :]

    triggers: list[str] = []
    notes: list[str] = []

    if not observation.has_champion:
        triggers.append("no champion model: training the first one")

    # Drift.
    if policy.drift_share_threshold is not None:
        if observation.drift_share is None:
            notes.append("drift share unknown (no reference yet)")
        else:
            share, limit = _fmt_pair(observation.drift_share, policy.drift_share_threshold)
            if observation.drift_share >= policy.drift_share_threshold:
                triggers.append(f"drift share {share} >= {limit}")
            else:
                notes.append(f"drift share {share} < {limit}")

    # Metric decay over consecutive windows.
    if policy.metric_threshold is not None:
        name, limit_value, n = policy.metric, policy.metric_threshold, policy.consecutive_windows
        worse_op, ok_op = ("<", ">=") if policy.metric_higher_is_better else (">", "<=")

        def is_worse(v: float) -> bool:
            return v < limit_value if policy.metric_higher_is_better else v > limit_value

        run = 0
        for value in reversed(history):
            if not is_worse(value):
                break
            run += 1
        if run >= n:
            values = ", ".join(_fmt_pair(v, limit_value)[0] for v in history[-n:])
            limit_s = _fmt_pair(history[-1], limit_value)[1]
            triggers.append(f"{name} {worse_op} {limit_s} for {n} consecutive window(s) ({values})")
        elif observation.metric_value is None:
            notes.append(f"{name} not measured this window")
        else:
            value_s, limit_s = _fmt_pair(observation.metric_value, limit_value)
            if run > 0:
                notes.append(
                    f"{name} {value_s} {worse_op} {limit_s} for {run} of {n} consecutive windows"
                )
            else:
                notes.append(f"{name} {value_s} {ok_op} {limit_s}")

    # Model age.
    if policy.max_model_age_days is not None:
        if state.model_trained_at is None:
            if observation.has_champion:
                notes.append("model age unknown (no training time recorded)")
        else:
            trained = _parse_time(state.model_trained_at, "state.model_trained_at")
            age = (now - trained).total_seconds() / 86400.0
            age_s, max_s = f"{age:.1f}", f"{policy.max_model_age_days:.1f}"
            if age >= policy.max_model_age_days:
                triggers.append(f"model age {age_s} days >= {max_s}")
            else:
                notes.append(f"model age {age_s} days < {max_s}")

    # New data volume.
    if policy.new_data_fraction is not None:
        if state.training_rows <= 0:
            if observation.has_champion:
                notes.append("new-data check skipped (training rows unknown)")
        else:
            needed = policy.new_data_fraction * state.training_rows
            frac = f"{policy.new_data_fraction:.2f}"
            detail = f"{frac} x {state.training_rows} training rows = {needed:g}"
            if rows >= needed:
                triggers.append(f"new rows {rows} >= {detail}")
            else:
                notes.append(f"new rows {rows} < {detail}")

    retrain = bool(triggers)
    reasons = triggers
    if retrain and observation.has_champion and windows <= policy.cooldown_windows:
        retrain = False
        reasons = [
            f"cooldown: window {windows} of {policy.cooldown_windows} after the last retrain; "
            f"suppressed: {'; '.join(triggers)}"
        ]
    elif not retrain:
        reasons = notes or ["no retrain trigger fired"]

    if retrain:
        new_state = replace(
            state, windows_since_retrain=0, metric_history=[], rows_since_training=0
        )
    else:
        new_state = replace(
            state, windows_since_retrain=windows, metric_history=history, rows_since_training=rows
        )
    return Decision(retrain=retrain, reasons=reasons, state=new_state)
