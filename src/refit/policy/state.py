"""What a retrain decision reads and carries: the state between windows, a window's observation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from refit.errors import PolicyError
from refit.fields import FieldChecks

_CHECK = FieldChecks(PolicyError)

#: Unlabelled windows the state lists at most (the oldest are dropped).
MAX_UNLABELLED_WINDOWS = 500
#: Reasons a deferred retrain keeps at most (one per rule that fired, and the no-champion one).
MAX_DEFERRED_REASONS = 16
#: Retrains the state remembers for the budget at most.
MAX_BUDGET_RECORDS = 1000


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
        self.windows_since_retrain = _CHECK.integer(
            self.windows_since_retrain, "windows_since_retrain", 0
        )
        if not isinstance(self.metric_history, list | tuple):
            raise PolicyError(f"metric_history must be a list, got {self.metric_history!r}")
        self.metric_history = [
            float(_CHECK.number(v, f"metric_history[{i}]"))
            for i, v in enumerate(self.metric_history)
        ]
        self.rows_since_training = _CHECK.integer(
            self.rows_since_training, "rows_since_training", 0
        )
        self.training_rows = _CHECK.integer(self.training_rows, "training_rows", 0)
        if self.model_trained_at is not None:
            _CHECK.parse_time(self.model_trained_at, "model_trained_at")
        if not isinstance(self.retrains, list | tuple):
            raise PolicyError(f"retrains must be a list, got {self.retrains!r}")
        retrains = []
        for i, entry in enumerate(self.retrains[-MAX_BUDGET_RECORDS:]):
            if not isinstance(entry, Mapping) or set(entry) != {"at", "cost"}:
                raise PolicyError(
                    f"retrains[{i}] must be {{'at': time, 'cost': number}}, got {entry!r}"
                )
            _CHECK.parse_time(entry["at"], f"retrains[{i}].at")
            retrains.append(
                {
                    "at": entry["at"],
                    "cost": float(_CHECK.number(entry["cost"], f"retrains[{i}].cost")),
                }
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
            _CHECK.parse_time(deferred["at"], "deferred_retrain.at")
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
        _CHECK.check_keys(data, [f.name for f in fields(cls)], "policy state")
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


def check_observation(observation: Observation) -> datetime:
    """Validate an observation; returns its time.

    Raises:
        PolicyError: Naming the field and what is wrong with it.
    """
    _check_measures(observation)
    if not isinstance(observation.mean_shifts, Mapping):
        raise PolicyError(
            f"observation.mean_shifts must be a mapping, got {observation.mean_shifts!r}"
        )
    for name, value in observation.mean_shifts.items():
        _CHECK.number(value, f"observation.mean_shifts[{name!r}]")
    if observation.estimated_interval is not None:
        _check_interval(observation.estimated_interval)
    _CHECK.integer(observation.new_rows, "observation.new_rows", 0)
    for flag in ("has_champion", "labelled", "trainable"):
        if not isinstance(getattr(observation, flag), bool):
            raise PolicyError(
                f"observation.{flag} must be true or false, got {getattr(observation, flag)!r}"
            )
    return _CHECK.parse_time(observation.now, "observation.now")


def _check_measures(observation: Observation) -> None:
    """The drift share in [0, 1], the metrics finite, label and prediction drift >= 0."""
    if observation.drift_share is not None:
        share = _CHECK.number(observation.drift_share, "observation.drift_share")
        if not 0.0 <= share <= 1.0:
            raise PolicyError(f"observation.drift_share must be in [0, 1], got {share}")
    if observation.metric_value is not None:
        _CHECK.number(observation.metric_value, "observation.metric_value")
    for name in ("label_drift", "prediction_drift", "estimated_metric"):
        value = getattr(observation, name)
        if value is not None:
            _CHECK.number(value, f"observation.{name}")
    for name in ("label_drift", "prediction_drift"):
        value = getattr(observation, name)
        if value is not None and value < 0:
            raise PolicyError(f"observation.{name} must be >= 0, got {value}")


def _check_interval(interval: Any) -> None:
    """The estimate's interval: two finite numbers, lower <= upper."""
    if not isinstance(interval, list | tuple) or len(interval) != 2:
        raise PolicyError(
            f"observation.estimated_interval must be (lower, upper), got {interval!r}"
        )
    lo = _CHECK.number(interval[0], "observation.estimated_interval[0]")
    hi = _CHECK.number(interval[1], "observation.estimated_interval[1]")
    if lo > hi:
        raise PolicyError(f"observation.estimated_interval has lower {lo} > upper {hi}")


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
