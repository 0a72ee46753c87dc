"""Challenger vs champion on the same holdout rows: metrics with intervals and paired tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, SchemaError
from refit.evaluation.gate import GateConfig, GateResult, gate
from refit.evaluation.metrics import EvaluationResult, evaluate
from refit.evaluation.stats import (
    PairedData,
    compute_metric,
    delong_test,
    mcnemar_test,
    metric_intervals,
    paired_bootstrap,
)
from refit.training.features import encode_target
from refit.training.trainers import TrainedModel

__all__ = ["Comparison", "check_compatible", "compare_models", "model_data"]


def check_compatible(challenger: TrainedModel, champion: TrainedModel) -> None:
    """Refuse to compare models trained on different features, targets or classes.

    Raises:
        SchemaError: Naming what differs.
    """
    a, b = challenger.spec, champion.spec
    if a.target != b.target:
        raise SchemaError(
            f"models predict different targets: challenger {a.target!r}, champion {b.target!r}"
        )
    fa, fb = set(a.feature_columns), set(b.feature_columns)
    if fa != fb:
        raise SchemaError(
            "models were trained on different feature sets: only challenger "
            f"{sorted(fa - fb)}, only champion {sorted(fb - fa)}"
        )
    if _is_regression(challenger) != _is_regression(champion):
        raise SchemaError("models solve different tasks: one is a regressor, one a classifier")
    if [str(c) for c in a.classes] != [str(c) for c in b.classes]:
        raise SchemaError(
            f"models know different classes: challenger {a.classes}, champion {b.classes}"
        )


def model_data(model: TrainedModel, table: pa.Table) -> PairedData:
    """Per-row labels and probabilities of a model on a table.

    Raises:
        DataError: The table has no rows.
        TrainingError: Missing columns, or labels the model does not know (named).
    """
    if table.num_rows == 0:
        raise DataError("evaluation table has no rows")
    y_true = encode_target(table, model.spec)
    if _is_regression(model):
        return PairedData(y_true=y_true, y_pred=np.asarray(model.predict(table), np.float64))
    return PairedData(y_true=y_true, proba=model.predict_proba(table))


def _is_regression(model: TrainedModel) -> bool:
    return bool(getattr(model.spec, "is_regression", False))


@dataclass
class Comparison:
    """Everything the gate needs, and what ``evaluation.json`` reports.

    Attributes:
        challenger: Challenger's classification metrics (:class:`EvaluationResult`); None for
            a regressor (its metrics are in ``intervals``).
        champion: Champion's, likewise, on the same rows, or None.
        intervals: ``{"challenger": {metric: interval}, "champion": {...}}``.
        paired: Metric -> interval of ``challenger - champion`` on paired resamples.
        tests: ``mcnemar`` and ``delong`` results, or ``{"error": why}`` when they cannot run.
        slices: Slice name -> ``{"n_rows", "metrics"}`` of the challenger.
        n_rows: Rows of the holdout.
    """

    challenger: EvaluationResult | None
    champion: EvaluationResult | None
    intervals: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_rows: int = 0

    def metrics(self, which: str = "challenger") -> dict[str, float]:
        """Point values of every metric of one side (the gate's input)."""
        out = {k: v["value"] for k, v in self.intervals.get(which, {}).items()}
        base = self.challenger if which == "challenger" else self.champion
        if base is not None:
            out.update(base.metrics())
        out["n_rows"] = self.n_rows
        return out

    def gate_input(self) -> dict[str, Any]:
        """The ``comparison`` argument of :func:`refit.evaluation.gate.gate`."""
        return {
            "n_rows": self.n_rows,
            "paired": self.paired,
            "tests": self.tests,
            "slices": self.slices,
        }

    def judge(self, config: GateConfig) -> GateResult:
        """Apply a gate to this comparison."""
        champion = None if self.champion is None else self.metrics("champion")
        return gate(self.metrics("challenger"), champion, config, comparison=self.gate_input())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "n_rows": self.n_rows,
            "challenger": None if self.challenger is None else self.challenger.to_dict(),
            "champion": None if self.champion is None else self.champion.to_dict(),
            "intervals": self.intervals,
            "paired": self.paired,
            "tests": self.tests,
            "slices": self.slices,
        }


def _slice_mask(table: pa.Table, column: str, values: list[Any]) -> np.ndarray:
    if column not in table.column_names:
        raise DataError(f"gate slice column {column!r} is not in the holdout")
    col = table.column(column)
    mask = pc.is_in(col, value_set=pa.array(values, type=col.type)) if values else None
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def compare_models(
    challenger: TrainedModel,
    champion: TrainedModel | None,
    table: pa.Table,
    config: GateConfig | None = None,
) -> Comparison:
    """Score challenger (and champion) on the same rows with intervals and paired tests.

    Args:
        challenger: The challenger.
        champion: The champion, or None.
        table: Holdout rows (target and features).
        config: Gate config: confidence, resamples, seed, slices and ``min_rows``.

    Returns:
        The :class:`Comparison`.

    Raises:
        SchemaError: The models differ in features, target or classes.
        DataError: Empty holdout, unknown slice column.
        TrainingError: Missing columns or labels the models do not know.
    """
    config = config or GateConfig()
    if champion is not None:
        check_compatible(challenger, champion)
    opts: dict[str, Any] = {
        "confidence": config.confidence,
        "n_resamples": config.n_resamples,
        "seed": config.seed,
    }
    data_a = model_data(challenger, table)
    regression = data_a.kind == "regression"
    out = Comparison(
        challenger=None if regression else evaluate(challenger, table),
        champion=None,
        n_rows=data_a.n,
    )
    enough = data_a.n >= config.min_rows
    out.intervals["challenger"] = _intervals(data_a, config, opts, enough)
    for spec in config.slices:
        out.slices[spec.name] = _slice_metrics(table, spec.column, spec.values, data_a)
    if champion is None:
        return out

    data_b = model_data(champion, table)
    out.champion = None if regression else evaluate(champion, table)
    if enough:
        out.intervals["champion"] = {
            k: v.to_dict() for k, v in metric_intervals(data_b, **opts).items()
        }
    else:
        out.intervals["champion"] = {}
        why_not = f"too few rows ({data_a.n} < {config.min_rows}) for a paired test"
        out.tests = {"mcnemar": {"error": why_not}, "delong": {"error": why_not}}
        return out
    if regression:
        out.tests = {
            "mcnemar": {"error": "McNemar's test is for classifiers only"},
            "delong": {"error": "DeLong's test is for classifiers only"},
        }
    else:
        out.tests = _classifier_tests(data_a, data_b)
    _paired_all(out, data_a, data_b, opts)
    return out


def _intervals(
    data: PairedData, config: GateConfig, opts: dict[str, Any], enough: bool
) -> dict[str, Any]:
    """The challenger's metric intervals; with too few rows, point values and the reason."""
    if enough:
        return {k: v.to_dict() for k, v in metric_intervals(data, **opts).items()}
    return {
        name: {
            "value": float(compute_metric(name, data)[0]),
            "low": None,
            "high": None,
            "method": f"too few rows ({data.n} < {config.min_rows})",
            "confidence": config.confidence,
        }  # fmt: skip
        for name in data.metric_names()
        if math.isfinite(float(compute_metric(name, data)[0]))
    }


def _slice_metrics(
    table: pa.Table, column: str, values: list[Any], data: PairedData
) -> dict[str, Any]:
    """The challenger's finite metrics on the rows of one slice, with their count."""
    rows = np.flatnonzero(_slice_mask(table, column, values))
    metrics = {}
    for name in data.metric_names():
        value = float(compute_metric(name, data, rows)[0]) if rows.size else math.nan
        if math.isfinite(value):
            metrics[name] = value
    return {"n_rows": int(rows.size), "metrics": metrics}


def _classifier_tests(data_a: PairedData, data_b: PairedData) -> dict[str, Any]:
    """McNemar's test on correctness and, for binary labels, DeLong's on ROC AUC."""
    correct_a = np.argmax(data_a.class_proba, axis=1) == data_a.y_true
    correct_b = np.argmax(data_b.class_proba, axis=1) == data_b.y_true
    # McNemar: b = champion right & challenger wrong, c = challenger right & champion wrong.
    tests: dict[str, Any] = {"mcnemar": mcnemar_test(correct_b, correct_a)}
    if data_a.class_proba.shape[1] == 2:
        try:
            tests["delong"] = delong_test(
                data_a.y_true == 1, data_a.class_proba[:, 1], data_b.class_proba[:, 1]
            )
        except DataError as exc:
            tests["delong"] = {"error": str(exc)}
    else:
        tests["delong"] = {"error": "DeLong's test is for binary labels only"}
    return tests


def _paired_all(out: Comparison, a: PairedData, b: PairedData, opts: dict[str, Any]) -> None:
    for name in a.metric_names():
        interval = paired_bootstrap(name, a, b, **opts)
        if math.isfinite(interval.value):
            out.paired[name] = interval.to_dict()
