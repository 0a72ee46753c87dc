"""Drift detection: a registry of statistical tests, mergeable profiles, detection, HTML report.

Each test lives in its own module and registers a :class:`TestSpec` on import; importing this
package registers the built-in ones (``ks``, ``chisquare``, ``jensenshannon``, ``psi``,
``wasserstein``, ``linf``, ``kl``, ``hellinger``).
"""

from refit.drift import (  # noqa: F401  (register the tests)
    chisquare,
    hellinger,
    jensenshannon,
    kl,
    ks,
    linf,
    psi,
    wasserstein,
)
from refit.drift.accumulate import profile_table
from refit.drift.base import (
    TestOutcome,
    TestSpec,
    available_tests,
    get_test,
    register,
)
from refit.drift.detect import DEFAULT_TESTS, choose_test, compare_profiles, detect_drift
from refit.drift.profile import PROFILE_VERSION, Profile, merge_profiles
from refit.drift.profile_io import load_profile, profile_uri, save_profile
from refit.drift.report import render_drift_html
from refit.drift.result import DriftResult, FeatureDrift

__all__ = [
    "DEFAULT_TESTS",
    "PROFILE_VERSION",
    "Profile",
    "choose_test",
    "compare_profiles",
    "load_profile",
    "merge_profiles",
    "profile_table",
    "profile_uri",
    "save_profile",
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
