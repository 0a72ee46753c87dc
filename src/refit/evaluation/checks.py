"""The gate's checks: each judges one part of the challenger's results, with the numbers.

`Judge` collects the checks and reasons of one gate call. Each ``*_checks`` function adds the
checks of one section of the config (`refit.evaluation.gate.GateConfig`): thresholds and the
point-value margin against the champion, change thresholds, the paired-test ``mode``, slices,
fairness and serving latency. `refit.evaluation.gate.gate` calls them in that order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from refit.evaluation.fairness_config import DIFFERENCES, LABELS
from refit.evaluation.stats import is_number

if TYPE_CHECKING:  # pragma: no cover
    from refit.evaluation.fairness_config import FairnessConfig
    from refit.evaluation.gate import GateConfig
    from refit.evaluation.latency import ServingConfig

__all__ = [
    "Judge",
    "change_checks",
    "fairness_checks",
    "mode_checks",
    "rows_check",
    "serving_checks",
    "slice_checks",
    "threshold_checks",
]

# Tolerance for float round-off in comparisons (0.9 >= 0.91 - 0.01 must pass).
_EPS = 1e-12


def _value(metrics: dict[str, Any] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    if not is_number(value) or not math.isfinite(value):
        return None
    return float(value)


class Judge:
    """The checks and reasons of one gate call, judged under ``config``."""

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
        """Record one check and its reason (``detail`` defaults to the reason)."""
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
        """Check ``value`` against ``bound`` in the metric's better direction (missing fails)."""
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


def rows_check(judge: Judge, comparison: dict[str, Any] | None) -> None:
    """Fail when the paired holdout has fewer than ``min_rows`` rows."""
    config = judge.config
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


def threshold_checks(
    judge: Judge, challenger: dict[str, Any], champion: dict[str, Any] | None
) -> None:
    """Check every threshold; without a ``mode``, also the point-value margin to the champion."""
    config = judge.config
    for name in sorted(config.thresholds):
        value = _value(challenger, name)
        judge.threshold(name, config.thresholds[name], value)
        if champion is None or value is None or config.mode is not None:
            continue
        _champion_margin_check(judge, name, value, _value(champion, name))


def _champion_margin_check(judge: Judge, name: str, value: float, reference: float | None) -> None:
    config = judge.config
    if reference is None:
        judge.reasons.append(f"{name}: champion has no value; champion comparison skipped")
        return
    margin = config.max_degradation
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


def change_checks(judge: Judge, challenger: dict[str, Any], champion: dict[str, Any]) -> None:
    """Check the ``changes`` thresholds: the improvement over the champion, absolute or relative."""
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


def mode_checks(
    judge: Judge,
    mode: str,
    challenger: dict[str, Any],
    champion: dict[str, Any],
    comparison: dict[str, Any] | None,
) -> None:
    """Check the compared metrics under ``mode`` with the paired statistics of ``comparison``."""
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


def slice_checks(judge: Judge, comparison: dict[str, Any] | None) -> None:
    """Check each slice's thresholds on its rows; a slice without results fails closed."""
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


def _results(
    judge: Judge, kind: str, what: str, got: dict[str, Any] | None, prefix: str
) -> dict[str, Any] | None:
    """A section's results, or None after failing closed on results missing or in error."""
    if got is None:
        judge.add(kind, kind, None, None, False, f"{prefix}no {what} given: failing closed")
        return None
    if "error" in got:
        judge.add(
            kind, kind, None, None, False, f"{prefix}cannot check: {got['error']}: failing closed"
        )
        return None
    return got


def fairness_checks(judge: Judge, spec: FairnessConfig, got: dict[str, Any] | None) -> None:
    """Check the fairness differences against their ceilings and the champion's.

    Results missing or in error fail closed; a section with no limits is reported only.
    """
    prefix = f"fairness on {spec.attribute!r}: "
    got = _results(judge, "fairness", "fairness results", got, prefix)
    if got is None:
        return
    if not spec.has_limits:
        judge.reasons.append(f"{prefix}reported only: no ceiling or champion margin set")
        return
    champion = got.get("champion")
    margin = spec.max_increase_over_champion
    if margin is not None and champion is None:
        judge.reasons.append(f"{prefix}no champion: judged on absolute ceilings alone")
    compared = margin is not None and champion is not None
    for name in DIFFERENCES:
        if spec.ceiling(name) is not None or compared:
            _difference_checks(judge, spec, got, name, prefix)
    for note in got.get("notes", []):
        if "min_group_size" in note:
            judge.reasons.append(f"{prefix}{note}")


def _difference_checks(
    judge: Judge, spec: FairnessConfig, got: dict[str, Any], name: str, prefix: str
) -> None:
    """Check one difference: its ceiling, then the increase over the champion's."""
    ceiling = spec.ceiling(name)
    label = LABELS[name]
    chal = (got.get("challenger") or {}).get(name)
    if chal is None:
        need = "rows" if name == "demographic_parity_difference" else "actual positives"
        judge.add(
            "fairness", name, None, ceiling, False,
            f"{prefix}{label} cannot be measured: fewer than two groups with at least "
            f"{spec.min_group_size} {need}: failing closed",
        )  # fmt: skip
        return
    value = float(chal["value"])
    if ceiling is not None:
        span = f"{chal['max_group']!r} vs {chal['min_group']!r}"
        ci = ""
        if chal.get("low") is not None and chal.get("high") is not None:
            ci = f" [{chal['low']:.3f}, {chal['high']:.3f}]"
        passed = value <= ceiling + _EPS
        judge.add(
            "fairness", name, value, ceiling, passed,
            f"{prefix}{label} {value:.3f}{ci} ({span}) "
            + (f"<= ceiling {ceiling:.3f}" if passed else f"> ceiling {ceiling:.3f}"),
        )  # fmt: skip
    margin = spec.max_increase_over_champion
    champion = got.get("champion")
    if margin is not None and champion is not None:
        _fairness_champion_check(judge, got, name, value, margin, prefix)


def _fairness_champion_check(
    judge: Judge, got: dict[str, Any], name: str, value: float, margin: float, prefix: str
) -> None:
    label = LABELS[name]
    ref = got["champion"].get(name)
    if ref is None:
        judge.add(
            "fairness-champion", name, value, None, False,
            f"{prefix}{label}: champion's cannot be measured on these rows: failing closed",
        )  # fmt: skip
        return
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


def serving_checks(judge: Judge, spec: ServingConfig, got: dict[str, Any] | None) -> None:
    """Check the challenger loads and answers as served, then its p99 latency.

    Results missing or in error fail closed; without latency limits, latency is reported only.
    """
    prefix = "serving: "
    got = _results(judge, "serving", "serving-check results", got, prefix)
    if got is None:
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
    if p99 is not None:
        _latency_checks(judge, spec, got, float(p99), prefix)


def _latency_checks(
    judge: Judge, spec: ServingConfig, got: dict[str, Any], p99: float, prefix: str
) -> None:
    """Check the challenger's p99 latency against the ceiling and the champion's."""
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
