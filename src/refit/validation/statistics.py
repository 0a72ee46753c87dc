"""Dataset statistics in TFDV's format (``DatasetFeatureStatisticsList``), computed natively.

Vectorised with pyarrow.compute and numpy (no per-row Python). Conventions, matching TFDV where
it has one:

* integers and booleans are ``INT`` (booleans as 0/1); floats and decimals are ``FLOAT``;
  strings are ``STRING``; binaries are ``BYTES``; dates, times and timestamps are ``INT``
  (their integer representation); nested types are ``STRUCT`` with common statistics only.
* null and NaN both count as missing.
* the Arrow type of each column is kept as a custom statistic named ``arrow_type``, so checks
  can tell booleans, timestamps and all-null (``null``-typed) columns apart.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow_metadata.proto.v0 import statistics_pb2

from refit.errors import DataError

FeatureType = statistics_pb2.FeatureNameStatistics.Type

ARROW_TYPE_STAT = "arrow_type"
NUM_TOP_VALUES = 20
NUM_RANK_HISTOGRAM_BUCKETS = 1000
NUM_HISTOGRAM_BUCKETS = 10
NUM_QUANTILES_BUCKETS = 10


def arrow_type_of(feature: statistics_pb2.FeatureNameStatistics) -> str:
    """Return the Arrow type recorded for a feature ("" if none).

    Args:
        feature: Feature statistics.

    Returns:
        The ``arrow_type`` custom statistic.
    """
    for custom in feature.custom_stats:
        if custom.name == ARROW_TYPE_STAT:
            return custom.str
    return ""


def feature_name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    """Return a feature's name (its path, or the legacy ``name`` field).

    Args:
        feature: Feature statistics.

    Returns:
        The name; path steps joined with ``.``.
    """
    if feature.path.step:
        return ".".join(feature.path.step)
    return feature.name


def is_temporal_type(arrow_type: str) -> bool:
    """Tell whether a recorded Arrow type is a date, time, timestamp or duration.

    Args:
        arrow_type: String form of an Arrow type.

    Returns:
        True for temporal types.
    """
    return arrow_type.startswith(("timestamp", "date", "time", "duration"))


def _common(stats: statistics_pb2.CommonStatistics, n_present: int, n_missing: int) -> None:
    stats.num_non_missing = n_present
    stats.num_missing = n_missing
    if n_present:
        stats.min_num_values = 1
        stats.max_num_values = 1
        stats.avg_num_values = 1.0
        stats.tot_num_values = n_present


def _numeric(
    feature: statistics_pb2.FeatureNameStatistics, values: np.ndarray, n_rows: int
) -> None:
    num = feature.num_stats
    n_present = int(values.size)
    _common(num.common_stats, n_present, n_rows - n_present)
    if not n_present:
        return
    num.mean = float(values.mean())
    num.std_dev = float(values.std())
    num.min = float(values.min())
    num.max = float(values.max())
    num.median = float(np.median(values))
    num.num_zeros = int(np.count_nonzero(values == 0))

    counts, edges = np.histogram(values, bins=NUM_HISTOGRAM_BUCKETS)
    hist = num.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for i, count in enumerate(counts):
        hist.buckets.add(
            low_value=float(edges[i]), high_value=float(edges[i + 1]), sample_count=float(count)
        )

    qs = np.quantile(values, np.linspace(0.0, 1.0, NUM_QUANTILES_BUCKETS + 1))
    quant = num.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
    per_bucket = n_present / NUM_QUANTILES_BUCKETS
    for i in range(NUM_QUANTILES_BUCKETS):
        quant.buckets.add(
            low_value=float(qs[i]), high_value=float(qs[i + 1]), sample_count=per_bucket
        )


def _strings(
    feature: statistics_pb2.FeatureNameStatistics, column: pa.ChunkedArray, n_rows: int
) -> None:
    string = feature.string_stats
    present = pc.drop_null(column)
    n_present = len(present)
    _common(string.common_stats, n_present, n_rows - n_present)
    if not n_present:
        return
    counts = pc.value_counts(present).flatten()
    freqs = counts[1].to_numpy()
    string.unique = len(freqs)
    # by count, descending; ties keep first-seen order
    order = np.argsort(-freqs, kind="stable")[:NUM_RANK_HISTOGRAM_BUCKETS]
    labels = counts[0].take(pa.array(order)).to_pylist()
    freqs = freqs[order]
    lengths = (
        pc.binary_length(present)
        if pa.types.is_binary(present.type) or pa.types.is_large_binary(present.type)
        else pc.utf8_length(present)
    )
    string.avg_length = float(pc.mean(lengths).as_py() or 0.0)
    for rank, (label, freq) in enumerate(zip(labels, freqs.tolist(), strict=True)):
        text = label.decode("utf-8", "backslashreplace") if isinstance(label, bytes) else label
        if rank < NUM_TOP_VALUES:
            string.top_values.add(value=text, frequency=float(freq))
        string.rank_histogram.buckets.add(
            low_rank=rank, high_rank=rank, label=text, sample_count=float(freq)
        )


def _numeric_values(column: pa.ChunkedArray) -> np.ndarray:
    present = pc.drop_null(column)
    if pa.types.is_boolean(present.type):
        present = present.cast(pa.int8())
    elif pa.types.is_decimal(present.type):
        present = present.cast(pa.float64())
    values = present.to_numpy() if len(present) else np.empty(0)
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def _feature(
    dataset: statistics_pb2.DatasetFeatureStatistics, name: str, column: pa.ChunkedArray
) -> None:
    feature = dataset.features.add()
    feature.path.step.append(name)
    arrow_type = column.type
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
        column = column.cast(arrow_type)
    feature.custom_stats.add(name=ARROW_TYPE_STAT, str=str(arrow_type))
    n_rows = len(column)
    t = pa.types
    if t.is_integer(arrow_type) or t.is_boolean(arrow_type):
        feature.type = FeatureType.INT
        _numeric(feature, _numeric_values(column), n_rows)
    elif t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        feature.type = FeatureType.FLOAT
        _numeric(feature, _numeric_values(column), n_rows)
    elif t.is_temporal(arrow_type):
        feature.type = FeatureType.INT
        width = pa.int32() if arrow_type.bit_width == 32 else pa.int64()
        _numeric(feature, _numeric_values(column.cast(width)), n_rows)
    elif t.is_string(arrow_type) or t.is_large_string(arrow_type):
        feature.type = FeatureType.STRING
        _strings(feature, column, n_rows)
    elif t.is_null(arrow_type):
        feature.type = FeatureType.STRING
        _strings(feature, column, n_rows)
    elif t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        feature.type = FeatureType.BYTES
        _strings(feature, column, n_rows)
    else:
        feature.type = FeatureType.STRUCT
        n_missing = column.null_count
        _common(feature.struct_stats.common_stats, n_rows - n_missing, n_missing)


def compute_statistics(
    table: pa.Table, name: str = "data"
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Compute per-feature statistics of a table in TFDV's format.

    Args:
        table: The data.
        name: Dataset name recorded in the statistics.

    Returns:
        A list holding one ``DatasetFeatureStatistics`` (num_examples; per feature
        ``num_stats`` or ``string_stats`` with common statistics, histograms, top values).

    Raises:
        DataError: ``table`` is not a pyarrow Table or has duplicate column names.
    """
    if not isinstance(table, pa.Table):
        raise DataError(f"statistics need a pyarrow Table, got {type(table).__name__}")
    names = table.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"table {name!r} has duplicate column names: {duplicates}")
    result = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = result.datasets.add(name=name, num_examples=table.num_rows)
    for column_name, column in zip(names, table.columns, strict=True):
        _feature(dataset, column_name, column)
    return result


def feature_stats(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
) -> dict[str, statistics_pb2.FeatureNameStatistics]:
    """Index the first dataset's features by name.

    Args:
        stats: Statistics list (the first dataset is used).

    Returns:
        Feature name -> feature statistics (empty when there is no dataset).
    """
    if not stats.datasets:
        return {}
    return {feature_name(f): f for f in stats.datasets[0].features}


def common_stats(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    """Return the common statistics of a feature, whatever its kind.

    Args:
        feature: Feature statistics.

    Returns:
        Its ``CommonStatistics``.
    """
    kind = feature.WhichOneof("stats")
    if kind == "num_stats":
        return feature.num_stats.common_stats
    if kind == "string_stats":
        return feature.string_stats.common_stats
    if kind == "bytes_stats":
        return feature.bytes_stats.common_stats
    if kind == "struct_stats":
        return feature.struct_stats.common_stats
    return statistics_pb2.CommonStatistics()
