"""Drift detection: a registry of statistical tests, per-feature detection, HTML report.

Each test lives in its own module and registers a :class:`TestSpec` on import; importing this
package registers the built-in ones (``ks``, ``chisquare``, ``jensenshannon``).
"""

from refit.drift import chisquare, jensenshannon, ks  # noqa: F401  (register the tests)
from refit.drift.base import (
    TestOutcome,
    TestSpec,
    available_tests,
    get_test,
    register,
)
from refit.drift.detect import DEFAULT_TESTS, DriftResult, FeatureDrift, detect_drift
from refit.drift.report import render_drift_html

__all__ = [
    "DEFAULT_TESTS",
    "DriftResult",
    "FeatureDrift",
    "TestOutcome",
    "TestSpec",
    "available_tests",
    "detect_drift",
    "get_test",
    "register",
    "render_drift_html",
]
