"""KServe V2 (Open Inference Protocol) requests: decode a body and check its structure.

Everything here is pure: request bytes or a parsed JSON body in, a checked `InferRequest` out.
Bad requests raise `refit.errors.DataError` with a message that names the input tensor at
fault; the server answers those with 400 and ``{"error": ...}``. Requests are bounded by
`RequestLimits` (body bytes, elements, nesting depth); a request over a limit raises
`RequestTooLarge`, which the server answers with 413.

The request's tensors become the model's feature table in `refit.serving.tables`; the answers
and the model metadata are built in `refit.serving.outputs`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from refit.errors import DataError

__all__ = [
    "DATATYPES",
    "NUMERIC_DATATYPES",
    "OUTPUT_NAMES",
    "InferRequest",
    "InputTensor",
    "RequestLimits",
    "RequestTooLarge",
    "decode_json",
    "parse_infer_request",
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
    inputs = _parse_inputs(raw_inputs, limits)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise DataError(f"infer request 'id' must be a string, got {_short(request_id)}")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise DataError(
            f"infer request 'parameters' must be a JSON object, got {_short(parameters)}"
        )
    outputs = None if body.get("outputs") is None else _parse_outputs(body["outputs"])
    return InferRequest(inputs=inputs, id=request_id, outputs=outputs, parameters=dict(parameters))


def _parse_inputs(raw_inputs: list[Any], limits: RequestLimits) -> list[InputTensor]:
    """The checked input tensors, within the element budget, their names unique."""
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
    return inputs


def _parse_outputs(raw_outputs: Any) -> list[str]:
    """The names of the requested outputs, each one of `OUTPUT_NAMES`."""
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
    return outputs
