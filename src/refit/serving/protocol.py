"""KServe V2 (Open Inference Protocol) messages: decode requests into tables, encode answers.

Everything here is pure: a parsed JSON body and a model's `FeatureSpec` in, a pyarrow table or
JSON-ready dicts out. Bad requests raise `refit.errors.DataError` with a message that names the
input tensor (and element) at fault; the server answers those with 400 and ``{"error": ...}``.

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
Requests are bounded by `RequestLimits` (body bytes, elements, nesting depth); a request over a
limit raises `RequestTooLarge`, which the server answers with 413.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.training.artifacts import FORMAT_XGBOOST
from refit.training.features import FeatureSpec, classes_array
from refit.training.trainers import TrainedModel, get_trainer

__all__ = [
    "DATATYPES",
    "NUMERIC_DATATYPES",
    "OUTPUT_NAMES",
    "InferRequest",
    "InputTensor",
    "RequestLimits",
    "RequestTooLarge",
    "decode_json",
    "input_tensors",
    "model_metadata",
    "parse_infer_request",
    "platform_of",
    "predict_outputs",
    "request_to_table",
]

#: V2 numeric tensor datatypes (``BOOL`` counts: true/false become 1/0 for a numeric feature).
NUMERIC_DATATYPES: tuple[str, ...] = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
)
#: Every V2 datatype refit accepts.
DATATYPES: tuple[str, ...] = (*NUMERIC_DATATYPES, "BYTES")
#: Longest input tensor name (feature names are short; the name is echoed in messages).
MAX_NAME_LENGTH = 256
#: The output tensors an infer response can hold, in answer order.
OUTPUT_NAMES: tuple[str, ...] = ("predict", "predict_proba")


@dataclass(frozen=True)
class InputTensor:
    """One request input tensor, with its ``data`` flattened row-major.

    Attributes:
        name: The tensor's name.
        shape: Its shape (non-negative sizes).
        datatype: Its V2 datatype (one of `DATATYPES`).
        data: Its elements, flattened row-major; ``len(data)`` is the product of ``shape``.
    """

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]


@dataclass(frozen=True)
class InferRequest:
    """A checked V2 infer request.

    Attributes:
        inputs: The input tensors, in request order.
        id: The request id, echoed in the response (None when the client sent none).
        outputs: Names of the requested output tensors (None: all that apply to the model).
        parameters: The request's ``parameters`` object (unused by refit; kept for callers).
    """

    inputs: list[InputTensor]
    id: str | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- limits


class RequestTooLarge(DataError):
    """A request is over one of the server's `RequestLimits` (answered 413)."""


@dataclass(frozen=True)
class RequestLimits:
    """How large an infer request may be; anything larger is refused before it is scored.

    The defaults fit online scoring (a batch of a few thousand rows) with room to spare, and
    keep one request's memory in the low hundreds of MB at worst.

    Attributes:
        max_body_bytes: Largest request body, in bytes (checked on ``Content-Length`` and while
            the body streams in, before any JSON parsing). Default 8 MiB.
        max_elements: Most tensor elements in one request (rows x features, summed over the
            inputs), checked on the declared shapes before ``data`` is read. Default 1,000,000.
        max_depth: Most dimensions of a tensor's ``shape``, and deepest nesting of its ``data``
            arrays. Default 8.

    Raises:
        ValueError: A limit is not a positive integer.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_elements: int = 1_000_000
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_elements", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"request limit {name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = RequestLimits()


def _refuse_constant(name: str) -> Any:
    raise DataError(
        f"body holds {name}, which is not JSON and not a value the model can score; "
        "send null for a missing value"
    )


def decode_json(body: bytes) -> Any:
    """Parse a request body as strict JSON.

    Raises:
        DataError: Not UTF-8 JSON, ``NaN``/``Infinity`` constants, or nested too deeply for the
            parser.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except DataError:
        raise
    except RecursionError:
        raise DataError("body is not JSON the server accepts: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int over 4300 digits
        raise DataError(f"body is not JSON: {exc}") from None


_END = object()


def _flatten(data: Any, name: str, expected: int, max_depth: int) -> list[Any]:
    if not isinstance(data, list):
        raise DataError(f"input {name!r}: 'data' must be a JSON array, got {type(data).__name__}")
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) >= max_depth:
                raise RequestTooLarge(
                    f"input {name!r}: 'data' is nested deeper than {max_depth} levels "
                    "(the server's max_depth)"
                )
            stack.append(iter(item))
        else:
            flat.append(item)
            if len(flat) > expected:
                raise DataError(
                    f"input {name!r}: 'data' has more than the {expected} element(s) its shape "
                    "holds"
                )
    return flat


def _parse_tensor(raw: Any, index: int, limits: RequestLimits, budget: int) -> InputTensor:
    if not isinstance(raw, Mapping):
        raise DataError(f"inputs[{index}] must be a JSON object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise DataError(
            f"inputs[{index}] needs a non-empty string 'name' of at most {MAX_NAME_LENGTH} "
            f"characters, got {_short(name)}"
        )
    missing = [k for k in ("shape", "datatype", "data") if k not in raw]
    if missing:
        raise DataError(f"input {name!r} lacks field(s) {missing}")
    shape = raw["shape"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise DataError(
            f"input {name!r}: 'shape' must be a non-empty list of non-negative integers, "
            f"got {_short(shape)}"
        )
    if len(shape) > limits.max_depth:
        raise RequestTooLarge(
            f"input {name!r}: shape has {len(shape)} dimensions, more than the server's "
            f"max_depth {limits.max_depth}"
        )
    datatype = raw["datatype"]
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise DataError(
            f"input {name!r}: datatype {_short(datatype)} is not supported; use one of "
            f"{list(DATATYPES)}"
        )
    expected = math.prod(shape)
    if expected > budget:
        raise RequestTooLarge(
            f"input {name!r}: shape {_short(shape)} holds {expected} element(s); a request may "
            f"hold at most {limits.max_elements} (the server's max_elements), split it into "
            "smaller batches"
        )
    data = _flatten(raw["data"], name, expected, limits.max_depth)
    if len(data) != expected:
        raise DataError(
            f"input {name!r}: shape {shape} holds {expected} element(s) but 'data' has {len(data)}"
        )
    return InputTensor(name=name, shape=tuple(shape), datatype=datatype, data=data)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a client's value echoed in a message)."""
    try:
        text = repr(value)
    except ValueError:  # an int too large for repr (over 4300 digits)
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_infer_request(body: Any, limits: RequestLimits = DEFAULT_LIMITS) -> InferRequest:
    """Check the structure of a V2 infer request body.

    Args:
        body: The parsed JSON body: ``{"inputs": [{"name", "shape", "datatype", "data"}...],
            "id"?, "parameters"?, "outputs"?: [{"name"}...]}``.
        limits: The element and depth limits (the body size is the server's to check).

    Returns:
        The checked request.

    Raises:
        RequestTooLarge: The shapes hold more than ``limits.max_elements`` elements in all, or a
            tensor is deeper than ``limits.max_depth``.
        DataError: The body is not an object, ``inputs`` is missing or empty, an input lacks a
            field or has a bad shape or datatype, ``data`` does not fill ``shape``, two inputs
            share a name, or ``outputs`` names an unknown output.
    """
    if not isinstance(body, Mapping):
        raise DataError(f"infer request body must be a JSON object, got {type(body).__name__}")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise DataError("infer request needs a non-empty 'inputs' list of tensors")
    inputs: list[InputTensor] = []
    budget = limits.max_elements
    for i, raw in enumerate(raw_inputs):
        tensor = _parse_tensor(raw, i, limits, budget)
        budget -= len(tensor.data)
        inputs.append(tensor)
    seen: set[str] = set()
    for tensor in inputs:
        if tensor.name in seen:
            raise DataError(f"input {tensor.name!r} appears more than once in 'inputs'")
        seen.add(tensor.name)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise DataError(f"infer request 'id' must be a string, got {_short(request_id)}")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise DataError(
            f"infer request 'parameters' must be a JSON object, got {_short(parameters)}"
        )
    outputs = None
    if body.get("outputs") is not None:
        raw_outputs = body["outputs"]
        if not isinstance(raw_outputs, list):
            raise DataError(f"infer request 'outputs' must be a list, got {_short(raw_outputs)}")
        outputs = []
        for i, out in enumerate(raw_outputs):
            out_name = out.get("name") if isinstance(out, Mapping) else None
            if not isinstance(out_name, str) or out_name not in OUTPUT_NAMES:
                raise DataError(
                    f"outputs[{i}] names output {_short(out_name)}; available outputs: "
                    f"{list(OUTPUT_NAMES)}"
                )
            outputs.append(out_name)
    return InferRequest(inputs=inputs, id=request_id, outputs=outputs, parameters=dict(parameters))


# --------------------------------------------------------------------------- values


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
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise DataError(
                    f"{where} is {_short(value)}, not a number: feature {feature!r} is numeric"
                ) from None
            return _finite(number, where, datatype)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _finite(value, where, datatype)
        raise DataError(f"{where} is {_short(value)}, not a number: feature {feature!r} is numeric")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where} is {_short(value)}, not a number (datatype {datatype})")
    if datatype.startswith(("INT", "UINT")):
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
    return _finite(value, where, datatype)


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


# --------------------------------------------------------------------------- outputs


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


# --------------------------------------------------------------------------- metadata


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
