"""Feature specification and encoding: refit, not the model, turns tables into matrices.

The :class:`FeatureSpec` records which columns are numeric, which are categorical (with their
sorted vocabulary, one-hot encoded; unseen values encode as all zeros), the task
(classification or regression) and, for classification, the sorted list of target classes.
It is stored beside the model in ``model.json`` so that the same encoding is applied at
training, evaluation and serving time.

Limits. A categorical column with more than ``max_categories`` distinct values (default
:data:`DEFAULT_MAX_CATEGORIES`) keeps its ``max_categories`` most frequent values (ties broken
by value) and gets one extra ``(other)`` column that every other value, seen or unseen, encodes
into; the encoded width is therefore at most ``max_categories + 1`` per categorical column,
whatever the data. A string column whose values are nearly all numbers (at least
:data:`NUMERIC_LIKE_SHARE` of them) but holds a few that are not (``"?"``, ``"unknown"``) is
refused, naming the column and sample bad values: it is a numeric column with stray strings,
not a categorical one, and one-hot encoding it would be silently wrong. A feature column with no
values at all (every row null or NaN) is refused too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import TrainingError

__all__ = [
    "DEFAULT_MAX_CATEGORIES",
    "NUMERIC_LIKE_SHARE",
    "OTHER_CATEGORY",
    "TASKS",
    "FeatureSpec",
    "encode",
    "encode_target",
    "infer_feature_spec",
    "infer_task",
]

#: The learning tasks refit trains for.
TASKS = ("classification", "regression")

#: Most distinct values a categorical column keeps as their own one-hot columns (see the module
#: docstring); the rest share one ``(other)`` column.
DEFAULT_MAX_CATEGORIES = 100

#: Largest ``max_categories`` accepted (the encoded matrix is dense float32).
MAX_CATEGORIES_LIMIT = 10_000

#: Name of the shared column of a capped categorical feature (``column=(other)``).
OTHER_CATEGORY = "(other)"

#: Share of numeric-looking values from which a string column counts as numeric with stray
#: strings (and is refused) rather than categorical.
NUMERIC_LIKE_SHARE = 0.9

_NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass
class FeatureSpec:
    """How a table is turned into a feature matrix and a target vector.

    Attributes:
        target: Name of the target (label) column.
        numeric: Numeric feature columns, in encoding order. Missing values stay NaN.
        categorical: Categorical feature columns mapped to their sorted vocabulary, in encoding
            order (after the numeric columns). Each value becomes one one-hot column.
        classes: Sorted target classes; a label is encoded as its index in this list. Empty
            for regression.
        task: ``"classification"`` or ``"regression"``.
        other: Categorical columns that were capped at ``max_categories``: each has one more
            encoded column, ``(other)``, after its vocabulary, that every value outside the
            vocabulary encodes into (for the other columns such a value encodes as all zeros).
    """

    target: str
    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    classes: list = field(default_factory=list)
    task: str = "classification"
    other: list[str] = field(default_factory=list)

    def block_width(self, column: str) -> int:
        """Encoded width of a categorical column (its vocabulary, plus one if capped)."""
        return len(self.categorical[column]) + (column in self.other)

    @property
    def feature_columns(self) -> list[str]:
        """Input columns the encoding reads, numeric first then categorical."""
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded matrix columns (``column=value`` for one-hot columns)."""
        names = list(self.numeric)
        for column, vocabulary in self.categorical.items():
            names.extend(f"{column}={value}" for value in vocabulary)
            if column in self.other:
                names.append(f"{column}={OTHER_CATEGORY}")
        return names

    @property
    def n_features(self) -> int:
        """Width of the encoded matrix."""
        return len(self.numeric) + sum(self.block_width(c) for c in self.categorical)

    @property
    def n_classes(self) -> int:
        """Number of target classes (0 for regression)."""
        return len(self.classes)

    @property
    def is_regression(self) -> bool:
        """True for a regression target."""
        return self.task == "regression"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (``categorical_other`` only when a column was capped)."""
        out = {
            "target": self.target,
            "numeric": list(self.numeric),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            # JSON writers may sort the mapping's keys (model.json does): the encoding order
            # of the one-hot blocks is kept here, as a list.
            "categorical_order": list(self.categorical),
            "classes": list(self.classes),
            "task": self.task,
        }
        if self.other:
            out["categorical_other"] = list(self.other)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Build a spec from :meth:`to_dict` output.

        The categorical columns are encoded in ``categorical_order``; specs written before that
        field existed are read in the mapping's order.

        Raises:
            TrainingError: If a field is missing or unknown, or ``categorical_order`` does not
                list exactly the categorical columns.
        """
        allowed = {
            "target",
            "numeric",
            "categorical",
            "categorical_order",
            "categorical_other",
            "classes",
            "task",
        }
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise TrainingError(
                f"feature spec: unknown field(s) {unknown}; allowed: {sorted(allowed)}"
            )
        if "target" not in data:
            raise TrainingError("feature spec: field 'target' is missing")
        task = str(data.get("task", "classification"))
        if task not in TASKS:
            raise TrainingError(f"feature spec: task {task!r} is not one of {list(TASKS)}")
        categorical = {
            str(k): [str(v) for v in vs] for k, vs in data.get("categorical", {}).items()
        }
        order = [str(c) for c in data.get("categorical_order", categorical)]
        if sorted(order) != sorted(categorical):
            raise TrainingError(
                f"feature spec: categorical_order {order} does not list the categorical "
                f"columns {sorted(categorical)}"
            )
        other = [str(c) for c in data.get("categorical_other", [])]
        stray = sorted(set(other) - set(categorical))
        if stray:
            raise TrainingError(
                f"feature spec: categorical_other names {stray}, which are not categorical "
                f"columns {sorted(categorical)}"
            )
        return cls(
            target=str(data["target"]),
            numeric=[str(c) for c in data.get("numeric", [])],
            categorical={name: categorical[name] for name in order},
            classes=list(data.get("classes", [])),
            task=task,
            other=[name for name in order if name in other],
        )


def _is_numeric_type(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_decimal(dtype)
    )


def _is_categorical_type(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_dictionary(dtype)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(dtype))
    )


def _column(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise TrainingError(
            f"{what} column {name!r} is missing from the table (columns: {table.column_names})"
        )
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _check_labels(column: pa.ChunkedArray, target: str, task: str = "classification") -> None:
    n_null = column.null_count
    if n_null:
        raise TrainingError(f"target column {target!r} has {n_null} null label(s)")
    if pa.types.is_floating(column.type):
        n_nan = pc.sum(pc.cast(pc.is_nan(column), pa.int64())).as_py() or 0
        if n_nan:
            raise TrainingError(f"target column {target!r} has {n_nan} NaN label(s)")
        values = column.to_numpy()
        if np.isinf(values).any():
            raise TrainingError(f"target column {target!r} has infinite label(s)")
        if task == "classification" and not np.all(values == np.round(values)):
            raise TrainingError(
                f"target column {target!r} has non-integral float labels: a classification "
                "target needs integer or string classes (use task='regression' for a "
                "continuous target)"
            )
    if task == "regression" and not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
    ):
        raise TrainingError(
            f"target column {target!r} has type {column.type}; a regression target must be numeric"
        )


def infer_task(table: pa.Table, target: str) -> str:
    """Guess the task from the target column: non-integral floats mean regression.

    Integer, boolean and string targets are classification targets; a float target whose
    values are all integral (``0.0``/``1.0``) is too. Pass the task explicitly to train a
    regressor on an integer target.

    Args:
        table: The training table.
        target: Name of the target column.

    Returns:
        ``"classification"`` or ``"regression"``.

    Raises:
        TrainingError: If the target column is missing.
    """
    column = _column(table, target, "target")
    if not pa.types.is_floating(column.type) or column.null_count:
        return "classification"
    values = column.to_numpy()
    finite = values[np.isfinite(values)]
    return "classification" if np.all(finite == np.round(finite)) else "regression"


def check_max_categories(value: Any) -> int:
    """Check a ``max_categories`` value.

    Args:
        value: The value given.

    Returns:
        It, as an int.

    Raises:
        TrainingError: Not an integer in ``[1, MAX_CATEGORIES_LIMIT]``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingError(f"max_categories must be an integer, got {value!r}")
    if not 1 <= value <= MAX_CATEGORIES_LIMIT:
        raise TrainingError(
            f"max_categories must be between 1 and {MAX_CATEGORIES_LIMIT}, got {value}"
        )
    return value


def numeric_like_strings(column: pa.ChunkedArray | pa.Array) -> tuple[int, int, list[str]] | None:
    """Tell whether a string column is a numeric column holding a few stray strings.

    Args:
        column: A string column.

    Returns:
        ``(non-numeric values, non-missing values, up to 5 distinct non-numeric samples)`` when
        at least :data:`NUMERIC_LIKE_SHARE` of the non-missing values parse as numbers and at
        least one does not (samples cut to 40 characters); None otherwise (a categorical
        column, or one made only of numbers).
    """
    strings = column.cast(pa.string())
    present = strings.length() - strings.null_count
    if present == 0:
        return None
    numeric = pc.match_substring_regex(strings, _NUMBER_PATTERN)
    n_numeric = pc.sum(pc.cast(numeric, pa.int64())).as_py() or 0
    bad = present - n_numeric
    if bad == 0 or n_numeric < NUMERIC_LIKE_SHARE * present:
        return None
    mask = pc.fill_null(pc.invert(numeric), False)
    samples = pc.unique(pc.filter(strings, mask)).to_pylist()
    return bad, present, [s[:40] for s in sorted(samples)[:5]]  # bounded, for messages


def _all_missing(column: pa.ChunkedArray) -> bool:
    if column.null_count == len(column):
        return True
    if pa.types.is_floating(column.type):
        valid = pc.sum(pc.cast(pc.invert(pc.is_nan(column)), pa.int64())).as_py() or 0
        return valid == 0
    return False


def _vocabulary(column: pa.ChunkedArray, max_categories: int) -> tuple[list[str], bool]:
    """Sorted vocabulary of a categorical column, capped at its most frequent values."""
    strings = column.cast(pa.string())
    counted = pc.value_counts(strings)
    values = counted.field("values")
    counts = counted.field("counts")
    keep = pc.is_valid(values)
    values, counts = pc.filter(values, keep), pc.filter(counts, keep)
    if len(values) <= max_categories:
        return sorted(values.to_pylist()), False
    order = pc.sort_indices(
        pa.table({"v": values, "c": counts}),
        sort_keys=[("c", "descending"), ("v", "ascending")],
    )
    top = pc.take(values, order[:max_categories])
    return sorted(top.to_pylist()), True


def _target_classes(table: pa.Table, target: str, task: str) -> list[Any]:
    """Check the label column; return its sorted classes (regression: none).

    Raises:
        TrainingError: It is missing, has missing labels or an unsupported type, or is
            constant (a single class, or one value).
    """
    labels = _column(table, target, "target")
    _check_labels(labels, target, task)
    if not (_is_numeric_type(labels.type) or _is_categorical_type(labels.type)):
        raise TrainingError(
            f"target column {target!r} has unsupported type {labels.type}; "
            "use integer, boolean or string classes"
        )
    if task != "classification":
        lo, hi = pc.min_max(labels).values()
        if lo.as_py() == hi.as_py():
            raise TrainingError(
                f"target column {target!r} is constant (every value is {lo.as_py()!r}): "
                "there is nothing to learn"
            )
        return []
    classes = sorted(pc.unique(labels).to_pylist())
    if len(classes) < 2:
        raise TrainingError(
            f"target column {target!r} is constant (single class {classes!r}): "
            "a classifier needs at least two classes"
        )
    return classes


def _feature_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A feature column that is numeric or categorical and has values, checked.

    Raises:
        TrainingError: Its type is unsupported, every value is missing, or it is a string
            column of numbers with a few non-numbers.
    """
    column = _column(table, name, "feature")
    numeric = _is_numeric_type(column.type)
    if not numeric and not _is_categorical_type(column.type):
        raise TrainingError(
            f"feature column {name!r} has unsupported type {column.type}; "
            "pass it in exclude= or cast it to a numeric or string column"
        )
    if _all_missing(column):
        raise TrainingError(
            f"feature column {name!r} has no values (all {table.num_rows} rows are missing); "
            "pass it in exclude= or fill it"
        )
    stray = None if numeric else numeric_like_strings(column)
    if stray is not None:
        bad, present, samples = stray
        raise TrainingError(
            f"feature column {name!r} looks numeric ({present - bad} of {present} values "
            f"are numbers) but holds {bad} non-numeric value(s), e.g. {samples}: clean "
            "them (or turn them into missing values) before training, or pass the "
            "column in exclude="
        )
    return column


def infer_feature_spec(
    table: pa.Table,
    target: str,
    exclude: Iterable[str] = (),
    task: str = "classification",
    *,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> FeatureSpec:
    """Infer the feature spec of a training table.

    Numeric (integer, float, boolean, decimal) columns become numeric features; string and
    dictionary columns become one-hot categorical features with their sorted vocabulary,
    capped at the ``max_categories`` most frequent values plus one ``(other)`` column.

    Args:
        table: The training table.
        target: Name of the label column.
        exclude: Columns that are not features (ids, timestamps).
        task: ``"classification"`` or ``"regression"``.
        max_categories: Most values a categorical column keeps as their own one-hot columns.

    Returns:
        The inferred :class:`FeatureSpec`.

    Raises:
        TrainingError: If the task is unknown; if the target column is missing, has null/NaN
            labels, a single class or (regression) a constant value; if an excluded column does
            not exist; if a column has an unsupported type, has no values at all, or is a
            numeric column holding a few strings; if ``max_categories`` is out of range; or if
            no feature columns are left.
    """
    if task not in TASKS:
        raise TrainingError(f"task {task!r} is unknown; use one of {list(TASKS)}")
    max_categories = check_max_categories(max_categories)
    exclude = list(exclude)
    missing_excluded = [c for c in exclude if c not in table.column_names]
    if missing_excluded:
        raise TrainingError(
            f"exclude names column(s) {missing_excluded} that are not in the table "
            f"(columns: {table.column_names})"
        )
    if table.num_rows == 0:
        raise TrainingError("training table has no rows")
    classes = _target_classes(table, target, task)
    numeric: list[str] = []
    categorical: dict[str, list[str]] = {}
    other: list[str] = []
    skip = {target, *exclude}
    for name in table.column_names:
        if name in skip:
            continue
        column = _feature_column(table, name)
        if _is_numeric_type(column.type):
            numeric.append(name)
        else:
            categorical[name], capped = _vocabulary(column, max_categories)
            if capped:
                other.append(name)
    if not numeric and not categorical:
        raise TrainingError(
            f"no feature columns: the table has only the target {target!r} and excluded "
            f"columns {sorted(exclude)}"
        )
    return FeatureSpec(
        target=target,
        numeric=numeric,
        categorical=categorical,
        classes=classes,
        task=task,
        other=other,
    )


def encode(table: pa.Table, spec: FeatureSpec) -> np.ndarray:
    """Encode the feature columns of a table as a float32 matrix.

    Numeric columns are copied as is (missing values become NaN); categorical columns are
    one-hot encoded in the spec's vocabulary order, and a missing value encodes as all zeros,
    as does an unseen one, except in a capped column, where it goes to the ``(other)`` column.

    Args:
        table: Table holding at least the spec's feature columns.
        spec: The feature spec.

    Returns:
        Array of shape ``(table.num_rows, spec.n_features)``, dtype float32.

    Raises:
        TrainingError: If a feature column is missing or has an incompatible type.
    """
    n = table.num_rows
    out = np.zeros((n, spec.n_features), dtype=np.float32)
    for j, name in enumerate(spec.numeric):
        column = _column(table, name, "feature")
        if not _is_numeric_type(column.type):
            raise TrainingError(
                f"feature column {name!r} was numeric at training time but has type {column.type}"
            )
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        out[:, j] = np.asarray(values, dtype=np.float64)
    offset = len(spec.numeric)
    for name, vocabulary in spec.categorical.items():
        column = _column(table, name, "feature")
        try:
            strings = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TrainingError(
                f"feature column {name!r} cannot be read as categorical ({column.type}): {exc}"
            ) from exc
        if vocabulary:
            index = pc.index_in(strings, value_set=pa.array(vocabulary, type=pa.string()))
            idx = index.to_numpy(zero_copy_only=False)
            idx = _fill_missing_index(idx)
            rows = np.nonzero(idx >= 0)[0]
            out[rows, offset + idx[rows]] = 1.0
        else:
            idx = np.full(n, -1, dtype=np.int64)
        if name in spec.other:
            present = np.asarray(pc.is_valid(strings).to_numpy(zero_copy_only=False), dtype=bool)
            out[np.nonzero(present & (idx < 0))[0], offset + len(vocabulary)] = 1.0
        offset += spec.block_width(name)
    return out


def _fill_missing_index(values: np.ndarray) -> np.ndarray:
    # index_in gives null for values outside the vocabulary; numpy sees NaN or None there.
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), -1, values).astype(np.int64)
    if values.dtype == object:
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    return values.astype(np.int64)


def encode_target(table: pa.Table, spec: FeatureSpec) -> np.ndarray:
    """Encode the target column as class indices into ``spec.classes``.

    Args:
        table: Table holding the target column.
        spec: The feature spec.

    For a regression spec the target values are returned as float64.

    Returns:
        int64 array of class indices (float64 values for regression).

    Raises:
        TrainingError: If the target column is missing, has null/NaN labels, or holds labels
            that are not among the spec's classes.
    """
    column = _column(table, spec.target, "target")
    _check_labels(column, spec.target, spec.task)
    if spec.is_regression:
        return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    lookup = {_key(c): i for i, c in enumerate(spec.classes)}
    # Map each distinct label once (np.unique), not each row: labels are few, rows many.
    distinct = pc.unique(column)
    codes = np.array([lookup.get(_key(v), -1) for v in distinct.to_pylist()], dtype=np.int64)
    positions = pc.index_in(column, value_set=distinct).to_numpy(zero_copy_only=False)
    out = codes[np.asarray(positions, dtype=np.int64)] if len(codes) else np.empty(0, np.int64)
    unseen = {v for v, c in zip(distinct.to_pylist(), codes, strict=True) if c < 0}
    if unseen:
        shown = sorted(map(str, unseen))[:10]
        raise TrainingError(
            f"target column {spec.target!r} has label(s) {shown} not among the model's classes "
            f"{list(spec.classes)}"
        )
    return out


def _key(value: Any) -> Any:
    # Labels compare by value across int and float (1 == 1.0, as after a JSON round trip);
    # bools and strings stay distinct from numbers.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", float(value))
    return ("str", str(value))


def classes_array(spec: FeatureSpec, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map class indices back to class labels.

    Args:
        spec: The feature spec.
        indices: Class indices.

    Returns:
        Array of labels (dtype chosen by numpy from ``spec.classes``).
    """
    return np.asarray(spec.classes)[np.asarray(indices, dtype=np.int64)]
