"""Distributed XGBoost: the one feature encoding every worker agrees on.

Each worker summarises its shard (:func:`local_summary`: column kinds, classes, the target's
range, categorical value counts); the summaries are exchanged and every worker merges them into
the same :class:`refit.training.features.FeatureSpec` (:func:`merge_summaries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import TrainingError

if TYPE_CHECKING:  # pragma: no cover
    from refit.training.distributed_plan import DistributedConfig

__all__ = ["MAX_REPORTED_VALUES", "local_summary", "merge_summaries"]

#: Most values of one categorical column a worker reports to the others (its most frequent).
MAX_REPORTED_VALUES = 10_000


def local_summary(table: pa.Table, config: DistributedConfig) -> dict[str, Any]:
    """What a worker tells the others about its shard: types, classes, categorical counts."""
    from refit.training import features as feats

    target = config.label_column
    if target not in table.column_names:
        raise TrainingError(
            f"target column {target!r} is not in the snapshot (columns: {table.column_names})"
        )
    if config.time_column and config.time_column not in table.column_names:
        raise TrainingError(
            f"time_column {config.time_column!r} is not in the snapshot "
            f"(columns: {table.column_names})"
        )
    labels = table.column(target)
    task = config.task
    if task == "auto":
        task = feats.infer_task(table, target) if table.num_rows else "classification"
    feats._check_labels(labels, target, task)  # private helper, same package
    counts: dict[str, list[list[Any]]] = {}
    kinds: dict[str, str] = {}
    for name in table.column_names:
        if name in (target, config.time_column):
            continue
        column = table.column(name)
        if feats._is_numeric_type(column.type):
            kinds[name] = "numeric"
        elif feats._is_categorical_type(column.type):
            kinds[name] = "categorical"
            counted = pc.value_counts(column.cast(pa.string()))
            pairs = [
                [v, c]
                for v, c in zip(
                    counted.field("values").to_pylist(),
                    counted.field("counts").to_pylist(),
                    strict=True,
                )
                if v is not None
            ]
            pairs.sort(key=lambda p: (-p[1], p[0]))
            counts[name] = pairs[:MAX_REPORTED_VALUES]
        else:
            raise TrainingError(
                f"feature column {name!r} has unsupported type {column.type}; cast it to a "
                "numeric or string column"
            )
    classes = sorted(pc.unique(labels).to_pylist()) if task == "classification" else []
    lo_hi = [None, None]
    if task == "regression" and table.num_rows:
        lo, hi = pc.min_max(labels).values()
        lo_hi = [lo.as_py(), hi.as_py()]
    return {
        "task": task,
        "columns": list(table.column_names),
        "kinds": kinds,
        "classes": classes,
        "counts": counts,
        "range": lo_hi,
    }


def merge_summaries(
    summaries: Sequence[Mapping[str, Any]],
    target: str,
    *,
    task: str = "auto",
    max_categories: int | None = None,
) -> Any:
    """Merge the workers' shard summaries into the one feature spec all of them encode with.

    Classes and categorical vocabularies are the union over the shards; a categorical column
    with more than ``max_categories`` values keeps the most frequent ones (summed counts; a
    worker reports its ``MAX_REPORTED_VALUES`` most frequent) plus ``(other)``.

    Returns:
        A :class:`refit.training.features.FeatureSpec`.

    Raises:
        TrainingError: The shards disagree on columns, or the merged target has a single
            class (or is constant).
    """
    from refit.training.features import DEFAULT_MAX_CATEGORIES, FeatureSpec

    cap = DEFAULT_MAX_CATEGORIES if max_categories is None else max_categories
    first = summaries[0]
    for rank, summary in enumerate(summaries):
        if summary["columns"] != first["columns"] or summary["kinds"] != first["kinds"]:
            raise TrainingError(f"worker {rank}'s shard has other columns or types than worker 0's")
    chosen = task
    if task == "auto":
        chosen = (
            "regression" if any(s["task"] == "regression" for s in summaries) else "classification"
        )
    classes = _merged_classes(summaries, target) if chosen == "classification" else []
    if chosen != "classification":
        _check_not_constant(summaries, target)
    numeric = [name for name, kind in first["kinds"].items() if kind == "numeric"]
    categorical: dict[str, list[str]] = {}
    other: list[str] = []
    for name, kind in first["kinds"].items():
        if kind == "categorical":
            categorical[name], capped = _merged_vocabulary(summaries, name, cap)
            if capped:
                other.append(name)
    if not numeric and not categorical:
        raise TrainingError(f"no feature columns besides the target {target!r}")
    return FeatureSpec(
        target=target,
        numeric=numeric,
        categorical=categorical,
        classes=classes,
        task=chosen,
        other=other,
    )


def _merged_classes(summaries: Sequence[Mapping[str, Any]], target: str) -> list[Any]:
    """The union of the shards' classes; a classifier needs two at least."""
    classes = sorted({c for s in summaries for c in s["classes"]})
    if len(classes) < 2:
        raise TrainingError(
            f"target column {target!r} is constant over all shards (single class "
            f"{classes!r}): a classifier needs at least two classes"
        )
    return classes


def _check_not_constant(summaries: Sequence[Mapping[str, Any]], target: str) -> None:
    """A regression target must vary over the shards' (min, max) ranges."""
    values = [v for s in summaries for v in s["range"] if v is not None]
    if values and min(values) == max(values):
        raise TrainingError(f"target column {target!r} is constant over all shards")


def _merged_vocabulary(
    summaries: Sequence[Mapping[str, Any]], name: str, cap: int
) -> tuple[list[str], bool]:
    """A categorical column's values over all shards, the ``cap`` most frequent when more.

    Returns:
        The sorted vocabulary, and whether it was capped (the rest become ``(other)``).
    """
    totals: dict[str, int] = {}
    for summary in summaries:
        for value, count in summary["counts"][name]:
            totals[value] = totals.get(value, 0) + int(count)
    if not totals:
        raise TrainingError(f"feature column {name!r} has no values in any shard")
    if len(totals) > cap:
        top = sorted(totals.items(), key=lambda p: (-p[1], p[0]))[:cap]
        return sorted(v for v, _ in top), True
    return sorted(totals), False
