"""Dataset statistics in TFDV's format (``DatasetFeatureStatisticsList``), computed natively.

Vectorised with pyarrow.compute and numpy (no per-row Python). Conventions, matching TFDV where
it has one:

* integers and booleans are ``INT`` (booleans as 0/1); floats and decimals are ``FLOAT``;
  strings are ``STRING``; binaries are ``BYTES``; dates, times and timestamps are ``INT``
  (their integer representation); nested types are ``STRUCT`` with common statistics only.
* null and NaN both count as missing.
* the Arrow type of each column is kept as a custom statistic named ``arrow_type``, so checks
  can tell booleans, timestamps and all-null (``null``-typed) columns apart.
* quantiles, median and the equal-width histogram are exact: the values numpy's ``quantile``
  (linear), ``median`` and ``histogram`` give, bit for bit, where TFDV's come from a sketch.

Speed (1M rows x 25 columns, ``benchmarks/tfdv_vs_native.py``): per numeric column a handful
of memory-bound passes and no sort (:func:`_order_statistics` finds the exact order statistics
through a 16k-bin count and a partition of the few values in the bins that matter), one Arrow
hash pass (``value_counts``) per string column, reused work buffers, columns on a few threads,
and no pandas import (pyarrow's ``to_numpy`` would pull it in: values are read from buffers).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow_metadata.proto.v0 import statistics_pb2

from refit.errors import DataError

FeatureType = statistics_pb2.FeatureNameStatistics.Type

ARROW_TYPE_STAT = "arrow_type"
#: Custom statistic: how many present values of a numeric feature are +inf or -inf (recorded
#: only when some are). They count as present, set min/max to +-inf as TFDV does, and are left
#: out of the mean, deviation, quantiles and histograms.
INFINITE_STAT = "num_infinite"
NUM_TOP_VALUES = 20
NUM_RANK_HISTOGRAM_BUCKETS = 1000
NUM_HISTOGRAM_BUCKETS = 10
NUM_QUANTILES_BUCKETS = 10
# Columns summarised at once by default (also capped by pyarrow.cpu_count())
MAX_THREADS = 4
# Exact quantiles and histograms by binning (see _order_statistics)
_FINE_BINS = 16384
_MIN_BINNED_VALUES = 4096
_NUMPY_TYPES = {
    pa.int8(): "i1",
    pa.int16(): "i2",
    pa.int32(): "i4",
    pa.int64(): "i8",
    pa.uint8(): "u1",
    pa.uint16(): "u2",
    pa.uint32(): "u4",
    pa.uint64(): "u8",
    pa.float16(): "f2",
    pa.float32(): "f4",
    pa.float64(): "f8",
}


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


class _Scratch:
    """Work buffers reused from column to column (one set per thread).

    On a fresh allocation of a column-sized temporary, page faults and unmapping cost more than
    the arithmetic it holds (8 MB: ~10 ms against ~0.5 ms); these buffers are allocated once and
    grown when a longer column comes.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, key: str, n: int, dtype: type) -> np.ndarray:
        """Return a buffer of ``n`` items (contents undefined), one per ``key``."""
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < n:
            buffer = self._buffers[key] = np.empty(n, dtype=dtype)
        return buffer[:n]


def _interpolation(n: int, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks and weights of numpy's default ("linear") quantiles of ``n`` sorted values."""
    position = levels * (n - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    return lower, upper, position - lower


def _lerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``a + (b - a) * weight``, evaluated from the nearer end as ``numpy.quantile`` does."""
    diff = b - a
    return np.where(weight >= 0.5, b - diff * (1 - weight), a + diff * weight)


def _fine_bins(
    values: np.ndarray, low: float, scale: float, scratch: _Scratch | None = None
) -> np.ndarray:
    """Fine-bin index of each value, ``floor((value - low) * scale)``.

    With ``scale = _FINE_BINS / (high - low)`` the indexes run from 0 to ``_FINE_BINS`` (that
    last bin holds the maximum). Correctly rounded subtraction and multiplication are monotone,
    so ``a <= b`` implies ``bin(a) <= bin(b)``: every bin holds a contiguous run of the sorted
    values, and a value and an edge binned by this same function compare consistently with
    their bins. Two passes: the product is truncated straight into the integer output.
    """
    n = values.size
    shifted = np.subtract(values, low, out=scratch.get("work", n, np.float64) if scratch else None)
    bins = scratch.get("bins", n, np.intp) if scratch else np.empty(n, dtype=np.intp)
    np.multiply(shifted, scale, out=bins, casting="unsafe")  # >= 0: truncation is floor
    return bins


def _order_statistics(
    values: np.ndarray,
    low: float,
    high: float,
    ranks: np.ndarray,
    edges: np.ndarray,
    scratch: _Scratch,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact order statistics and edge counts of ``values`` in O(n), without sorting them.

    One pass bins the values into ``_FINE_BINS`` equal-width bins over ``[low, high]`` (see
    :func:`_fine_bins`) and counts them (``np.bincount``); the cumulative counts tell which bin
    holds each wanted rank and each edge. Only the values of those few bins are gathered
    (0.1-2.5% of them on the benchmark's normal, lognormal, uniform and exponential columns) and
    partitioned (``np.partition``) to read the exact values. A heavy tail or a lone outlier
    only makes the gathered part bigger (at worst all values: one ``np.partition``), never the
    answer approximate.

    Args:
        values: Present values (no NaN), at least ``_MIN_BINNED_VALUES`` of them.
        low: ``values.min()``.
        high: ``values.max()``.
        ranks: 0-based ranks in sorted order to return the values of.
        edges: Thresholds; for each, the number of values strictly below it is returned.
        scratch: Work buffers.

    Returns:
        ``(values at ranks, counts below edges)``, or None when the range cannot be binned
        (constant, infinite or subnormal width, too few values): use numpy's routines then.
    """
    width = high - low
    if values.size < _MIN_BINNED_VALUES or not (math.isfinite(width) and width > 0):
        return None
    scale = _FINE_BINS / width
    if not math.isfinite(scale):
        return None
    bins = _fine_bins(values, low, scale, scratch)
    counts = np.bincount(bins)
    cumulative = np.cumsum(counts)
    before = cumulative - counts
    rank_bins = np.searchsorted(cumulative, ranks, side="right")
    edge_bins = _fine_bins(edges, low, scale)
    wanted = np.zeros(counts.size, dtype=bool)
    wanted[rank_bins] = True
    wanted[edge_bins] = True
    # mode="clip": with out=, the default mode="raise" buffers (allocates) the result
    mask = np.take(wanted, bins, out=scratch.get("mask", values.size, np.bool_), mode="clip")
    subset = values[mask]
    kept = np.where(wanted, counts, 0)
    kept_before = np.cumsum(kept) - kept
    subset_ranks = kept_before[rank_bins] + (ranks - before[rank_bins])
    kth = sorted(set(subset_ranks.tolist()))  # np.unique's first call costs ~45 ms
    at_ranks = np.partition(subset, kth)[subset_ranks]
    subset_bins = _fine_bins(subset, low, scale)
    below = before[edge_bins] + np.array(
        [
            np.count_nonzero(subset[subset_bins == b] < e)
            for b, e in zip(edge_bins.tolist(), edges.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    return at_ranks, below


def _numeric(
    feature: statistics_pb2.FeatureNameStatistics,
    values: np.ndarray,
    n_rows: int,
    scratch: _Scratch,
) -> None:
    num = feature.num_stats
    n_present = int(values.size)
    _common(num.common_stats, n_present, n_rows - n_present)
    if not n_present:
        return
    low, high = float(values.min()), float(values.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        finite = values[np.isfinite(values)]
        feature.custom_stats.add(name=INFINITE_STAT, num=float(n_present - finite.size))
        num.min, num.max = low, high
        if not finite.size:
            return
        _finite_numeric(num, finite, scratch)
        return
    _finite_numeric(num, values, scratch)


def _histogram(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(values, bins=NUM_HISTOGRAM_BUCKETS)``, also where numpy refuses.

    numpy widens a constant column's range to ``[v - 0.5, v + 0.5]`` and then refuses ("Too
    many bins for data range") when that range, or a non-empty one, is narrower than 10
    representable steps: a constant timestamp (1.7e18 ns, where 0.5 rounds away), or a few
    large close values. The same edges (numpy's ``linspace``) passed explicitly are counted the
    same way and never refused; where the float grid is too coarse some edges coincide.
    """
    if high <= low:  # constant: numpy's own widening
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, NUM_HISTOGRAM_BUCKETS + 1)
    counts, _ = np.histogram(values, bins=edges)
    return counts, edges


def _finite_numeric(
    num: statistics_pb2.NumericStatistics, values: np.ndarray, scratch: _Scratch
) -> None:
    """Moments, zeros, quantiles and histograms of finite values (min/max kept if set)."""
    n_present = int(values.size)
    low, high = float(values.min()), float(values.max())
    infinite = math.isinf(num.min) or math.isinf(num.max)
    mean = np.add.reduce(values) / n_present
    # numpy's std, step by step (same sums, same result) in a reused buffer
    deviations = np.subtract(values, mean, out=scratch.get("work", n_present, np.float64))
    np.multiply(deviations, deviations, out=deviations)
    num.mean = float(mean)
    num.std_dev = math.sqrt(np.add.reduce(deviations) / n_present)
    if not infinite:
        num.min = low
        num.max = high
    num.num_zeros = int(
        np.count_nonzero(np.equal(values, 0, out=scratch.get("mask", n_present, np.bool_)))
    )

    levels = np.linspace(0.0, 1.0, NUM_QUANTILES_BUCKETS + 1)
    edges = np.linspace(low, high, NUM_HISTOGRAM_BUCKETS + 1)
    lower, upper, weight = _interpolation(n_present, levels)
    middle = np.array([(n_present - 1) // 2, n_present // 2])
    ranks = np.concatenate([lower, upper, middle])
    exact = _order_statistics(values, low, high, ranks, edges[1:-1], scratch)
    if exact is None:  # few values, constant or unbounded range: numpy's own routines
        counts, edges = _histogram(values, low, high)
        qs = np.quantile(values, levels)
        num.median = float(np.median(values))
    else:
        at_ranks, below = exact
        counts = np.diff(np.concatenate([[0], below, [n_present]]))
        k = len(levels)
        qs = _lerp(at_ranks[:k], at_ranks[k : 2 * k], weight)
        mid_low, mid_high = at_ranks[2 * k :].tolist()
        num.median = mid_low if n_present % 2 else (mid_low + mid_high) / 2
    hist = num.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for i, count in enumerate(counts.tolist()):
        hist.buckets.add(
            low_value=float(edges[i]), high_value=float(edges[i + 1]), sample_count=float(count)
        )
    quant = num.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
    per_bucket = n_present / NUM_QUANTILES_BUCKETS
    for i in range(NUM_QUANTILES_BUCKETS):
        quant.buckets.add(
            low_value=float(qs[i]), high_value=float(qs[i + 1]), sample_count=per_bucket
        )


def _view(array: pa.Array, dtype: np.dtype) -> np.ndarray:
    """Read-only numpy view of a null-free fixed-width Arrow array's values (no copy).

    ``Array.to_numpy`` and ``pa.array`` import pandas (about 0.2 s with cached bytecode, a
    second without), which nothing else here needs: these two helpers go through buffers.
    """
    if not len(array):
        return np.empty(0, dtype=dtype)
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize
    )


def _arrow_int64(values: np.ndarray) -> pa.Array:
    """Arrow int64 array over a numpy array's memory (see :func:`_view`)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _strings(
    feature: statistics_pb2.FeatureNameStatistics, column: pa.ChunkedArray, n_rows: int
) -> None:
    string = feature.string_stats
    n_present = n_rows - column.null_count
    _common(string.common_stats, n_present, n_rows - n_present)
    if not n_present:
        return
    # one hash pass (Arrow's value_counts, first-seen order); everything else is per value
    labels, freqs_array = pc.value_counts(column).flatten()
    if labels.null_count:
        valid = pc.is_valid(labels)
        labels, freqs_array = labels.filter(valid), freqs_array.filter(valid)
    freqs = _view(freqs_array, np.dtype(np.int64))
    string.unique = len(freqs)
    lengths = (
        pc.binary_length(labels)
        if pa.types.is_binary(labels.type) or pa.types.is_large_binary(labels.type)
        else pc.utf8_length(labels)
    )
    lengths = _view(lengths, np.dtype(np.int32 if lengths.type == pa.int32() else np.int64))
    string.avg_length = int(np.dot(lengths.astype(np.int64), freqs)) / n_present
    # by count, descending; ties keep first-seen order
    order = np.argsort(-freqs, kind="stable")[:NUM_RANK_HISTOGRAM_BUCKETS]
    top = labels.take(_arrow_int64(order)).to_pylist()
    for rank, (label, freq) in enumerate(zip(top, freqs[order].tolist(), strict=True)):
        text = label.decode("utf-8", "backslashreplace") if isinstance(label, bytes) else label
        if rank < NUM_TOP_VALUES:
            string.top_values.add(value=text, frequency=float(freq))
        string.rank_histogram.buckets.add(
            low_rank=rank, high_rank=rank, label=text, sample_count=float(freq)
        )


def _numeric_values(column: pa.ChunkedArray, scratch: _Scratch) -> np.ndarray:
    """Present values of a numeric column as one float64 array (nulls and NaN dropped)."""
    present = pc.drop_null(column)
    if pa.types.is_boolean(present.type):
        present = present.cast(pa.int8())
    elif pa.types.is_decimal(present.type) or present.type not in _NUMPY_TYPES:
        present = present.cast(pa.float64())
    dtype = np.dtype(_NUMPY_TYPES[present.type])
    if present.num_chunks == 1 and dtype == np.float64:
        values = _view(present.chunk(0), dtype)  # read-only, and only read
    else:
        values = scratch.get("values", len(present), np.float64)
        start = 0
        for chunk in present.chunks:
            values[start : start + len(chunk)] = _view(chunk, dtype)
            start += len(chunk)
    if values.size and np.isnan(values.min()):  # min is NaN iff a NaN is present
        values = values[~np.isnan(values)]
    return values


def _feature(
    name: str, column: pa.ChunkedArray, scratch: _Scratch
) -> statistics_pb2.FeatureNameStatistics:
    feature = statistics_pb2.FeatureNameStatistics()
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
        _numeric(feature, _numeric_values(column, scratch), n_rows, scratch)
    elif t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        feature.type = FeatureType.FLOAT
        _numeric(feature, _numeric_values(column, scratch), n_rows, scratch)
    elif t.is_temporal(arrow_type):
        feature.type = FeatureType.INT
        width = pa.int32() if arrow_type.bit_width == 32 else pa.int64()
        _numeric(feature, _numeric_values(column.cast(width), scratch), n_rows, scratch)
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
    return feature


def _default_threads() -> int:
    return max(1, min(pa.cpu_count(), MAX_THREADS))


def compute_statistics(
    table: pa.Table, name: str = "data", *, threads: int | None = None
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Compute per-feature statistics of a table in TFDV's format.

    Columns are independent, so they are summarised on a few threads (numpy and Arrow release
    the GIL for the heavy passes); the result does not depend on the number of threads.
    Quantiles, the median and the histograms are exact (numpy's ``quantile``, ``median`` and
    ``histogram`` values: see :func:`_order_statistics`), where TFDV's are sketches.

    Args:
        table: The data.
        name: Dataset name recorded in the statistics.
        threads: Columns summarised at once; default ``min(pyarrow.cpu_count(), MAX_THREADS)``
            (``OMP_NUM_THREADS`` sets pyarrow's count). Each thread holds work buffers of
            25 bytes per row.

    Returns:
        A list holding one ``DatasetFeatureStatistics`` (num_examples; per feature
        ``num_stats`` or ``string_stats`` with common statistics, histograms, top values).

    Raises:
        DataError: ``table`` is not a pyarrow Table or has duplicate column names, or
            ``threads`` is below 1.
    """
    if not isinstance(table, pa.Table):
        raise DataError(f"statistics need a pyarrow Table, got {type(table).__name__}")
    names = table.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"table {name!r} has duplicate column names: {duplicates}")
    if threads is not None and threads < 1:
        raise DataError(f"threads must be at least 1, got {threads}")
    workers = min(threads or _default_threads(), len(names))
    columns = list(zip(names, table.columns, strict=True))
    if workers <= 1:
        scratch = _Scratch()
        features = [_feature(n, c, scratch) for n, c in columns]
    else:
        local = threading.local()

        def summarise(item: tuple[str, pa.ChunkedArray]) -> statistics_pb2.FeatureNameStatistics:
            if not hasattr(local, "scratch"):
                local.scratch = _Scratch()
            return _feature(item[0], item[1], local.scratch)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            features = list(pool.map(summarise, columns))
    result = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = result.datasets.add(name=name, num_examples=table.num_rows)
    dataset.features.extend(features)
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
