"""Evaluation: holdout metrics with intervals, paired tests, fairness, latency and the gate."""

from refit.evaluation.compare import Comparison, check_compatible, compare_models, model_data
from refit.evaluation.fairness import (
    FairnessReport,
    check_fairness,
    compute_fairness,
    fairness_report,
)
from refit.evaluation.fairness_config import FairnessConfig
from refit.evaluation.gate import (
    FIRST_RUN_REASON,
    MODES,
    NO_THRESHOLDS_REASON,
    GateConfig,
    GateResult,
    SliceSpec,
    gate,
)
from refit.evaluation.latency import (
    ServingConfig,
    ServingReport,
    ServingStats,
    serving_check,
)
from refit.evaluation.metrics import MAX_ROC_POINTS, EvaluationResult, downsample_curve, evaluate
from refit.evaluation.render import (
    render_checks_markdown,
    render_fairness_markdown,
    render_serving_markdown,
)
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
    "FairnessConfig",
    "FairnessReport",
    "GateConfig",
    "GateResult",
    "Interval",
    "PairedData",
    "ServingConfig",
    "ServingReport",
    "ServingStats",
    "SliceSpec",
    "bootstrap_interval",
    "check_compatible",
    "check_fairness",
    "compare_models",
    "compute_fairness",
    "delong_test",
    "downsample_curve",
    "evaluate",
    "fairness_report",
    "gate",
    "mcnemar_test",
    "metric_intervals",
    "model_data",
    "paired_bootstrap",
    "render_checks_markdown",
    "render_fairness_markdown",
    "render_serving_markdown",
    "serving_check",
    "wilson_interval",
]
