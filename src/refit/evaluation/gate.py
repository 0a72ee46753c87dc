"""The promotion gate: a declarative config judged on point values and paired statistics.

A gate config (JSON: thresholds, the margin or paired-test ``mode`` against the champion,
change thresholds, slices, and optional fairness and serving sections) is judged by `gate`, one
check per row with the numbers (`refit.evaluation.checks`). No champion: absolute thresholds
alone; no thresholds, too few rows, or a configured section without results: fail closed. The
config's keys and the reasons for this design: docs/decisions/0018-declarative-fail-closed-gate.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from refit.errors import PolicyError
from refit.evaluation.checks import (
    Judge,
    change_checks,
    fairness_checks,
    mode_checks,
    rows_check,
    serving_checks,
    slice_checks,
    threshold_checks,
)
from refit.evaluation.fairness_config import FairnessConfig
from refit.evaluation.latency import ServingConfig
from refit.evaluation.stats import HIGHER_IS_BETTER, MIN_ROWS, is_number

__all__ = [
    "FIRST_RUN_REASON",
    "MODES",
    "NO_THRESHOLDS_REASON",
    "GateConfig",
    "GateResult",
    "SliceSpec",
    "gate",
]

FIRST_RUN_REASON = "no champion: judged on absolute thresholds alone"
NO_THRESHOLDS_REASON = "gate has no thresholds: failing closed"
MODES = ("superior", "non-inferior")


def _finite(value: Any, what: str) -> float:
    if not is_number(value) or not math.isfinite(value):
        raise PolicyError(f"gate field {what} must be a finite number, got {value!r}")
    return float(value)


def _metric_map(value: Any, what: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise PolicyError(
            f"gate field {what!r} must be a mapping of metric -> value, got {type(value).__name__}"
        )
    out = {}
    for name, bound in value.items():
        if not isinstance(name, str) or not name:
            raise PolicyError(f"gate threshold metric names must be strings, got {name!r}")
        if not is_number(bound) or not math.isfinite(bound):
            raise PolicyError(f"gate threshold for {name!r} must be a finite number, got {bound!r}")
        out[name] = float(bound)
    return out


def _non_negative(value: Any, name: str) -> float:
    number = _finite(value, f"'{name}'")
    if number < 0:
        raise PolicyError(f"gate field '{name}' must be >= 0, got {value!r}")
    return number


def _metric_names(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise PolicyError(f"gate field '{name}' must be a list of metric names")
    return list(value)


def _change_specs(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise PolicyError("gate field 'changes' must be a mapping of metric -> {min, relative}")
    changes = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or "min" not in spec or set(spec) - {"min", "relative"}:
            raise PolicyError(
                f"gate change threshold for {name!r} must be {{'min': x, 'relative': bool}}, "
                f"got {spec!r}"
            )
        relative = spec.get("relative", False)
        if not isinstance(relative, bool):
            raise PolicyError(f"gate change for {name!r}: 'relative' must be true or false")
        changes[name] = {"min": _finite(spec["min"], f"changes.{name}.min"), "relative": relative}
    return changes


def _check_directions(value: Any) -> None:
    if not isinstance(value, dict) or any(d not in ("higher", "lower") for d in value.values()):
        raise PolicyError(
            f"gate field 'directions' must map metric -> 'higher' or 'lower', got {value!r}"
        )


def _check_count(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"gate field {name!r} must be a non-negative integer, got {value!r}")


@dataclass
class SliceSpec:
    """A named segment of the holdout with its own thresholds.

    Attributes:
        name: The slice's name in reasons and outputs.
        column: Column the segment is selected on.
        values: Values of ``column`` that belong to the segment.
        thresholds: Metric -> bound on the segment's rows.
    """

    name: str
    column: str
    values: list[Any]
    thresholds: dict[str, float]

    @classmethod
    def from_dict(cls, data: Any) -> SliceSpec:
        """Build a slice from ``{"name", "column", "values", "thresholds"}``.

        Raises:
            PolicyError: A key is missing or unknown, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise PolicyError(f"gate slice must be a mapping, got {data!r}")
        keys = {"name", "column", "values", "thresholds"}
        if set(data) - keys or not {"column", "values", "thresholds"} <= set(data):
            raise PolicyError(
                f"gate slice {data!r} must have keys column, values, thresholds (and name)"
            )
        column = data["column"]
        values = data["values"]
        if not isinstance(column, str) or not column:
            raise PolicyError(f"gate slice column must be a non-empty string, got {column!r}")
        if not isinstance(values, list) or not values:
            raise PolicyError(f"gate slice on {column!r}: 'values' must be a non-empty list")
        name = data.get("name") or f"{column} in {values}"
        return cls(str(name), column, list(values), _metric_map(data["thresholds"], "thresholds"))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "name": self.name,
            "column": self.column,
            "values": list(self.values),
            "thresholds": dict(self.thresholds),
        }


@dataclass
class GateConfig:
    """Gate settings (the JSON form: docs/decisions/0018-declarative-fail-closed-gate.md).

    Attributes:
        thresholds: Metric -> bound (minimum, or maximum for lower-is-better metrics).
        max_degradation: Point-value margin against the champion when ``mode`` is None.
        mode: None, ``"superior"`` or ``"non-inferior"``.
        margin: Non-inferiority margin (default: ``max_degradation``).
        compare: Metrics tested against the champion under ``mode`` (default: thresholded ones).
        changes: Metric -> ``{"min": float, "relative": bool}`` change thresholds.
        directions: Metric -> ``"higher"`` or ``"lower"`` (which way is better).
        slices: Per-segment thresholds.
        min_rows: Fewest rows (overall and per slice) for a judgement.
        confidence: Confidence level of intervals; tests use ``alpha = 1 - confidence``.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.
        fairness: Fairness section (`refit.evaluation.fairness_config.FairnessConfig`), or None.
        serving: Serving-check section (`refit.evaluation.latency.ServingConfig`), or None.
    """

    thresholds: dict[str, float] = field(default_factory=dict)
    max_degradation: float = 0.01
    mode: str | None = None
    margin: float | None = None
    compare: list[str] | None = None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    slices: list[SliceSpec] = field(default_factory=list)
    min_rows: int = MIN_ROWS
    confidence: float = 0.95
    n_resamples: int = 1000
    seed: int = 0
    fairness: FairnessConfig | None = None
    serving: ServingConfig | None = None

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        self.thresholds = _metric_map(self.thresholds, "thresholds")
        self.max_degradation = _non_negative(self.max_degradation, "max_degradation")
        if self.mode is not None and self.mode not in MODES:
            raise PolicyError(f"gate field 'mode' must be one of {list(MODES)}, got {self.mode!r}")
        if self.margin is not None:
            self.margin = _non_negative(_finite(self.margin, "'margin'"), "margin")
        if self.compare is not None:
            self.compare = _metric_names(self.compare, "compare")
        self.changes = _change_specs(self.changes)
        _check_directions(self.directions)
        self.slices = [
            s if isinstance(s, SliceSpec) else SliceSpec.from_dict(s) for s in self.slices
        ]
        for what in ("min_rows", "n_resamples", "seed"):
            _check_count(getattr(self, what), what)
        if self.n_resamples < 100:
            raise PolicyError(f"gate field 'n_resamples' must be >= 100, got {self.n_resamples}")
        conf = _finite(self.confidence, "'confidence'")
        if not 0.5 <= conf < 1:
            raise PolicyError(f"gate field 'confidence' must be in [0.5, 1), got {conf}")
        self.confidence = conf
        if self.fairness is not None:
            self.fairness = FairnessConfig.from_dict(self.fairness)
        if self.serving is not None:
            self.serving = ServingConfig.from_dict(self.serving)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """Build a config from a dictionary.

        Args:
            data: e.g. ``{"thresholds": {...}, "max_degradation": 0.01}``; every key optional.

        Raises:
            PolicyError: For unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise PolicyError(f"gate config must be a mapping, got {type(data).__name__}")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyError(
                f"gate config has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        kwargs = {k: v for k, v in data.items() if v is not None or k in ("mode", "margin")}
        if data.get("thresholds") is None:
            kwargs["thresholds"] = {}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "thresholds": dict(self.thresholds),
            "max_degradation": self.max_degradation,
            "mode": self.mode,
            "margin": self.margin,
            "compare": None if self.compare is None else list(self.compare),
            "changes": {k: dict(v) for k, v in self.changes.items()},
            "directions": dict(self.directions),
            "slices": [s.to_dict() for s in self.slices],
            "min_rows": self.min_rows,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "fairness": None if self.fairness is None else self.fairness.to_dict(),
            "serving": None if self.serving is None else self.serving.to_dict(),
        }

    def higher_is_better(self, metric: str) -> bool:
        """Return whether larger values of ``metric`` are better under this config."""
        if metric in self.directions:
            return self.directions[metric] == "higher"
        return HIGHER_IS_BETTER.get(metric, True)

    @property
    def compared_metrics(self) -> list[str]:
        """Metrics tested against the champion under ``mode``."""
        return list(self.compare) if self.compare is not None else sorted(self.thresholds)


@dataclass
class GateResult:
    """Outcome of the gate.

    Attributes:
        blessed: True when the challenger passed every check.
        reasons: One readable line per check, with the numbers, plus context lines.
        first_run: True when there was no champion to compare with.
        checks: One dictionary per check: ``metric``, ``kind`` (``"threshold"``, ``"champion"``,
            ``"change"``, ``"superior"``, ``"non-inferior"``, ``"slice"``, ``"rows"``,
            ``"fairness"``, ``"fairness-champion"``, ``"serving"``, ``"serving-champion"``),
            ``value``, ``reference``, ``passed``, ``detail``.
    """

    blessed: bool
    reasons: list[str]
    first_run: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "first_run": self.first_run,
            "checks": [dict(c) for c in self.checks],
        }


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    config: GateConfig,
    *,
    comparison: dict[str, Any] | None = None,
) -> GateResult:
    """Decide whether a challenger may be promoted.

    The challenger must reach every threshold in ``config.thresholds``. With a champion and no
    ``mode``, for every thresholded metric the challenger must also satisfy
    ``challenger >= champion - config.max_degradation`` (point values). With a ``mode``, the
    paired statistics in ``comparison`` decide (see
    docs/decisions/0018-declarative-fail-closed-gate.md). A gate with no thresholds fails closed.

    Args:
        challenger: Challenger metrics by name (missing, None or NaN values count as absent).
        champion: Champion metrics on the same holdout, or None when there is no champion.
        config: Gate settings.
        comparison: Paired statistics (see `refit.evaluation.compare.compare_models`):
            ``n_rows``, ``paired`` (metric -> interval of the difference), ``tests``
            (``mcnemar``, ``delong``, or ``{"error": ...}``), ``slices`` (name -> ``n_rows``,
            ``metrics``), ``fairness`` (`refit.evaluation.fairness.check_fairness`) and
            ``serving`` (`refit.evaluation.latency.ServingReport.to_dict`). Needed for
            ``mode``, ``slices``, ``fairness`` and ``serving``; a configured section without
            its results fails closed.

    Returns:
        The :class:`GateResult`; its reasons list every check with the numbers.
    """
    first_run = champion is None
    judge = Judge(config)
    if first_run:
        judge.reasons.append(FIRST_RUN_REASON)
    if not config.thresholds:
        judge.reasons.append(NO_THRESHOLDS_REASON)
        return GateResult(blessed=False, reasons=judge.reasons, first_run=first_run, checks=[])

    rows_check(judge, comparison)
    threshold_checks(judge, challenger, champion)
    if champion is not None:
        change_checks(judge, challenger, champion)
        if config.mode is not None:
            mode_checks(judge, config.mode, challenger, champion, comparison)
    if config.slices:
        slice_checks(judge, comparison)
    if config.fairness is not None:
        fairness_checks(judge, config.fairness, (comparison or {}).get("fairness"))
    if config.serving is not None:
        serving_checks(judge, config.serving, (comparison or {}).get("serving"))

    failed = [c for c in judge.checks if not c["passed"]]
    blessed = not failed
    n = len(judge.checks)
    if blessed:
        judge.reasons.append(f"blessed: all {n} checks passed")
    else:
        judge.reasons.append(f"not blessed: {len(failed)} of {n} checks failed")
    return GateResult(
        blessed=blessed, reasons=judge.reasons, first_run=first_run, checks=judge.checks
    )
