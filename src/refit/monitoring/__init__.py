"""Model monitoring without labels: estimated performance (CBPE) and probability calibration."""

from refit.monitoring.calibration import Calibration, fit_calibration
from refit.monitoring.estimate import (
    ASSUMPTION,
    ESTIMABLE_METRICS,
    PerformanceEstimate,
    estimate_performance,
)

__all__ = [
    "ASSUMPTION",
    "ESTIMABLE_METRICS",
    "Calibration",
    "PerformanceEstimate",
    "estimate_performance",
    "fit_calibration",
]
