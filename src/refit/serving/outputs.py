"""KServe V2 answers: a model's output tensors for a feature table, and its model metadata."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.serving.protocol import OUTPUT_NAMES
from refit.training.artifacts import FORMAT_XGBOOST
from refit.training.features import FeatureSpec, classes_array
from refit.training.trainers import TrainedModel, get_trainer

__all__ = ["input_tensors", "model_metadata", "platform_of", "predict_outputs"]


def _label_datatype(classes: Sequence[Any]) -> str:
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def _plain(values: np.ndarray) -> list[Any]:
    out = values.tolist()
    return [None if isinstance(v, float) and math.isnan(v) else v for v in out]


def predict_outputs(
    model: TrainedModel, table: pa.Table, requested: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Score a feature table and return the V2 output tensors.

    Classifiers answer ``predict`` (the class labels, as `TrainedModel.predict` gives them) and
    ``predict_proba`` (shape ``[N, n_classes]``, columns in the order of the model's classes);
    regressors answer ``predict`` only.

    Args:
        model: The loaded model.
        table: The feature table (see `request_to_table`).
        requested: Output names the client asked for (None: every output that applies).

    Returns:
        Output tensors ``{"name", "datatype", "shape", "data"}``.

    Raises:
        DataError: ``predict_proba`` was requested from a regressor.
        TrainingError: The table cannot be encoded for the model.
    """
    n = table.num_rows
    if model.spec.is_regression:
        if requested is not None and "predict_proba" in requested:
            raise DataError(
                f"output 'predict_proba' is not available: model trainer {model.trainer!r} "
                f"is a regressor of {model.spec.target!r}"
            )
        values = model.predict(table)
        return [{"name": "predict", "datatype": "FP64", "shape": [n], "data": _plain(values)}]
    proba = model.predict_proba(table)
    # The same labels as TrainedModel.predict, from the one predict_proba call.
    labels = classes_array(model.spec, np.argmax(proba, axis=1)) if n else np.array([])
    outputs = {
        "predict": {
            "name": "predict",
            "datatype": _label_datatype(model.classes),
            "shape": [n],
            "data": _plain(labels),
        },
        "predict_proba": {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [n, model.spec.n_classes],
            "data": _plain(proba.reshape(-1)),
        },
    }
    names = OUTPUT_NAMES if requested is None else requested
    return [outputs[name] for name in OUTPUT_NAMES if name in names]


def platform_of(model: TrainedModel) -> str:
    """The model's serving platform in KServe's model-format words: ``xgboost`` or ``sklearn``."""
    return "xgboost" if get_trainer(model.trainer).format == FORMAT_XGBOOST else "sklearn"


def input_tensors(spec: FeatureSpec) -> list[dict[str, Any]]:
    """The input tensors a model takes (one per feature column, shape ``[-1]``)."""
    return [{"name": f, "datatype": "FP64", "shape": [-1]} for f in spec.numeric] + [
        {"name": f, "datatype": "BYTES", "shape": [-1]} for f in spec.categorical
    ]


def model_metadata(
    name: str, version: int, model: TrainedModel, versions: Sequence[int]
) -> dict[str, Any]:
    """The V2 model metadata response of one version.

    Args:
        name: The model's name.
        version: The version described.
        model: That version, loaded.
        versions: Every registered version (any can be pinned).

    Returns:
        ``{"name", "versions", "platform", "inputs", "outputs"}`` as the V2 protocol defines
        them, plus ``"refit"``: the version described, its revision label, trainer, task,
        classes and feature order.
    """
    spec = model.spec
    outputs: list[dict[str, Any]]
    if spec.is_regression:
        outputs = [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    else:
        outputs = [
            {"name": "predict", "datatype": _label_datatype(model.classes), "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, spec.n_classes]},
        ]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": platform_of(model),
        "inputs": input_tensors(spec),
        "outputs": outputs,
        "refit": {
            "version": version,
            "revision": f"v{version}",
            "trainer": model.trainer,
            "task": spec.task,
            "classes": list(spec.classes),
            "feature_order": spec.feature_columns,
        },
    }
