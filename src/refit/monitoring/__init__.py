"""Model monitoring without labels: estimated performance (CBPE) and probability calibration."""

from refit.monitoring.estimate import (
    ASSUMPTION,
    ESTIMABLE_METRICS,
    Calibration,
    PerformanceEstimate,
    estimate_performance,
    fit_calibration,
)

__all__ = [
    "ASSUMPTION",
    "ESTIMABLE_METRICS",
    "Calibration",
    "PerformanceEstimate",
    "estimate_performance",
    "fit_calibration",
]
