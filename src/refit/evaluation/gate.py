"""The promotion gate: absolute minimums plus a bounded degradation against the champion."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refit.errors import PolicyError

__all__ = ["FIRST_RUN_REASON", "NO_THRESHOLDS_REASON", "GateConfig", "GateResult", "gate"]

FIRST_RUN_REASON = "no champion: judged on absolute thresholds alone"
NO_THRESHOLDS_REASON = "gate has no thresholds: failing closed"

# Tolerance for float round-off in comparisons (0.9 >= 0.91 - 0.01 must pass).
_EPS = 1e-12


def _is_number(value: Any) -> bool:
    # numbers.Real covers int, float and numpy floats/ints; bools are not metric values.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclass
class GateConfig:
    """Gate settings.

    Attributes:
        thresholds: Metric name (e.g. ``accuracy``, ``f1``, ``roc_auc``) -> minimum value the
            challenger must reach.
        max_degradation: How much worse than the champion the challenger may be, per
            thresholded metric (absolute difference, >= 0).
    """

    thresholds: dict[str, float] = field(default_factory=dict)
    max_degradation: float = 0.01

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            PolicyError: If a threshold or the margin is not a finite number, or the margin is
                negative.
        """
        if not isinstance(self.thresholds, dict):
            raise PolicyError(
                f"gate field 'thresholds' must be a mapping of metric -> minimum, "
                f"got {type(self.thresholds).__name__}"
            )
        for name, value in self.thresholds.items():
            if not isinstance(name, str) or not name:
                raise PolicyError(f"gate threshold metric names must be strings, got {name!r}")
            if not _is_number(value) or not math.isfinite(value):
                raise PolicyError(
                    f"gate threshold for {name!r} must be a finite number, got {value!r}"
                )
        if not _is_number(self.max_degradation) or not math.isfinite(self.max_degradation):
            raise PolicyError(
                "gate field 'max_degradation' must be a finite number, "
                f"got {self.max_degradation!r}"
            )
        if self.max_degradation < 0:
            raise PolicyError(
                f"gate field 'max_degradation' must be >= 0, got {self.max_degradation!r}"
            )
        self.thresholds = {k: float(v) for k, v in self.thresholds.items()}
        self.max_degradation = float(self.max_degradation)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """Build a config from a dictionary.

        Args:
            data: ``{"thresholds": {...}, "max_degradation": 0.01}``; both keys optional.

        Raises:
            PolicyError: For unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise PolicyError(f"gate config must be a mapping, got {type(data).__name__}")
        allowed = {"thresholds", "max_degradation"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyError(
                f"gate config has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        thresholds = data.get("thresholds")
        kwargs: dict[str, Any] = {"thresholds": {} if thresholds is None else thresholds}
        if "max_degradation" in data:
            kwargs["max_degradation"] = data["max_degradation"]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {"thresholds": dict(self.thresholds), "max_degradation": self.max_degradation}


@dataclass
class GateResult:
    """Outcome of the gate.

    Attributes:
        blessed: True when the challenger passed every check.
        reasons: One readable line per check, with the numbers, plus context lines.
        first_run: True when there was no champion to compare with.
        checks: One dictionary per check: ``metric``, ``kind`` (``"threshold"`` or
            ``"champion"``), ``value``, ``reference``, ``passed``.
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


def _value(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if not _is_number(value) or not math.isfinite(value):
        return None
    return float(value)


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    config: GateConfig,
) -> GateResult:
    """Decide whether a challenger may be promoted.

    The challenger must reach every threshold in ``config.thresholds``. With a champion, for
    every thresholded metric the challenger must also satisfy
    ``challenger >= champion - config.max_degradation``. A gate with no thresholds fails closed.

    Args:
        challenger: Challenger metrics by name (missing, None or NaN values count as absent).
        champion: Champion metrics on the same holdout, or None when there is no champion.
        config: Gate settings.

    Returns:
        The :class:`GateResult`; its reasons list every check with the numbers.
    """
    first_run = champion is None
    reasons: list[str] = []
    checks: list[dict[str, Any]] = []
    if first_run:
        reasons.append(FIRST_RUN_REASON)
    if not config.thresholds:
        reasons.append(NO_THRESHOLDS_REASON)
        return GateResult(blessed=False, reasons=reasons, first_run=first_run, checks=checks)

    margin = config.max_degradation
    for name in sorted(config.thresholds):
        minimum = config.thresholds[name]
        value = _value(challenger, name)
        if value is None:
            reasons.append(f"{name} missing from challenger metrics: cannot check >= {minimum:.3f}")
            checks.append(
                {
                    "metric": name,
                    "kind": "threshold",
                    "value": None,
                    "reference": minimum,
                    "passed": False,
                }
            )
            continue
        passed = value >= minimum - _EPS
        op = ">=" if passed else "<"
        reasons.append(
            f"{name} {value:.3f} {op} {minimum:.3f}" + ("" if passed else " (below minimum)")
        )
        checks.append(
            {
                "metric": name,
                "kind": "threshold",
                "value": value,
                "reference": minimum,
                "passed": passed,
            }
        )
        if champion is None:
            continue
        reference = _value(champion, name)
        if reference is None:
            reasons.append(f"{name}: champion has no value; champion comparison skipped")
            continue
        change = value - reference
        ok = change >= -margin - _EPS
        where = "within" if ok else "beyond"
        reasons.append(
            f"{name} {value:.3f} vs champion {reference:.3f}: change {change:+.3f} "
            f"{where} -{margin:.3f} margin"
        )
        checks.append(
            {
                "metric": name,
                "kind": "champion",
                "value": value,
                "reference": reference,
                "passed": ok,
            }
        )

    failed = [c for c in checks if not c["passed"]]
    blessed = not failed
    if blessed:
        reasons.append(f"blessed: all {len(checks)} checks passed")
    else:
        reasons.append(f"not blessed: {len(failed)} of {len(checks)} checks failed")
    return GateResult(blessed=blessed, reasons=reasons, first_run=first_run, checks=checks)
