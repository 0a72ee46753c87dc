"""Evaluation: holdout metrics and the promotion gate."""

from refit.evaluation.gate import (
    FIRST_RUN_REASON,
    NO_THRESHOLDS_REASON,
    GateConfig,
    GateResult,
    gate,
)
from refit.evaluation.metrics import MAX_ROC_POINTS, EvaluationResult, downsample_curve, evaluate

__all__ = [
    "FIRST_RUN_REASON",
    "MAX_ROC_POINTS",
    "NO_THRESHOLDS_REASON",
    "EvaluationResult",
    "GateConfig",
    "GateResult",
    "downsample_curve",
    "evaluate",
    "gate",
]
