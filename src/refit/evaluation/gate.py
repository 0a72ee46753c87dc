"""The promotion gate: a declarative config judged on point values and paired statistics.

A gate config (JSON) holds:

- ``thresholds``: metric -> bound the challenger must reach: a minimum for higher-is-better
  metrics, a maximum for lower-is-better ones (log loss, calibration error, MAE, RMSE).
- ``max_degradation``: without ``mode``, the challenger's point value may be worse than the
  champion's by at most this much, per thresholded metric (the original, backward-compatible
  meaning).
- ``mode``: ``"superior"`` (the challenger must be significantly better: McNemar for accuracy,
  DeLong for ROC AUC, the paired bootstrap interval of the difference above zero for the rest) or
  ``"non-inferior"`` (the lower bound of the paired interval of the improvement must exceed
  ``-margin``). Applies to ``compare`` (default: the thresholded metrics).
- ``changes``: metric -> ``{"min": x, "relative": bool}``: the change against the champion, in the
  metric's better direction, must be at least ``x`` (absolute, or relative to the champion).
- ``directions``: metric -> ``"higher"`` | ``"lower"`` overrides which way is better.
- ``slices``: ``[{"name", "column", "values", "thresholds"}]``: thresholds on named segments.
- ``min_rows`` (30), ``confidence`` (0.95), ``n_resamples`` (1000), ``seed`` (0).
- ``fairness`` (optional): ``{"attribute", "max_demographic_parity_difference",
  "max_equal_opportunity_difference", "max_increase_over_champion", "min_group_size",
  "positive_label"}`` (see `refit.evaluation.fairness`): block when the challenger's difference
  is above its ceiling, or above the champion's by more than the margin (point values). Groups
  below ``min_group_size`` are reported, not used for blocking; a difference that cannot be
  measured (fewer than two groups large enough) or an attribute missing from the data fails
  closed.
- ``serving`` (optional): ``{"requests", "warmup", "batch_size", "max_p99_ms",
  "max_p99_increase", "min_p99_increase_ms"}`` (see `refit.evaluation.latency`): block when the
  challenger fails to load or fails a request, when its p99 latency is above ``max_p99_ms``, or
  when it is above the champion's (same run) by more than ``max_p99_increase`` (relative) and
  ``min_p99_increase_ms``. No champion: the ceiling alone, said in the reasons.

No champion: absolute thresholds alone, said in the reasons. No thresholds: fail closed. Too few
rows for a test: the reasons say so instead of a p-value, and the gate stays closed.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np

from refit.errors import PolicyError
from refit.evaluation.fairness import DIFFERENCES, FairnessConfig
from refit.evaluation.latency import ServingConfig
from refit.evaluation.stats import HIGHER_IS_BETTER, MIN_ROWS

__all__ = [
    "FIRST_RUN_REASON",
    "MODES",
    "NO_THRESHOLDS_REASON",
    "GateConfig",
    "GateResult",
    "SliceSpec",
    "gate",
    "render_checks_markdown",
]

FIRST_RUN_REASON = "no champion: judged on absolute thresholds alone"
NO_THRESHOLDS_REASON = "gate has no thresholds: failing closed"
MODES = ("superior", "non-inferior")

# Tolerance for float round-off in comparisons (0.9 >= 0.91 - 0.01 must pass).
_EPS = 1e-12


def _is_number(value: Any) -> TypeGuard[float]:
    # numbers.Real covers int, float and numpy floats/ints; bools are not metric values.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(value: Any, what: str) -> float:
    if not _is_number(value) or not math.isfinite(value):
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
        if not _is_number(bound) or not math.isfinite(bound):
            raise PolicyError(f"gate threshold for {name!r} must be a finite number, got {bound!r}")
        out[name] = float(bound)
    return out


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
    """Gate settings (see the module docstring for the JSON form).

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
        fairness: Fairness section (`refit.evaluation.fairness.FairnessConfig`), or None.
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
        if not _is_number(self.max_degradation) or not math.isfinite(self.max_degradation):
            raise PolicyError(
                "gate field 'max_degradation' must be a finite number, "
                f"got {self.max_degradation!r}"
            )
        if self.max_degradation < 0:
            raise PolicyError(
                f"gate field 'max_degradation' must be >= 0, got {self.max_degradation!r}"
            )
        self.max_degradation = float(self.max_degradation)
        if self.mode is not None and self.mode not in MODES:
            raise PolicyError(f"gate field 'mode' must be one of {list(MODES)}, got {self.mode!r}")
        if self.margin is not None:
            self.margin = _finite(self.margin, "'margin'")
            if self.margin < 0:
                raise PolicyError(f"gate field 'margin' must be >= 0, got {self.margin!r}")
        if self.compare is not None:
            if not isinstance(self.compare, list) or not all(
                isinstance(m, str) and m for m in self.compare
            ):
                raise PolicyError("gate field 'compare' must be a list of metric names")
            self.compare = list(self.compare)
        if not isinstance(self.changes, dict):
            raise PolicyError("gate field 'changes' must be a mapping of metric -> {min, relative}")
        changes = {}
        for name, spec in self.changes.items():
            if not isinstance(spec, dict) or "min" not in spec or set(spec) - {"min", "relative"}:
                raise PolicyError(
                    f"gate change threshold for {name!r} must be {{'min': x, 'relative': bool}}, "
                    f"got {spec!r}"
                )
            relative = spec.get("relative", False)
            if not isinstance(relative, bool):
                raise PolicyError(f"gate change for {name!r}: 'relative' must be true or false")
            changes[name] = {
                "min": _finite(spec["min"], f"changes.{name}.min"),
                "relative": relative,
            }
        self.changes = changes
        if not isinstance(self.directions, dict) or any(
            d not in ("higher", "lower") for d in self.directions.values()
        ):
            raise PolicyError(
                f"gate field 'directions' must map metric -> 'higher' or 'lower', "
                f"got {self.directions!r}"
            )
        self.slices = [
            s if isinstance(s, SliceSpec) else SliceSpec.from_dict(s) for s in self.slices
        ]
        for what in ("min_rows", "n_resamples", "seed"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PolicyError(
                    f"gate field {what!r} must be a non-negative integer, got {value!r}"
                )
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


def _value(metrics: dict[str, Any] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    if not _is_number(value) or not math.isfinite(value):
        return None
    return float(value)


class _Judge:
    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.reasons: list[str] = []
        self.checks: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        metric: str,
        value: float | None,
        reference: float | None,
        passed: bool,
        reason: str,
        detail: str = "",
    ) -> None:
        self.reasons.append(reason)
        self.checks.append(
            {
                "metric": metric,
                "kind": kind,
                "value": value,
                "reference": reference,
                "passed": bool(passed),
                "detail": detail or reason,
            }
        )

    def threshold(self, name: str, bound: float, value: float | None, prefix: str = "") -> None:
        kind = "slice" if prefix else "threshold"
        label = f"{prefix}{name}"
        higher = self.config.higher_is_better(name)
        if value is None:
            self.add(
                kind,
                label,
                None,
                bound,
                False,
                f"{label} missing from challenger metrics: cannot check "
                f"{'>=' if higher else '<='} {bound:.3f}",
            )
            return
        passed = value >= bound - _EPS if higher else value <= bound + _EPS
        if higher:
            op = ">=" if passed else "<"
            tail = "" if passed else " (below minimum)"
        else:
            op = "<=" if passed else ">"
            tail = "" if passed else " (above maximum)"
        self.add(kind, label, value, bound, passed, f"{label} {value:.3f} {op} {bound:.3f}{tail}")


def _improvement(config: GateConfig, metric: str, interval: dict[str, float]) -> tuple[float, ...]:
    """Return (value, low, high) of the improvement (positive = challenger better)."""
    if config.higher_is_better(metric):
        return interval["value"], interval["low"], interval["high"]
    return -interval["value"], -interval["high"], -interval["low"]


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
    paired statistics in ``comparison`` decide (see the module docstring). A gate with no
    thresholds fails closed.

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
    judge = _Judge(config)
    if first_run:
        judge.reasons.append(FIRST_RUN_REASON)
    if not config.thresholds:
        judge.reasons.append(NO_THRESHOLDS_REASON)
        return GateResult(blessed=False, reasons=judge.reasons, first_run=first_run, checks=[])

    n_rows = None if comparison is None else comparison.get("n_rows")
    if n_rows is not None and n_rows < config.min_rows:
        judge.add(
            "rows",
            "n_rows",
            float(n_rows),
            float(config.min_rows),
            False,
            f"too few rows for a judgement: {n_rows} < {config.min_rows} (no interval, no p-value)",
        )

    margin = config.max_degradation
    for name in sorted(config.thresholds):
        value = _value(challenger, name)
        judge.threshold(name, config.thresholds[name], value)
        if champion is None or value is None or config.mode is not None:
            continue
        reference = _value(champion, name)
        if reference is None:
            judge.reasons.append(f"{name}: champion has no value; champion comparison skipped")
            continue
        change = value - reference
        improvement = change if config.higher_is_better(name) else -change
        ok = improvement >= -margin - _EPS
        where = "within" if ok else "beyond"
        judge.add(
            "champion",
            name,
            value,
            reference,
            ok,
            f"{name} {value:.3f} vs champion {reference:.3f}: change {change:+.3f} "
            f"{where} -{margin:.3f} margin",
        )

    if champion is not None:
        _change_checks(judge, challenger, champion)
        if config.mode is not None:
            _mode_checks(judge, config.mode, challenger, champion, comparison)
    if config.slices:
        _slice_checks(judge, comparison)
    if config.fairness is not None:
        _fairness_checks(judge, config.fairness, (comparison or {}).get("fairness"))
    if config.serving is not None:
        _serving_checks(judge, config.serving, (comparison or {}).get("serving"))

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


def _change_checks(judge: _Judge, challenger: dict[str, Any], champion: dict[str, Any]) -> None:
    config = judge.config
    for name, spec in sorted(config.changes.items()):
        value, reference = _value(challenger, name), _value(champion, name)
        if value is None or reference is None:
            judge.add(
                "change", name, value, reference, False,
                f"{name}: change against the champion cannot be computed (value missing)",
            )  # fmt: skip
            continue
        improvement = value - reference if config.higher_is_better(name) else reference - value
        if spec["relative"]:
            if reference == 0:
                judge.add(
                    "change", name, value, reference, False,
                    f"{name}: relative change undefined (champion value is 0)",
                )  # fmt: skip
                continue
            improvement /= abs(reference)
            shown, need = f"{improvement:+.2%}", f"{spec['min']:+.2%}"
        else:
            shown, need = f"{improvement:+.3f}", f"{spec['min']:+.3f}"
        passed = improvement >= spec["min"] - _EPS
        judge.add(
            "change",
            name,
            value,
            reference,
            passed,
            f"{name} improvement over champion {shown} {'>=' if passed else '<'} required {need}"
            f" ({'relative' if spec['relative'] else 'absolute'})",
        )


def _mode_checks(
    judge: _Judge,
    mode: str,
    challenger: dict[str, Any],
    champion: dict[str, Any],
    comparison: dict[str, Any] | None,
) -> None:
    config = judge.config
    alpha = 1 - config.confidence
    margin = config.max_degradation if config.margin is None else config.margin
    for name in config.compared_metrics:
        value, reference = _value(challenger, name), _value(champion, name)
        paired = None if comparison is None else comparison.get("paired", {}).get(name)
        n_rows = None if comparison is None else comparison.get("n_rows")
        if n_rows is not None and n_rows < config.min_rows:
            judge.add(
                mode, name, value, reference, False,
                f"{name}: too few rows ({n_rows} < {config.min_rows}) for a {mode} test: "
                "no p-value",
            )  # fmt: skip
            continue
        if paired is None or n_rows is None:
            judge.add(
                mode, name, value, reference, False,
                f"{name}: {mode} test needs paired per-row results on the same holdout; none given",
            )  # fmt: skip
            continue
        imp, low, high = _improvement(config, name, paired)
        ci = f"{imp:+.3f} [{low:+.3f}, {high:+.3f}] ({config.confidence:.0%} paired bootstrap)"
        if mode == "non-inferior":
            passed = low > -margin
            judge.add(
                mode, name, value, reference, passed,
                f"{name} improvement {ci}: lower bound {low:+.3f} "
                f"{'>' if passed else '<='} -{margin:.3f} margin"
                + ("" if passed else " (not shown non-inferior)"),
            )  # fmt: skip
            continue
        tests = (comparison or {}).get("tests", {})
        test = tests.get("mcnemar") if name == "accuracy" else None
        test = tests.get("delong") if name == "roc_auc" else test
        if test is not None and "error" in test:
            judge.add(
                mode, name, value, reference, False,
                f"{name}: {test['error']}: no p-value; cannot show superiority",
            )  # fmt: skip
            continue
        if test is not None:
            label = "McNemar" if name == "accuracy" else "DeLong"
            p = float(test["p_value"])
            passed = p < alpha and imp > 0
            judge.add(
                mode, name, value, reference, passed,
                f"{name} improvement {ci}; {label} p = {p:.4f} "
                f"{'<' if p < alpha else '>='} {alpha:.3f}"
                + ("" if passed else " (not significantly better)"),
            )  # fmt: skip
            continue
        passed = low > 0
        judge.add(
            mode, name, value, reference, passed,
            f"{name} improvement {ci}: lower bound {'>' if passed else '<='} 0"
            + ("" if passed else " (not significantly better)"),
        )  # fmt: skip


def _slice_checks(judge: _Judge, comparison: dict[str, Any] | None) -> None:
    config = judge.config
    slices = (comparison or {}).get("slices", {})
    for spec in config.slices:
        got = slices.get(spec.name)
        prefix = f"slice {spec.name}: "
        if got is None:
            judge.add(
                "slice", spec.name, None, None, False,
                f"{prefix}no per-slice results given: failing closed",
            )  # fmt: skip
            continue
        rows = int(got.get("n_rows", 0))
        if rows < config.min_rows:
            judge.add(
                "slice", spec.name, float(rows), float(config.min_rows), False,
                f"{prefix}too few rows ({rows} < {config.min_rows}) to judge",
            )  # fmt: skip
            continue
        for name in sorted(spec.thresholds):
            judge.threshold(name, spec.thresholds[name], _value(got.get("metrics"), name), prefix)


_DIFFERENCE_LABELS = {
    "demographic_parity_difference": "demographic-parity difference",
    "equal_opportunity_difference": "equal-opportunity difference",
}


def _fairness_checks(judge: _Judge, spec: FairnessConfig, got: dict[str, Any] | None) -> None:
    prefix = f"fairness on {spec.attribute!r}: "
    if got is None:
        judge.add(
            "fairness", "fairness", None, None, False,
            f"{prefix}no fairness results given: failing closed",
        )  # fmt: skip
        return
    if "error" in got:
        judge.add(
            "fairness", "fairness", None, None, False,
            f"{prefix}cannot check: {got['error']}: failing closed",
        )  # fmt: skip
        return
    if not spec.has_limits:
        judge.reasons.append(f"{prefix}reported only: no ceiling or champion margin set")
        return
    champion = got.get("champion")
    margin = spec.max_increase_over_champion
    if margin is not None and champion is None:
        judge.reasons.append(f"{prefix}no champion: judged on absolute ceilings alone")
    for name in DIFFERENCES:
        ceiling = spec.ceiling(name)
        compared = margin is not None and champion is not None
        if ceiling is None and not compared:
            continue
        label = _DIFFERENCE_LABELS[name]
        chal = (got.get("challenger") or {}).get(name)
        if chal is None:
            need = "rows" if name == "demographic_parity_difference" else "actual positives"
            judge.add(
                "fairness", name, None, ceiling, False,
                f"{prefix}{label} cannot be measured: fewer than two groups with at least "
                f"{spec.min_group_size} {need}: failing closed",
            )  # fmt: skip
            continue
        value = float(chal["value"])
        span = f"{chal['max_group']!r} vs {chal['min_group']!r}"
        ci = ""
        if chal.get("low") is not None and chal.get("high") is not None:
            ci = f" [{chal['low']:.3f}, {chal['high']:.3f}]"
        if ceiling is not None:
            passed = value <= ceiling + _EPS
            judge.add(
                "fairness", name, value, ceiling, passed,
                f"{prefix}{label} {value:.3f}{ci} ({span}) "
                + (f"<= ceiling {ceiling:.3f}" if passed else f"> ceiling {ceiling:.3f}"),
            )  # fmt: skip
        if not compared or margin is None:
            continue
        ref = (champion or {}).get(name)
        if ref is None:
            judge.add(
                "fairness-champion", name, value, None, False,
                f"{prefix}{label}: champion's cannot be measured on these rows: failing closed",
            )  # fmt: skip
            continue
        reference = float(ref["value"])
        increase = value - reference
        passed = increase <= margin + _EPS
        inc = (got.get("increase") or {}).get(name) or {}
        inc_ci = ""
        if inc.get("low") is not None and inc.get("high") is not None:
            inc_ci = f" [{inc['low']:+.3f}, {inc['high']:+.3f}]"
        judge.add(
            "fairness-champion", name, value, reference, passed,
            f"{prefix}{label} {value:.3f} vs champion {reference:.3f}: increase "
            f"{increase:+.3f}{inc_ci} {'within' if passed else 'beyond'} +{margin:.3f} margin",
        )  # fmt: skip
    for note in got.get("notes", []):
        if "min_group_size" in note:
            judge.reasons.append(f"{prefix}{note}")


def _serving_checks(judge: _Judge, spec: ServingConfig, got: dict[str, Any] | None) -> None:
    prefix = "serving: "
    if got is None:
        judge.add(
            "serving", "serving", None, None, False,
            f"{prefix}no serving-check results given: failing closed",
        )  # fmt: skip
        return
    if "error" in got:
        judge.add(
            "serving", "serving", None, None, False,
            f"{prefix}cannot check: {got['error']}: failing closed",
        )  # fmt: skip
        return
    chal = got.get("challenger") or {}
    if not chal.get("loaded"):
        judge.add(
            "serving", "load", None, None, False,
            f"{prefix}challenger failed to load as served: {chal.get('load_error')}",
        )  # fmt: skip
        return
    n, errors = int(chal.get("requests", 0)), int(chal.get("errors", 0))
    if errors:
        judge.add(
            "serving", "errors", float(errors), 0.0, False,
            f"{prefix}challenger failed {errors} of {n} requests; first error: "
            f"{chal.get('first_error')}",
        )  # fmt: skip
    else:
        p50 = chal.get("p50_ms")
        judge.add(
            "serving", "errors", 0.0, 0.0, True,
            f"{prefix}challenger loaded and answered all {n} requests"
            + ("" if p50 is None else f" (p50 {p50:.2f} ms, p99 {chal['p99_ms']:.2f} ms)"),
        )  # fmt: skip
    p99 = chal.get("p99_ms")
    if p99 is None:
        return
    p99 = float(p99)
    if spec.max_p99_ms is None and spec.max_p99_increase is None:
        judge.reasons.append(
            f"{prefix}latency reported only: no max_p99_ms or max_p99_increase set"
        )
        return
    if spec.max_p99_ms is not None:
        ceiling = spec.max_p99_ms
        passed = p99 <= ceiling + _EPS
        judge.add(
            "serving", "p99_ms", p99, ceiling, passed,
            f"{prefix}challenger p99 latency {p99:.2f} ms "
            + (f"<= ceiling {ceiling:.2f} ms" if passed else f"> ceiling {ceiling:.2f} ms"),
        )  # fmt: skip
    if spec.max_p99_increase is None:
        return
    champ = got.get("champion")
    if champ is None:
        judge.reasons.append(
            f"{prefix}no champion: latency judged on the absolute ceiling alone"
            if spec.max_p99_ms is not None
            else f"{prefix}no champion and no max_p99_ms: latency not judged"
        )
        return
    if not champ.get("loaded") or champ.get("errors") or champ.get("p99_ms") is None:
        why = (
            f"failed to load ({champ.get('load_error')})"
            if not champ.get("loaded")
            else f"failed {champ.get('errors')} of {champ.get('requests')} requests "
            f"(first error: {champ.get('first_error')})"
        )
        judge.add(
            "serving-champion", "p99_ms", p99, None, False,
            f"{prefix}champion {why}: no latency baseline: failing closed",
        )  # fmt: skip
        return
    reference = float(champ["p99_ms"])
    increase = p99 - reference
    allowed = max(reference * spec.max_p99_increase, spec.min_p99_increase_ms)
    passed = increase <= allowed + _EPS
    relative = f"{increase / reference:+.0%}" if reference > 0 else f"{increase:+.2f} ms"
    judge.add(
        "serving-champion", "p99_ms", p99, reference, passed,
        f"{prefix}challenger p99 {p99:.2f} ms vs champion {reference:.2f} ms in the same run: "
        f"{relative} ({increase:+.2f} ms) {'within' if passed else 'beyond'} the allowed "
        f"+{spec.max_p99_increase:.0%} (at least +{spec.min_p99_increase_ms:.2f} ms)",
    )  # fmt: skip


def render_checks_markdown(result: GateResult, title: str = "Promotion gate") -> str:
    """Render a gate result as a Markdown table of its checks.

    Args:
        result: The gate's result.
        title: Heading.

    Returns:
        Markdown text: a verdict line, the checks table, then the other reasons.
    """

    def fmt(x: Any) -> str:
        return "—" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)

    verdict = "**Blessed.**" if result.blessed else "**Not blessed.**"
    lines = [f"# {title}", "", verdict, ""]
    if result.first_run:
        lines += [f"_{FIRST_RUN_REASON}_", ""]
    lines += [
        "| check | metric | value | reference | result | detail |",
        "|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        detail = str(c.get("detail", "")).replace("|", "\\|")
        lines.append(
            f"| {c['kind']} | {c['metric']} | {fmt(c['value'])} | {fmt(c['reference'])} | "
            f"{'pass' if c['passed'] else 'FAIL'} | {detail} |"
        )
    if not result.checks:
        lines.append("| — | — | — | — | FAIL | no checks ran |")
    details = {c.get("detail") for c in result.checks}
    other = [r for r in result.reasons if r not in details]
    if other:
        lines += [""] + [f"- {r}" for r in other]
    return "\n".join(lines) + "\n"
