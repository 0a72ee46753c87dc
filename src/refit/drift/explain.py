"""Explainable drift: which features moved a tree model's predictions between two windows.

For an XGBoost model, SHAP contributions (``Booster.predict(..., pred_contribs=True)``, exact
TreeSHAP) are computed on (a seeded sample of) the reference and the current window. Per feature,
the mean absolute contribution on each side and its shift (current - reference) say how much that
feature drives the predictions now compared with then; sorted by the size of the shift, the table
answers "which features moved the predictions", not only "which features moved". One-hot columns
of a categorical feature are summed per row before the absolute value, so a categorical feature
gets one number. For multi-class models the absolute contributions are averaged over classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DriftError

#: Rows sampled per side (SHAP costs grow with rows x trees x depth).
MAX_ROWS = 20_000


def _sample(table: pa.Table, max_rows: int, seed: int) -> pa.Table:
    if table.num_rows <= max_rows:
        return table
    idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, max_rows, replace=False))
    return table.take(pa.array(idx))


def _booster(model: Any) -> Any:
    import xgboost as xgb

    estimator = getattr(model, "estimator", model)
    if isinstance(estimator, xgb.Booster):
        return estimator
    if hasattr(estimator, "get_booster"):
        return estimator.get_booster()
    raise DriftError(
        "explainable drift needs an XGBoost model (pred_contribs SHAP values); got "
        f"{type(estimator).__name__}"
    )


def _per_feature(contribs: np.ndarray, spec: Any) -> tuple[list[str], np.ndarray]:
    """Mean |contribution| per original feature, from (n, [classes,] columns + 1) contributions."""
    if contribs.ndim == 3:  # multi-class: (n, classes, columns + 1)
        groups = _groups(spec)
        per = np.stack(
            [np.abs(contribs[:, :, cols].sum(axis=2)).mean(axis=1) for cols in groups[1]]
        )
        return groups[0], per.mean(axis=1)
    names, columns = _groups(spec)
    return names, np.array([np.abs(contribs[:, cols].sum(axis=1)).mean() for cols in columns])


def _groups(spec: Any) -> tuple[list[str], list[list[int]]]:
    names = list(spec.numeric)
    columns = [[j] for j in range(len(names))]
    offset = len(names)
    for name in spec.categorical:
        width = spec.block_width(name)
        names.append(name)
        columns.append(list(range(offset, offset + width)))
        offset += width
    return names, columns


def explain_drift(
    model: Any, reference: pa.Table, current: pa.Table, *, max_rows: int = MAX_ROWS, seed: int = 0
) -> dict[str, Any]:
    """Attribute the change in a model's predictions between two windows to its features.

    Args:
        model: A :class:`refit.training.trainers.TrainedModel` (``.estimator``, ``.spec``)
            whose estimator is XGBoost.
        reference: Reference window (the model's training data, typically).
        current: Current window.
        max_rows: Rows sampled per side.
        seed: Seed of the sample.

    Returns:
        ``{"method", "rows_reference", "rows_current", "mean_prediction_reference",
        "mean_prediction_current", "features": [{"feature", "reference", "current", "shift"},
        ...]}``, features sorted by ``|shift|``, largest first.

    Raises:
        DriftError: If the model is not XGBoost. TrainingError: If a feature column is missing
            or changed type (from the encoder).
    """
    import xgboost as xgb

    from refit.training.features import encode

    booster = _booster(model)
    spec = model.spec
    out: dict[str, Any] = {"method": "XGBoost pred_contribs (TreeSHAP), mean |contribution|"}
    per_side = {}
    for side, table in (("reference", reference), ("current", current)):
        sample = _sample(table, max_rows, seed)
        matrix = xgb.DMatrix(encode(sample, spec))
        contribs = booster.predict(matrix, pred_contribs=True)
        names, values = _per_feature(np.asarray(contribs), spec)
        per_side[side] = dict(zip(names, values.tolist(), strict=True))
        prediction = np.asarray(booster.predict(matrix))
        out[f"rows_{side}"] = sample.num_rows
        out[f"mean_prediction_{side}"] = float(prediction.mean())
    rows = [
        {
            "feature": name,
            "reference": per_side["reference"][name],
            "current": per_side["current"][name],
            "shift": per_side["current"][name] - per_side["reference"][name],
        }
        for name in per_side["reference"]
    ]
    out["features"] = sorted(rows, key=lambda r: (-abs(r["shift"]), r["feature"]))
    return out
