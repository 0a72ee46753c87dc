"""Evaluation: holdout metrics with intervals, paired tests and the promotion gate."""

from refit.evaluation.compare import Comparison, check_compatible, compare_models, model_data
from refit.evaluation.gate import (
    FIRST_RUN_REASON,
    MODES,
    NO_THRESHOLDS_REASON,
    GateConfig,
    GateResult,
    SliceSpec,
    gate,
    render_checks_markdown,
)
from refit.evaluation.metrics import MAX_ROC_POINTS, EvaluationResult, downsample_curve, evaluate
from refit.evaluation.stats import (
    Interval,
    PairedData,
    bootstrap_interval,
    delong_test,
    mcnemar_test,
    metric_intervals,
    paired_bootstrap,
    wilson_interval,
)

__all__ = [
    "FIRST_RUN_REASON",
    "MAX_ROC_POINTS",
    "MODES",
    "NO_THRESHOLDS_REASON",
    "Comparison",
    "EvaluationResult",
    "GateConfig",
    "GateResult",
    "Interval",
    "PairedData",
    "SliceSpec",
    "bootstrap_interval",
    "check_compatible",
    "compare_models",
    "delong_test",
    "downsample_curve",
    "evaluate",
    "gate",
    "mcnemar_test",
    "metric_intervals",
    "model_data",
    "paired_bootstrap",
    "render_checks_markdown",
    "wilson_interval",
]
