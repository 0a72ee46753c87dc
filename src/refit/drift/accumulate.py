"""Streaming accumulators: a column summarised batch by batch into a :class:`Profile`.

A column is summarised batch by batch into an accumulator whose size depends on the data's
spread (bucket grid span, distinct values), never on the number of rows; batches combine
exactly as :meth:`~refit.drift.profile.NumericSummary.merge` combines summaries.
:class:`ProfileBuilder` holds one accumulator per column. Values come out of Arrow buffers with
numpy directly: ``Array.to_numpy`` (even zero-copy) makes pyarrow import pandas (0.2 s with
cached bytecode, a second without, ~50 MB), which the drift path never needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.drift.profile import (
    EXACT_LIMIT,
    MANTISSA_BITS,
    CategoricalSummary,
    FeatureProfile,
    NumericSummary,
    Profile,
    feature_type,
    reduce_points,
)
from refit.errors import DataError

_SHIFT = 52 - MANTISSA_BITS
#: Rows per batch when streaming files (and the longest array an accumulator takes at once).
BATCH_ROWS = 131_072

_MAG_MASK = np.int64(0x7FFFFFFFFFFFFFFF)
#: Widest span of bucket magnitudes one sign of a column keeps as a dense array (512 KiB);
#: wider spans (values over more than ~64 binary orders of magnitude) are kept sparse.
DENSE_SPAN = 1 << 16
#: Value range up to which integral values are counted with ``bincount`` instead of a sort.
_INT_RANGE = 1 << 16


def _mag(value: float) -> int:
    """Bucket magnitude of one finite float (the key of ``abs(value)``)."""
    return int((np.float64(abs(value)).view(np.int64) & _MAG_MASK) >> np.int64(_SHIFT))


class _Histogram:
    """Counts per bucket magnitude of one sign: dense over a window, sparse past DENSE_SPAN."""

    __slots__ = ("lo", "dense", "keys", "counts", "pending")

    def __init__(self) -> None:
        self.lo = 0
        self.dense: np.ndarray | None = None
        self.keys: np.ndarray | None = None  # sparse mode: sorted magnitudes
        self.counts: np.ndarray | None = None
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, lo: int, counts: np.ndarray) -> int:
        """Add ``counts`` of magnitudes ``lo, lo + 1, ...``; returns the non-zero buckets added."""
        nz = np.flatnonzero(counts)
        if len(nz) == 0:
            return 0
        first, last = int(nz[0]), int(nz[-1]) + 1
        counts, lo = counts[first:last], lo + first
        if self.keys is None and self.dense is None and len(counts) > DENSE_SPAN:
            self.keys, self.counts = np.empty(0, np.int64), np.empty(0, np.int64)
        if self.keys is None:
            if self.dense is None:
                self.lo, self.dense = lo, counts.astype(np.int64)
                return len(nz)
            new_lo = min(self.lo, lo)
            new_hi = max(self.lo + len(self.dense), lo + len(counts))
            if new_hi - new_lo <= DENSE_SPAN:
                if new_lo < self.lo or new_hi > self.lo + len(self.dense):
                    grown = np.zeros(new_hi - new_lo, np.int64)
                    grown[self.lo - new_lo : self.lo - new_lo + len(self.dense)] = self.dense
                    self.lo, self.dense = new_lo, grown
                self.dense[lo - self.lo : lo - self.lo + len(counts)] += counts
                return len(nz)
            self.keys, self.counts = self.items()  # too wide: sparse from now on
            self.dense = None
        sel = np.flatnonzero(counts)
        self.pending.append((sel + lo, counts[sel].astype(np.int64)))
        if sum(len(k) for k, _ in self.pending) >= max(len(self.keys), DENSE_SPAN):
            self._compact()
        return len(nz)

    def _compact(self) -> None:
        assert self.keys is not None and self.counts is not None
        if self.pending:
            self.keys, self.counts = reduce_points(
                np.concatenate([self.keys, *(k for k, _ in self.pending)]),
                np.concatenate([self.counts, *(c for _, c in self.pending)]),
            )
            self.pending = []

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted magnitudes and their counts."""
        if self.keys is not None:
            self._compact()
            assert self.counts is not None
            return self.keys, self.counts
        if self.dense is None:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        nz = np.flatnonzero(self.dense)
        return (nz + self.lo).astype(np.int64), self.dense[nz]


class NumericAccumulator:
    """Streaming :class:`NumericSummary`: the same fields, accumulated batch by batch.

    Batches combine exactly as :meth:`NumericSummary.merge` combines summaries (same formulas,
    same order), so streaming gives the same profile as summarising each batch and merging.
    """

    def __init__(self) -> None:
        self.count = 0
        self.missing = 0
        self.pos_inf = 0
        self.neg_inf = 0
        self.sum = 0.0
        self.m2 = 0.0
        self.min = math.nan
        self.max = math.nan
        self.exact = True
        self.points = np.empty(0, np.float64)
        self.counts = np.empty(0, np.int64)
        self._pos = _Histogram()
        self._neg = _Histogram()

    def add_array(self, array: pa.Array) -> None:
        """Add an Arrow array (any numeric type, dictionary-encoded or not, nulls allowed)."""
        values, nulls = _float_values(array)
        self.add(values, nulls)

    def add(self, values: np.ndarray, missing: int = 0) -> None:
        """Add float64 values (NaN counts as missing, infinities apart) and ``missing`` nulls."""
        self.missing += missing
        if len(values) == 0:
            return
        with np.errstate(invalid="ignore"):  # inf + -inf: handled just below
            total = float(values.sum())
        if not math.isfinite(total):  # some value is NaN or infinite (or the sum overflowed)
            finite = np.isfinite(values)
            if not finite.all():
                self.missing += int(np.isnan(values).sum())
                self.pos_inf += int((values == np.inf).sum())
                self.neg_inf += int((values == -np.inf).sum())
                values = values[finite]
                if len(values) == 0:
                    return
                total = float(values.sum())
        n = len(values)
        dev = values - total / n
        # squared and summed by numpy (pairwise), not np.dot: OpenBLAS runs a long dot product
        # on its own threads, which fought the column threads for the cores (twice the CPU time
        # for the same work) and made the rounding depend on the machine's thread count
        np.multiply(dev, dev, out=dev)
        m2 = float(dev.sum())
        del dev
        vmin, vmax = float(values.min()), float(values.max())
        # merge exactly as NumericSummary.merge does
        if self.count == 0:
            self.sum, self.m2, self.min, self.max = total, m2, vmin, vmax
        else:
            both = self.count + n
            delta = total / n - self.sum / self.count
            self.m2 = self.m2 + m2 + delta * delta * self.count * n / both
            self.sum = self.sum + total
            self.min, self.max = min(self.min, vmin), max(self.max, vmax)
        self.count += n
        buckets = self._add_buckets(values, vmin, vmax)
        if self.exact:
            self._add_exact(values, vmin, vmax, buckets)

    def _add_buckets(self, values: np.ndarray, vmin: float, vmax: float) -> int:
        """Count the values' buckets into the histograms; returns the distinct buckets."""
        mag = values.view(np.int64) & _MAG_MASK
        np.right_shift(mag, _SHIFT, out=mag)
        if vmin >= 0.0 or vmax < 0.0:  # one sign (-0.0 >= 0.0 and goes with the positives)
            lo = _mag(vmin if vmin >= 0.0 else vmax)
            hi = _mag(vmax if vmin >= 0.0 else vmin)
            mag -= lo
            counts = np.bincount(mag, minlength=hi - lo + 1)
            return (self._pos if vmin >= 0.0 else self._neg).add(lo, counts)
        lo = int(mag.min())
        span = max(_mag(vmin), _mag(vmax)) - lo + 1
        mag -= lo
        np.add(mag, span, out=mag, where=values < 0.0)  # negatives in a second band
        counts = np.bincount(mag, minlength=2 * span)
        return self._pos.add(lo, counts[:span]) + self._neg.add(lo, counts[span:])

    def _add_exact(self, values: np.ndarray, vmin: float, vmax: float, buckets: int) -> None:
        """Keep the distinct values while there are at most EXACT_LIMIT of them."""
        if buckets > EXACT_LIMIT:  # more buckets than the limit: more distinct values too
            self._drop_exact()
            return
        points: np.ndarray | None = None
        counts: np.ndarray | None = None
        if vmax - vmin <= _INT_RANGE:
            offset = values - vmin
            ints = offset.astype(np.int64)
            # integral values in a small range: no sort. The round trip must give the values
            # back exactly: ``values - vmin`` rounds (-2.0 and -1e-45 are 0.0 and 2.0 apart).
            if np.array_equal(ints, offset) and np.array_equal(ints + vmin, values):
                tally = np.bincount(ints)
                nz = np.flatnonzero(tally)
                points, counts = nz + vmin, tally[nz]
        if points is None or counts is None:  # both or neither
            points, counts = np.unique(values, return_counts=True)
        if len(points) <= EXACT_LIMIT and len(self.points):
            points, counts = reduce_points(
                np.concatenate([self.points, points]), np.concatenate([self.counts, counts])
            )
        if len(points) > EXACT_LIMIT:
            self._drop_exact()
            return
        self.points, self.counts = points.astype(np.float64), counts.astype(np.int64)

    def _drop_exact(self) -> None:
        self.exact = False
        self.points, self.counts = np.empty(0, np.float64), np.empty(0, np.int64)

    def summary(self) -> NumericSummary:
        """The summary of every value added."""
        out = NumericSummary(
            count=self.count,
            missing=self.missing,
            pos_inf=self.pos_inf,
            neg_inf=self.neg_inf,
            sum=self.sum,
            m2=self.m2,
            min=self.min,
            max=self.max,
        )
        if self.count == 0:
            return out
        if self.exact:
            out.points, out.counts = self.points, self.counts
            return out
        neg_mag, neg_counts = self._neg.items()
        pos_mag, pos_counts = self._pos.items()
        out.exact = False
        out.points = np.concatenate([-neg_mag[::-1] - 1, pos_mag]).astype(np.int64)
        out.counts = np.concatenate([neg_counts[::-1], pos_counts]).astype(np.int64)
        return out


class CategoricalAccumulator:
    """Streaming :class:`CategoricalSummary`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.missing = 0

    def _tally(self, keys: list[Any], counts: Sequence[int]) -> None:
        for key, count in zip(keys, counts, strict=True):
            if count:
                if key is None:
                    self.missing += int(count)
                else:
                    text = str(key)
                    self.counts[text] = self.counts.get(text, 0) + int(count)

    def add_array(self, array: pa.Array) -> None:
        """Add an Arrow array (strings, booleans or dictionary-encoded; nulls are missing)."""
        if pa.types.is_dictionary(array.type) and pa.types.is_integer(array.type.index_type):
            indices = array.indices
            kind = "i" if pa.types.is_signed_integer(indices.type) else "u"
            codes = _buffer_values(indices, np.dtype(f"{kind}{indices.type.bit_width // 8}"))
            if indices.null_count:
                codes = codes[_valid_mask(indices)]
                self.missing += indices.null_count
            dictionary = array.dictionary
            if not pa.types.is_string(dictionary.type):
                dictionary = pc.cast(dictionary, pa.string())
            counts = np.bincount(codes, minlength=len(dictionary))
            self._tally(dictionary.to_pylist(), counts.tolist())
            return
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        self.missing += array.null_count
        if array.null_count:
            array = array.drop_null()
        if not pa.types.is_string(array.type):
            array = pc.cast(array, pa.string())
        counted = pc.value_counts(array)
        self._tally(counted.field("values").to_pylist(), counted.field("counts").to_pylist())

    def summary(self) -> CategoricalSummary:
        """The summary of every value added."""
        return CategoricalSummary(dict(self.counts), self.missing)


def _valid_mask(array: pa.Array) -> np.ndarray:
    """Boolean mask of the array's non-null slots, from its validity bitmap."""
    bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, count=array.offset + len(array), bitorder="little")
    return bits[array.offset :].view(bool)


def _buffer_values(array: pa.Array, dtype: np.dtype) -> np.ndarray:
    """The data buffer of a fixed-width array as numpy (zero copy; null slots undefined)."""
    data = array.buffers()[1] if len(array) else None
    if data is None:  # empty, or no data buffer at all (every slot null)
        return np.zeros(len(array), dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


_F8 = np.dtype(np.float64)


def _float_values(array: pa.Array) -> tuple[np.ndarray, int]:
    """float64 values of a numeric array's non-null slots, and its null count.

    Zero copy for float64 without nulls; other numeric types are cast (safely) first.
    """
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not pa.types.is_float64(array.type):
        array = array.cast(pa.float64())
    values = _buffer_values(array, _F8)
    nulls = array.null_count
    if nulls:
        values = values[_valid_mask(array)]
    return values, nulls


def _slices(array: pa.Array, rows: int) -> Iterator[pa.Array]:
    """Zero-copy slices of at most ``rows`` rows, so temporaries stay bounded."""
    if len(array) <= rows:
        yield array
        return
    for start in range(0, len(array), rows):
        yield array.slice(start, rows)


_POOL: ThreadPoolExecutor | None = None


def column_pool() -> ThreadPoolExecutor:
    """The process's thread pool that profiles columns in parallel."""
    global _POOL  # one lazily created pool per process
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    return _POOL


class ProfileBuilder:
    """Build a :class:`Profile` from record batches, one batch at a time (flat memory).

    Each column has a streaming accumulator; a batch's columns are processed on a thread pool
    (numpy and Arrow release the GIL), and arrays longer than :data:`BATCH_ROWS` are processed
    in slices of that many rows, so temporary arrays never grow with the data.
    """

    def __init__(self, schema: pa.Schema, columns: Sequence[str] | None = None, source: str = ""):
        """Set up per-column accumulators.

        Args:
            schema: Arrow schema of the batches.
            columns: Columns to profile (default all).
            source: Where the data came from.

        Raises:
            DataError: If a requested column is not in the schema.
        """
        names = list(schema.names) if columns is None else list(dict.fromkeys(columns))
        missing = [c for c in names if c not in schema.names]
        if missing:
            raise DataError(f"columns not found in {source or 'the data'}: {', '.join(missing)}")
        self.source = source
        self.rows = 0
        self._features: dict[str, FeatureProfile] = {}
        self._acc: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
        for name in names:
            arrow_type = schema.field(name).type
            ftype = feature_type(arrow_type) or "unsupported"
            self._features[name] = FeatureProfile(name, ftype, str(arrow_type), None)
            if ftype == "numeric":
                self._acc[name] = NumericAccumulator()
            elif ftype == "categorical":
                self._acc[name] = CategoricalAccumulator()

    @property
    def profiled_columns(self) -> list[str]:
        """Columns with a supported type (the ones that get a summary)."""
        return list(self._acc)

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch of rows."""
        self.rows += batch.num_rows
        names = self.profiled_columns
        if len(names) > 1 and batch.num_rows >= 10_000:
            list(column_pool().map(lambda n: self.update_column(n, batch.column(n)), names))
        else:
            for name in names:
                self.update_column(name, batch.column(name))

    def update_column(self, name: str, column: pa.Array | pa.ChunkedArray) -> None:
        """Add one column's values of a batch (rows are counted by :meth:`update` or the caller).

        Calls for different columns may run concurrently; calls for one column may not.
        """
        acc = self._acc[name]
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            for piece in _slices(chunk, BATCH_ROWS):
                acc.add_array(piece)

    def finish(self) -> Profile:
        """The profile of every row seen."""
        features: dict[str, FeatureProfile] = {}
        for name, f in self._features.items():
            acc = self._acc.get(name)
            summary = None if acc is None else acc.summary()
            features[name] = FeatureProfile(name, f.type, f.arrow_type, summary)
        return Profile(rows=self.rows, features=features, source=self.source)


def profile_table(
    table: pa.Table, columns: Sequence[str] | None = None, source: str = ""
) -> Profile:
    """Profile an in-memory table."""
    builder = ProfileBuilder(table.schema, columns, source)
    builder.update(table)
    return builder.finish()
