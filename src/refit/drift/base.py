"""Drift test registry: one module per statistical test registers a :class:`TestSpec` on import.

A test has two entry points:

* ``summary_fn(reference, current, feature_type)`` receives mergeable summaries
  (:class:`~refit.drift.profile.NumericSummary` / :class:`~refit.drift.profile.CategoricalSummary`)
  so it runs on stored profiles and on one streaming pass over the current window; every built-in
  test has one;
* ``fn(reference, current, feature_type)`` receives the values of one feature, with missing values
  already removed: numeric features as 1-D ``float64`` arrays (no NaN), categorical features as
  1-D ``object`` arrays of ``str``. Built-in tests derive it from ``summary_fn``
  (:func:`from_summary_fn`); a custom test may give only ``fn`` and then runs on in-memory tables
  (and on profiles whose values are exact).

The third argument names the feature type (``"numeric"`` or ``"categorical"``), so one test can
serve both kinds (Jensen-Shannon does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from refit.errors import DriftError

FeatureType = Literal["numeric", "categorical"]
TestKind = Literal["p_value", "distance"]
FEATURE_TYPES: frozenset[str] = frozenset({"numeric", "categorical"})


@dataclass(frozen=True)
class TestOutcome:
    """What a drift test found for one feature.

    Attributes:
        statistic: The test statistic (KS D, chi-square, Jensen-Shannon distance, ...).
        p_value: The p-value for hypothesis tests; ``None`` for distances.
        error_bound: Bound on ``|statistic - exact statistic|`` when it was computed from a
            bucketed histogram (``0.0`` when exact, ``None`` when not stated).
    """

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float | None
    error_bound: float | None = None


TestFn = Callable[[np.ndarray, np.ndarray, str], TestOutcome]
SummaryFn = Callable[[Any, Any, str], TestOutcome]


def summarise(values: np.ndarray, feature_type: str) -> Any:
    """Summary of cleaned values (see the module docstring) for a ``summary_fn``."""
    from refit.drift.profile import CategoricalSummary, NumericSummary

    if feature_type == "numeric":
        return NumericSummary.from_values(np.asarray(values, dtype=np.float64))
    return CategoricalSummary.from_values(values)


def from_summary_fn(summary_fn: SummaryFn) -> TestFn:
    """A values-level test function that summarises both sides and calls ``summary_fn``."""

    def fn(reference: np.ndarray, current: np.ndarray, feature_type: str) -> TestOutcome:
        return summary_fn(
            summarise(reference, feature_type), summarise(current, feature_type), feature_type
        )

    fn.__doc__ = summary_fn.__doc__
    return fn


@dataclass(frozen=True)
class TestSpec:
    """A registered drift test.

    Attributes:
        name: Registry name, e.g. ``"ks"``.
        feature_types: Feature types the test accepts (``"numeric"``, ``"categorical"``).
        default_threshold: Threshold used when the caller gives none: a significance level for
            ``kind="p_value"`` (drift when ``p_value < threshold``), a distance for
            ``kind="distance"`` (drift when ``statistic >= threshold``).
        kind: ``"p_value"`` or ``"distance"``.
        fn: ``fn(reference, current, feature_type) -> TestOutcome`` on cleaned values.
        summary_fn: ``summary_fn(reference, current, feature_type) -> TestOutcome`` on
            summaries; ``None`` when the test needs the values themselves.
        description: One line for reports: what the statistic is.
    """

    __test__ = False  # not a pytest test class

    name: str
    feature_types: frozenset[str]
    default_threshold: float
    kind: TestKind
    fn: TestFn
    summary_fn: SummaryFn | None = None
    description: str = ""

    def __post_init__(self) -> None:
        """Check the spec is coherent.

        Raises:
            DriftError: If the name is empty, the kind or a feature type is unknown, or the
                default threshold is out of range for the kind.
        """
        if not self.name:
            raise DriftError("drift test name must be a non-empty string")
        if self.kind not in ("p_value", "distance"):
            raise DriftError(
                f"drift test {self.name!r}: kind must be 'p_value' or 'distance', got {self.kind!r}"
            )
        unknown = set(self.feature_types) - FEATURE_TYPES
        if not self.feature_types or unknown:
            raise DriftError(
                f"drift test {self.name!r}: feature_types must be a non-empty subset of "
                f"{sorted(FEATURE_TYPES)}, got {sorted(self.feature_types)}"
            )
        check_threshold(self.kind, self.default_threshold, f"drift test {self.name!r}")

    def evaluate(
        self, reference: np.ndarray, current: np.ndarray, feature_type: str
    ) -> TestOutcome:
        """Run the test on already cleaned values (see the module docstring)."""
        return self.fn(reference, current, feature_type)

    def is_drift(self, outcome: TestOutcome, threshold: float) -> bool:
        """Whether an outcome counts as drift under ``threshold``."""
        if self.kind == "p_value":
            return outcome.p_value is not None and outcome.p_value < threshold
        return outcome.statistic >= threshold


def check_threshold(kind: str, threshold: float, where: str) -> float:
    """Validate a threshold for a test kind and return it as a float.

    Args:
        kind: ``"p_value"`` or ``"distance"``.
        threshold: The threshold to check.
        where: What the threshold belongs to, for the error message.

    Returns:
        The threshold as a float.

    Raises:
        DriftError: If it is not a finite number in range: ``0 < t < 1`` for p-values,
            ``t > 0`` for distances.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise DriftError(f"{where}: threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if not np.isfinite(value):
        raise DriftError(f"{where}: threshold must be finite, got {value}")
    if kind == "p_value" and not 0.0 < value < 1.0:
        raise DriftError(f"{where}: p-value threshold must be in (0, 1), got {value}")
    if kind == "distance" and value <= 0.0:
        raise DriftError(f"{where}: distance threshold must be > 0, got {value}")
    return value


_REGISTRY: dict[str, TestSpec] = {}


def register(spec: TestSpec) -> TestSpec:
    """Add a drift test to the registry (replacing one of the same name) and return it."""
    _REGISTRY[spec.name] = spec
    return spec


def register_distance(
    name: str, summary_fn: SummaryFn, default_threshold: float, description: str
) -> TestSpec:
    """Register a distance test of numeric and categorical features, given on summaries.

    Its values-level ``fn`` is derived from ``summary_fn`` (:func:`from_summary_fn`).
    """
    return register(
        TestSpec(
            name=name,
            feature_types=FEATURE_TYPES,
            default_threshold=default_threshold,
            kind="distance",
            fn=from_summary_fn(summary_fn),
            summary_fn=summary_fn,
            description=description,
        )
    )


def get_test(name: str) -> TestSpec:
    """Look a drift test up by name.

    Raises:
        DriftError: If no test of that name is registered; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_tests()) or "none"
        raise DriftError(f"unknown drift test {name!r}; known tests: {known}") from None


def available_tests() -> list[str]:
    """Names of the registered drift tests, sorted."""
    return sorted(_REGISTRY)
