"""Classification metrics of a trained model on a holdout table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.training.features import encode_target
from refit.training.trainers import TrainedModel

__all__ = ["MAX_ROC_POINTS", "EvaluationResult", "downsample_curve", "evaluate"]

#: Most points kept in a stored ROC curve.
MAX_ROC_POINTS = 200

_SCALAR_METRICS = ("accuracy", "f1", "roc_auc")


@dataclass
class EvaluationResult:
    """Metrics of a model on a holdout table.

    Attributes:
        accuracy: Share of correct predictions.
        f1: F1 score: binary (positive class = ``labels[1]``) for two classes, macro otherwise.
        roc_auc: Binary ROC AUC from the positive-class probability, or one-vs-rest macro AUC
            for multi-class (over the classes present); None when the holdout has one class.
        n_rows: Rows evaluated.
        labels: Class labels, in confusion-matrix order.
        confusion_matrix: ``confusion_matrix[i][j]`` = rows of true class ``labels[i]``
            predicted as ``labels[j]``.
        roc_curve: Binary only: ``{"fpr": [...], "tpr": [...], "thresholds": [...]}`` with at
            most :data:`MAX_ROC_POINTS` points (thresholds are finite); None otherwise.
        notes: Plain-language notes, e.g. why ``roc_auc`` is None.
    """

    accuracy: float
    f1: float
    roc_auc: float | None
    n_rows: int
    labels: list
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]] | None = None
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Scalar metrics by name (accuracy, f1, roc_auc), leaving out undefined ones.

        This is the dictionary :func:`refit.evaluation.gate` expects.
        """
        out: dict[str, float] = {}
        for name in _SCALAR_METRICS:
            value = getattr(self, name)
            if value is not None and math.isfinite(value):
                out[name] = float(value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "accuracy": self.accuracy,
            "f1": self.f1,
            "roc_auc": self.roc_auc,
            "n_rows": self.n_rows,
            "labels": list(self.labels),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "roc_curve": None
            if self.roc_curve is None
            else {k: list(v) for k, v in self.roc_curve.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Build a result from :meth:`to_dict` output, checking its internal consistency.

        Metrics are finite and in ``[0, 1]``; ``n_rows`` is an integer in ``[0, 10^15]``; the
        confusion matrix is square over ``labels`` with non-negative integer cells summing to
        ``n_rows``, and ``accuracy`` equals its diagonal share; a ROC curve has equally long
        ``fpr``/``tpr``/``thresholds`` lists with rates in ``[0, 1]``, non-decreasing.

        Raises:
            DataError: A missing field or the first inconsistency, naming the field.
        """
        where = "evaluation result"
        try:
            result = cls(
                accuracy=_rate(data["accuracy"], "accuracy"),
                f1=_rate(data["f1"], "f1"),
                roc_auc=None if data.get("roc_auc") is None else _rate(data["roc_auc"], "roc_auc"),
                n_rows=_int_count(data["n_rows"], "n_rows"),
                labels=list(data["labels"]),
                confusion_matrix=[
                    [_int_count(x, "confusion_matrix cell") for x in row]
                    for row in data["confusion_matrix"]
                ],
                roc_curve=data.get("roc_curve"),
                notes=[str(n) for n in data.get("notes", [])],
            )
        except KeyError as exc:
            raise DataError(f"{where}: field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: {exc}") from None
        _check_matrix(result, where)
        if result.roc_curve is not None:
            _check_roc_curve(result.roc_curve, where)
        return result


def _check_matrix(result: EvaluationResult, where: str) -> None:
    """The confusion matrix is square over the labels, sums to n_rows, and gives the accuracy."""
    k = len(result.labels)
    matrix = result.confusion_matrix
    if len(matrix) != k or any(len(row) != k for row in matrix):
        raise DataError(f"{where}: confusion_matrix is not {k} x {k} (one row per label)")
    total = sum(map(sum, matrix))
    if total != result.n_rows:
        raise DataError(f"{where}: confusion_matrix sums to {total}, but n_rows is {result.n_rows}")
    if total and not math.isclose(
        result.accuracy, sum(matrix[i][i] for i in range(k)) / total, abs_tol=1e-9
    ):
        raise DataError(f"{where}: accuracy {result.accuracy} does not match the confusion_matrix")


def _check_roc_curve(curve: Any, where: str) -> None:
    """A ROC curve has equally long fpr/tpr/thresholds lists, rates non-decreasing in [0, 1]."""
    try:
        fpr, tpr, thr = (list(map(float, curve[key])) for key in ("fpr", "tpr", "thresholds"))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: roc_curve is malformed: {exc!r}") from None
    if not len(fpr) == len(tpr) == len(thr):
        raise DataError(f"{where}: roc_curve lists differ in length")
    for key, rates in (("fpr", fpr), ("tpr", tpr)):
        if any(not 0.0 <= r <= 1.0 for r in rates) or any(
            b < a for a, b in zip(rates, rates[1:], strict=False)
        ):
            raise DataError(f"{where}: roc_curve {key} is not non-decreasing in [0, 1]")


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} is {value!r}; it must be in [0, 1]")
    return float(value)


def _int_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if not 0 <= value <= 10**15:
        raise ValueError(f"{name} is {value}; a count must be between 0 and 10^15")
    return value


def downsample_curve(
    fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, max_points: int = MAX_ROC_POINTS
) -> dict[str, list[float]]:
    """Keep at most ``max_points`` evenly spaced points of a ROC curve (first and last kept).

    Infinite thresholds (scikit-learn's first point) are replaced by 1.0 so the curve is valid
    JSON.

    Args:
        fpr: False-positive rates.
        tpr: True-positive rates.
        thresholds: Decision thresholds.
        max_points: Most points to keep (at least 2).

    Returns:
        ``{"fpr": [...], "tpr": [...], "thresholds": [...]}``.
    """
    n = len(fpr)
    max_points = max(2, int(max_points))
    if n > max_points:
        index = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))
    else:
        index = np.arange(n)
    thr = np.asarray(thresholds, dtype=np.float64)[index]
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return {
        "fpr": [float(x) for x in np.asarray(fpr, dtype=np.float64)[index]],
        "tpr": [float(x) for x in np.asarray(tpr, dtype=np.float64)[index]],
        "thresholds": [float(x) for x in thr],
    }


def evaluate(model: TrainedModel, table: pa.Table) -> EvaluationResult:
    """Evaluate a trained model on a holdout table.

    Args:
        model: The trained model.
        table: Holdout table with the target and feature columns.

    Returns:
        The :class:`EvaluationResult`. A holdout holding a single class gives ``roc_auc`` None
        and a note saying why.

    Raises:
        DataError: If the table has no rows.
        TrainingError: If the target column is missing, has null labels or labels the model
            does not know, or a feature column is missing.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve

    if table.num_rows == 0:
        raise DataError("evaluation table has no rows")
    spec = model.spec
    y_true = encode_target(table, spec)
    proba = model.predict_proba(table)
    y_pred = np.argmax(proba, axis=1)
    k = spec.n_classes
    labels_idx = list(range(k))
    notes: list[str] = []

    accuracy = float(accuracy_score(y_true, y_pred))
    if k == 2:
        f1 = float(f1_score(y_true, y_pred, pos_label=1, average="binary", zero_division=0))
    else:
        f1 = float(f1_score(y_true, y_pred, labels=labels_idx, average="macro", zero_division=0))
    cm = confusion_matrix(y_true, y_pred, labels=labels_idx)

    present = sorted(set(int(c) for c in np.unique(y_true)))
    roc_auc: float | None = None
    curve: dict[str, list[float]] | None = None
    if len(present) < 2:
        only = spec.classes[present[0]]
        notes.append(f"roc_auc undefined: the holdout holds only one class ({only!r})")
    elif k == 2:
        scores = proba[:, 1]
        roc_auc = float(roc_auc_score(y_true, scores))
        fpr, tpr, thr = roc_curve(y_true, scores, pos_label=1)
        curve = downsample_curve(fpr, tpr, thr)
    else:
        # One-vs-rest macro AUC over the classes present in the holdout (equal to scikit-learn's
        # multi_class="ovr" macro AUC when every class is present).
        aucs = [float(roc_auc_score(y_true == c, proba[:, c])) for c in present]
        roc_auc = float(np.mean(aucs))
        if len(present) < k:
            absent = [spec.classes[c] for c in labels_idx if c not in present]
            notes.append(
                f"roc_auc averaged over the classes present; absent from holdout: {absent}"
            )

    return EvaluationResult(
        accuracy=accuracy,
        f1=f1,
        roc_auc=roc_auc,
        n_rows=int(table.num_rows),
        labels=list(spec.classes),
        confusion_matrix=[[int(x) for x in row] for row in cm],
        roc_curve=curve,
        notes=notes,
    )
