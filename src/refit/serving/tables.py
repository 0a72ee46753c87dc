"""A checked V2 infer request turned into the feature table a model scores.

A request carries its features in one of two layouts:

- **one tensor per feature column**: ``name`` = the feature's name, ``shape`` ``[N]`` (or
  ``[N, 1]``); numeric features take a numeric datatype (``FP64``, ``FP32``, ``INT64``...,
  ``BOOL``) or ``BYTES`` holding numbers or numeric strings; categorical features take ``BYTES``
  holding strings;
- **one 2-D tensor** (conventionally ``input-0``), shape ``[N, F]``, its columns in the order of
  `FeatureSpec.feature_columns` (numeric features first, then categorical, as the model
  metadata's ``inputs`` list them). A model with categorical features needs datatype ``BYTES``
  here (one tensor has one datatype); numeric columns then accept numbers or numeric strings.

``data`` is flat (row-major) or nested; ``null`` marks a missing value (NaN for a numeric feature,
an unseen category for a categorical one). The table is then scored exactly as training and
evaluation score tables: `TrainedModel.predict_proba` on the same `FeatureSpec` encoding.

Numbers must be finite and fit their datatype: ``NaN``/``Infinity`` (not JSON, though Python's
parser takes them), ``1e400`` and ``10**400`` are refused, as is an ``INT8`` element of 300.
Bad elements raise `refit.errors.DataError` naming the input tensor and element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.serving.protocol import InferRequest, InputTensor, _short
from refit.training.features import FeatureSpec

__all__ = ["request_to_table"]


#: Largest finite magnitude of each floating datatype.
_FLOAT_MAX = {"FP16": 65504.0, "FP32": float(np.finfo(np.float32).max), "FP64": math.inf}


def _finite(number: float | int, where: str, datatype: str) -> float:
    """``number`` as a finite float that fits ``datatype``, or a DataError naming it."""
    try:
        value = float(number)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise DataError(
            f"{where} is {_short(number)}, not a finite number; send null for a missing value"
        )
    if abs(value) > _FLOAT_MAX.get(datatype, math.inf):
        raise DataError(f"{where} is {_short(number)}, out of range for datatype {datatype}")
    return value


def _number(value: Any, datatype: str, where: str, feature: str) -> float | None:
    """One element for a numeric feature, as float (None = missing)."""
    if value is None:
        return None
    if datatype == "BOOL":
        if not isinstance(value, bool):
            raise DataError(f"{where} is {_short(value)}, not a boolean (datatype BOOL)")
        return float(value)
    if datatype == "BYTES":
        return _bytes_number(value, where, feature)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where} is {_short(value)}, not a number (datatype {datatype})")
    if datatype.startswith(("INT", "UINT")):
        _check_integer(value, where, datatype)
    return _finite(value, where, datatype)


def _bytes_number(value: Any, where: str, feature: str) -> float:
    """A ``BYTES`` element for a numeric feature: a number or a numeric string."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise DataError(
                f"{where} is {_short(value)}, not a number: feature {feature!r} is numeric"
            ) from None
        return _finite(number, where, "BYTES")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(value, where, "BYTES")
    raise DataError(f"{where} is {_short(value)}, not a number: feature {feature!r} is numeric")


def _check_integer(value: int | float, where: str, datatype: str) -> None:
    """Refuse a fraction, or a value outside the range of the integer ``datatype``."""
    if isinstance(value, float) and not value.is_integer():
        raise DataError(f"{where} is {_short(value)}, not an integer (datatype {datatype})")
    if datatype.startswith("UINT") and value < 0:
        raise DataError(f"{where} is {_short(value)}, negative for datatype {datatype}")
    bits = int(datatype.removeprefix("U").removeprefix("INT"))
    unsigned = datatype.startswith("U")
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= value <= high:
        raise DataError(
            f"{where} is {_short(value)}, out of range for datatype {datatype} [{low}, {high}]"
        )


def _category(value: Any, where: str, feature: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise DataError(
        f"{where} is {_short(value)}: feature {feature!r} is categorical and takes strings "
        "(datatype BYTES)"
    )


def _column_array(
    values: Sequence[Any], datatype: str, feature: str, spec: FeatureSpec, where: str
) -> pa.Array:
    if feature in spec.categorical:
        cats = [_category(v, f"{where} element {i}", feature) for i, v in enumerate(values)]
        return pa.array(cats, type=pa.string())
    nums = [_number(v, datatype, f"{where} element {i}", feature) for i, v in enumerate(values)]
    return pa.array(nums, type=pa.float64())


def _check_column_datatype(tensor: InputTensor, spec: FeatureSpec) -> None:
    if tensor.name in spec.categorical and tensor.datatype != "BYTES":
        raise DataError(
            f"input {tensor.name!r} has datatype {tensor.datatype}; feature {tensor.name!r} is "
            "categorical: send strings with datatype BYTES"
        )


def request_to_table(request: InferRequest, spec: FeatureSpec, *, model: str = "") -> pa.Table:
    """Turn a checked infer request into the feature table the model scores.

    Args:
        request: The checked request (see `parse_infer_request`).
        spec: The model's feature spec (``model.json``).
        model: The model's name and version, for messages (e.g. ``"credit v2"``).

    Returns:
        A table with one column per feature (numeric as float64, categorical as string), in
        `FeatureSpec.feature_columns` order.

    Raises:
        DataError: An input is not a feature, a feature is missing, shapes disagree, a tensor's
            datatype does not suit its feature, or an element is not of the feature's kind.
    """
    features = spec.feature_columns
    about = f" of model {model}" if model else ""
    inputs = request.inputs
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].name not in features:
        return _matrix_to_table(inputs[0], spec, about)
    by_name = {t.name: t for t in inputs}
    unknown = [t.name for t in inputs if t.name not in features]
    if unknown:
        raise DataError(
            f"input(s) {unknown} are not features{about}; it takes {features} (one tensor per "
            f"feature, shape [N]) or one 2-D tensor of shape [N, {len(features)}]"
        )
    missing = [f for f in features if f not in by_name]
    if missing:
        raise DataError(f"feature(s) {missing}{about} are missing from the request's inputs")
    rows: int | None = None
    columns: dict[str, pa.Array] = {}
    for feature in features:
        tensor = by_name[feature]
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise DataError(
                f"input {feature!r} has shape {list(tensor.shape)}; a feature tensor has shape "
                "[N] (or [N, 1])"
            )
        n = tensor.shape[0]
        if rows is None:
            rows = n
        elif n != rows:
            raise DataError(
                f"input {feature!r} has {n} row(s) but input {features[0]!r} has {rows}: every "
                "feature tensor needs the same N"
            )
        _check_column_datatype(tensor, spec)
        columns[feature] = _column_array(
            tensor.data, tensor.datatype, feature, spec, f"input {feature!r}"
        )
    return pa.table(columns)


def _matrix_to_table(tensor: InputTensor, spec: FeatureSpec, about: str) -> pa.Table:
    features = spec.feature_columns
    rows, width = tensor.shape
    if width != len(features):
        raise DataError(
            f"input {tensor.name!r} has shape {list(tensor.shape)}; the model{about} takes "
            f"[N, {len(features)}] with columns {features}"
        )
    if spec.categorical and tensor.datatype != "BYTES":
        raise DataError(
            f"input {tensor.name!r} has datatype {tensor.datatype} but feature(s) "
            f"{list(spec.categorical)}{about} are categorical: send datatype BYTES (numbers and "
            "strings) or one tensor per feature"
        )
    columns: dict[str, pa.Array] = {}
    for j, feature in enumerate(features):
        values = tensor.data[j::width] if rows else []
        columns[feature] = _column_array(
            values, tensor.datatype, feature, spec, f"input {tensor.name!r} column {j} ({feature})"
        )
    return pa.table(columns)
