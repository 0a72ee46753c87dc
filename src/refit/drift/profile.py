"""Mergeable reference profiles: one streaming pass per table, exact merges across shards.

A :class:`Profile` holds, per feature, everything the drift tests need, so a reference is profiled
once (and stored with the model and the snapshot) and a current window is checked in one
streaming pass with memory flat in the number of rows.

Numeric features (:class:`NumericSummary`) keep exact ``count`` (finite values), ``missing``
(nulls and NaN), ``pos_inf`` / ``neg_inf``, ``sum``, ``m2`` (sum of squared deviations from the
mean, merged with Chan's formula), ``min`` and ``max``, plus a distribution that is one of:

* **exact**: the distinct finite values and their counts, while a feature has at most
  :data:`EXACT_LIMIT` distinct values; every statistic is then exact;
* **buckets**: a fine fixed-bin histogram on a data-independent grid. A value's bucket is its
  float64 bit pattern with the mantissa cut to :data:`MANTISSA_BITS` bits (sign handled so the
  key is monotone in the value), so each bucket spans a relative width of at most
  ``2**-MANTISSA_BITS`` (about 0.1 %) of its values' magnitude. The grid does not depend on the
  data, so histograms of shards add up exactly to the histogram of all the data.

Categorical features (:class:`CategoricalSummary`) keep exact counts per category and the
missing count. Merging profiles adds counts, so merged profiles give the same decisions as one
profile of all the data: exactly for counts and histograms; ``sum`` and ``m2`` agree up to
floating-point rounding of the addition order.

Profiles are versioned JSON (:data:`PROFILE_VERSION`); a profile of another version raises
:class:`~refit.errors.SchemaError` naming both versions.
"""

from __future__ import annotations

import base64
import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, SchemaError

#: Format version of stored profiles. Bump on any incompatible change.
PROFILE_VERSION = 1
#: Mantissa bits kept by the bucket grid (relative bucket width at most 2**-MANTISSA_BITS).
MANTISSA_BITS = 10
_SHIFT = 52 - MANTISSA_BITS
#: Numeric features with at most this many distinct values keep them exactly.
EXACT_LIMIT = 1000
#: Rows per batch when streaming files.
BATCH_ROWS = 131_072


def feature_type(arrow_type: pa.DataType) -> str | None:
    """Map an Arrow type to ``"numeric"``, ``"categorical"`` or ``None`` (unsupported)."""
    if pa.types.is_boolean(arrow_type):
        return "categorical"
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    ):
        return "numeric"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_dictionary(arrow_type)
    ):
        return "categorical"
    return None


# --------------------------------------------------------------------------- bucket grid


def bucket_keys(values: np.ndarray) -> np.ndarray:
    """Bucket keys (int64, monotone non-decreasing in the value) of finite float64 values."""
    bits = (values + 0.0).view(np.int64)  # + 0.0 turns -0.0 into 0.0
    mag = (bits & np.int64(0x7FFFFFFFFFFFFFFF)) >> np.int64(_SHIFT)
    return np.where(bits < 0, -mag - 1, mag)


def _from_mag(mag: np.ndarray) -> np.ndarray:
    return (np.asarray(mag, dtype=np.int64) << np.int64(_SHIFT)).view(np.float64)


def bucket_bounds(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper value bounds of buckets (a bucket's values lie within them)."""
    keys = np.asarray(keys, dtype=np.int64)
    neg = keys < 0
    mag = np.where(neg, -keys - 1, keys)
    lo_mag, hi_mag = _from_mag(mag), _from_mag(np.minimum(mag + 1, 0x7FF << (52 - _SHIFT)))
    lower = np.where(neg, -hi_mag, lo_mag)
    upper = np.where(neg, -lo_mag, hi_mag)
    return lower, upper


def _count_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and their counts, by bincount over each sign's key range."""
    out_k: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    for part in (keys[keys < 0], keys[keys >= 0]):
        if len(part) == 0:
            continue
        low = int(part.min())
        counts = np.bincount(part - low)
        nz = np.flatnonzero(counts)
        out_k.append(nz.astype(np.int64) + low)
        out_c.append(counts[nz].astype(np.int64))
    if not out_k:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_k), np.concatenate(out_c)


def _bucket_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted bucket keys and counts of finite values (same as counting :func:`bucket_keys`).

    Both signs share one bincount over the magnitude band, so the cost is two passes.
    """
    if (values == 0.0).any():
        values = values + 0.0  # -0.0 -> 0.0
    bits = values.view(np.int64)
    mag = bits & np.int64(0x7FFFFFFFFFFFFFFF)
    np.right_shift(mag, _SHIFT, out=mag)
    low = int(mag.min())
    mag -= low
    total = np.bincount(mag)
    neg_mask = bits < 0
    if neg_mask.any():
        neg = np.bincount(mag[neg_mask], minlength=len(total))
        pos = total - neg
        nz_neg = np.flatnonzero(neg)[::-1]  # larger magnitude -> smaller key
        nz_pos = np.flatnonzero(pos)
        keys = np.concatenate([-(nz_neg + low) - 1, nz_pos + low]).astype(np.int64)
        counts = np.concatenate([neg[nz_neg], pos[nz_pos]]).astype(np.int64)
        return keys, counts
    nz = np.flatnonzero(total)
    return (nz + low).astype(np.int64), total[nz].astype(np.int64)


def _reduce(points: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate points, adding their counts; points come back sorted."""
    if len(points) == 0:
        return points, counts.astype(np.int64)
    uniq, inverse = np.unique(points, return_inverse=True)
    return uniq, np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)


# --------------------------------------------------------------------------- summaries


@dataclass
class NumericSummary:
    """Mergeable summary of one numeric feature (see the module docstring).

    Attributes:
        count: Finite, non-missing values.
        missing: Nulls and NaN.
        pos_inf: ``+inf`` values.
        neg_inf: ``-inf`` values.
        sum: Sum of the finite values.
        m2: Sum of squared deviations of the finite values from their mean.
        min: Smallest finite value (``nan`` when ``count == 0``).
        max: Largest finite value (``nan`` when ``count == 0``).
        exact: Whether ``points`` are the distinct values (else bucket keys).
        points: Sorted distinct values (float64) or bucket keys (int64).
        counts: Count per point (int64).
    """

    count: int = 0
    missing: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    sum: float = 0.0
    m2: float = 0.0
    min: float = math.nan
    max: float = math.nan
    exact: bool = True
    points: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def rows(self) -> int:
        """All rows: finite, missing and infinite."""
        return self.count + self.missing + self.pos_inf + self.neg_inf

    @property
    def mean(self) -> float:
        """Mean of the finite values (``nan`` when there are none)."""
        return self.sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0) of the finite values."""
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else math.nan

    @classmethod
    def from_values(cls, values: np.ndarray, missing: int = 0) -> NumericSummary:
        """Summarise a float array (NaN counts as missing, infinities counted apart)."""
        values = np.asarray(values, dtype=np.float64)
        out = cls(missing=missing)
        if not np.isfinite(values).all():
            nan = np.isnan(values)
            out.missing += int(nan.sum())
            out.pos_inf = int((values == np.inf).sum())
            out.neg_inf = int((values == -np.inf).sum())
            values = values[np.isfinite(values)]
        n = len(values)
        if n == 0:
            return out
        out.count = n
        out.sum = float(values.sum())
        mean = out.sum / n
        dev = values - mean
        out.m2 = float(np.dot(dev, dev))
        out.min, out.max = float(values.min()), float(values.max())
        keys, kcounts = _bucket_counts(values)
        out.exact, out.points, out.counts = False, keys, kcounts
        if len(keys) <= EXACT_LIMIT:
            points, counts = np.unique(values, return_counts=True)
            if len(points) <= EXACT_LIMIT:
                out.exact, out.points, out.counts = True, points, counts.astype(np.int64)
        return out

    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """The distribution as bucket keys and counts (exact values are bucketed)."""
        if not self.exact:
            return self.points, self.counts
        return _reduce(bucket_keys(self.points), self.counts)

    def merge(self, other: NumericSummary) -> NumericSummary:
        """Combine two summaries as if their rows had been summarised together."""
        n = self.count + other.count
        out = NumericSummary(
            count=n,
            missing=self.missing + other.missing,
            pos_inf=self.pos_inf + other.pos_inf,
            neg_inf=self.neg_inf + other.neg_inf,
            sum=self.sum + other.sum,
        )
        if self.count == 0 or other.count == 0:
            src = self if other.count == 0 else other
            out.m2, out.min, out.max = src.m2, src.min, src.max
            out.exact, out.points, out.counts = src.exact, src.points, src.counts
            if n == 0:
                out.exact, out.points, out.counts = True, self.points, self.counts
            return out
        delta = other.mean - self.mean
        out.m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        out.min, out.max = min(self.min, other.min), max(self.max, other.max)
        if self.exact and other.exact:
            points, counts = _reduce(
                np.concatenate([self.points, other.points]),
                np.concatenate([self.counts, other.counts]),
            )
            if len(points) <= EXACT_LIMIT:
                out.points, out.counts = points, counts
                return out
        a_k, a_c = self.buckets()
        b_k, b_c = other.buckets()
        out.exact = False
        out.points, out.counts = _reduce(np.concatenate([a_k, b_k]), np.concatenate([a_c, b_c]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as base64 of zlib-compressed little-endian bytes)."""
        return {
            "count": self.count,
            "missing": self.missing,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "sum": self.sum,
            "m2": self.m2,
            "min": None if math.isnan(self.min) else self.min,
            "max": None if math.isnan(self.max) else self.max,
            "exact": self.exact,
            "points": _pack(self.points, "<f8" if self.exact else "<i8"),
            "counts": _pack(self.counts, "<i8"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        """Inverse of :meth:`to_dict`."""
        exact = bool(data["exact"])
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            pos_inf=int(data["pos_inf"]),
            neg_inf=int(data["neg_inf"]),
            sum=float(data["sum"]),
            m2=float(data["m2"]),
            min=math.nan if data["min"] is None else float(data["min"]),
            max=math.nan if data["max"] is None else float(data["max"]),
            exact=exact,
            points=_unpack(data["points"], "<f8" if exact else "<i8"),
            counts=_unpack(data["counts"], "<i8"),
        )


@dataclass
class CategoricalSummary:
    """Exact category counts of one categorical feature.

    Attributes:
        counts: Count per category (categories as strings; booleans as ``"true"``/``"false"``).
        missing: Null values.
    """

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    @property
    def count(self) -> int:
        """Non-missing values."""
        return sum(self.counts.values())

    @property
    def rows(self) -> int:
        """All rows, missing included."""
        return self.count + self.missing

    @classmethod
    def from_values(cls, values: Iterable[str], missing: int = 0) -> CategoricalSummary:
        """Count an iterable of category strings."""
        uniq, counts = np.unique(np.asarray(list(values), dtype=object), return_counts=True)
        return cls({str(k): int(c) for k, c in zip(uniq, counts, strict=True)}, missing)

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        """Add two summaries' counts."""
        counts = dict(self.counts)
        for key, value in other.counts.items():
            counts[key] = counts.get(key, 0) + value
        return CategoricalSummary(counts, self.missing + other.missing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"counts": dict(sorted(self.counts.items())), "missing": self.missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        """Inverse of :meth:`to_dict`."""
        return cls({str(k): int(v) for k, v in dict(data["counts"]).items()}, int(data["missing"]))


Summary = NumericSummary | CategoricalSummary


def _pack(array: np.ndarray, dtype: str) -> str:
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def _unpack(text: str, dtype: str) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=dtype).astype(np.float64 if dtype == "<f8" else np.int64)


# --------------------------------------------------------------------------- profiles


@dataclass
class FeatureProfile:
    """Profile of one column.

    Attributes:
        name: Column name.
        type: ``"numeric"``, ``"categorical"`` or ``"unsupported"``.
        arrow_type: The Arrow type as text (a changed type is reported, not compared).
        summary: The summary (``None`` for unsupported types).
    """

    name: str
    type: str
    arrow_type: str
    summary: Summary | None

    def merge(self, other: FeatureProfile) -> FeatureProfile:
        """Combine with the same column's profile from another shard.

        Raises:
            SchemaError: If the two shards disagree on the column's type.
        """
        if self.type != other.type:
            raise SchemaError(
                f"cannot merge profiles: column {self.name!r} is {self.type} ({self.arrow_type}) "
                f"in one and {other.type} ({other.arrow_type}) in the other"
            )
        if self.summary is None or other.summary is None:
            return self
        return FeatureProfile(
            self.name,
            self.type,
            self.arrow_type,
            self.summary.merge(other.summary),  # type: ignore[arg-type]
        )


@dataclass
class Profile:
    """A mergeable profile of a table (see the module docstring).

    Attributes:
        rows: Rows profiled.
        features: Per-column profiles, in column order.
        version: Format version (:data:`PROFILE_VERSION`).
        source: Where the data came from (free text, for people).
    """

    rows: int
    features: dict[str, FeatureProfile]
    version: int = PROFILE_VERSION
    source: str = ""

    @property
    def columns(self) -> list[str]:
        """Profiled column names."""
        return list(self.features)

    def merge(self, other: Profile) -> Profile:
        """Profile of the union of both profiles' rows.

        Raises:
            SchemaError: If the columns or their types differ.
        """
        if self.columns != other.columns:
            raise SchemaError(
                f"cannot merge profiles with different columns: {self.columns} vs {other.columns}"
            )
        return Profile(
            rows=self.rows + other.rows,
            features={n: f.merge(other.features[n]) for n, f in self.features.items()},
            source=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "kind": "refit.drift.profile",
            "version": self.version,
            "rows": self.rows,
            "source": self.source,
            "features": {
                name: {
                    "type": f.type,
                    "arrow_type": f.arrow_type,
                    "summary": None if f.summary is None else f.summary.to_dict(),
                }
                for name, f in self.features.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "profile") -> Profile:
        """Inverse of :meth:`to_dict`.

        Raises:
            SchemaError: Not a refit profile, another format version, or a malformed field.
        """
        if not isinstance(data, Mapping) or data.get("kind") != "refit.drift.profile":
            raise SchemaError(f"{where} is not a refit drift profile (no kind field)")
        version = data.get("version")
        if version != PROFILE_VERSION:
            raise SchemaError(
                f"{where} has profile format version {version!r}; this refit reads version "
                f"{PROFILE_VERSION}: profile the reference again with `refit profile`"
            )
        try:
            features: dict[str, FeatureProfile] = {}
            for name, f in dict(data["features"]).items():
                ftype = str(f["type"])
                raw = f["summary"]
                summary: Summary | None
                if raw is None:
                    summary = None
                elif ftype == "numeric":
                    summary = NumericSummary.from_dict(raw)
                else:
                    summary = CategoricalSummary.from_dict(raw)
                features[str(name)] = FeatureProfile(
                    str(name), ftype, str(f["arrow_type"]), summary
                )
            return cls(
                rows=int(data["rows"]), features=features, source=str(data.get("source", ""))
            )
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise SchemaError(f"{where} is malformed: {type(exc).__name__}: {exc}") from None

    def to_json(self) -> str:
        """Serialise as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "profile") -> Profile:
        """Parse JSON text (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{where} is not valid JSON: {exc}") from None
        return cls.from_dict(data, where)


def merge_profiles(profiles: Sequence[Profile]) -> Profile:
    """Merge the profiles of K shards into the profile of all their rows.

    Raises:
        SchemaError: If there is nothing to merge or the shards' columns differ.
    """
    if not profiles:
        raise SchemaError("merge_profiles needs at least one profile")
    out = profiles[0]
    for other in profiles[1:]:
        out = out.merge(other)
    return out


# --------------------------------------------------------------------------- building


def _summarise_array(array: pa.Array, ftype: str) -> Summary:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    nulls = array.null_count
    if ftype == "numeric":
        values = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
        # nulls became NaN: counted as missing by from_values
        return NumericSummary.from_values(values)
    if nulls:
        array = array.drop_null()
    strings = pc.cast(array, pa.string()) if not pa.types.is_string(array.type) else array
    counted = pc.value_counts(strings)
    keys = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    return CategoricalSummary({str(k): int(c) for k, c in zip(keys, counts, strict=True)}, nulls)


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one lazily created pool per process
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    return _POOL


class ProfileBuilder:
    """Build a :class:`Profile` from record batches, one batch at a time (flat memory)."""

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
        for name in names:
            arrow_type = schema.field(name).type
            ftype = feature_type(arrow_type) or "unsupported"
            self._features[name] = FeatureProfile(name, ftype, str(arrow_type), None)
        self._parts: dict[str, list[Summary]] = {n: [] for n in names}

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch of rows.

        Columns are summarised on a thread pool: numpy and Arrow release the GIL, so the columns
        of a batch use every core.
        """
        self.rows += batch.num_rows
        names = [n for n, f in self._features.items() if f.type != "unsupported"]
        if len(names) > 1 and batch.num_rows >= 10_000:
            list(_pool().map(lambda n: self._update_column(n, batch.column(n)), names))
        else:
            for name in names:
                self._update_column(name, batch.column(name))

    def _update_column(self, name: str, column: pa.Array | pa.ChunkedArray) -> None:
        ftype = self._features[name].type
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        parts = self._parts[name]
        for chunk in chunks:
            parts.append(_summarise_array(chunk, ftype))
        if len(parts) > 1:  # keep memory flat: fold as we go
            merged = parts[0]
            for p in parts[1:]:
                merged = merged.merge(p)  # type: ignore[arg-type]
            self._parts[name] = [merged]

    def finish(self) -> Profile:
        """The profile of every row seen."""
        features: dict[str, FeatureProfile] = {}
        for name, f in self._features.items():
            summary: Summary | None = None
            if f.type == "numeric":
                summary = self._parts[name][0] if self._parts[name] else NumericSummary()
            elif f.type == "categorical":
                summary = self._parts[name][0] if self._parts[name] else CategoricalSummary()
            features[name] = FeatureProfile(name, f.type, f.arrow_type, summary)
        return Profile(rows=self.rows, features=features, source=self.source)


def profile_table(
    table: pa.Table, columns: Sequence[str] | None = None, source: str = ""
) -> Profile:
    """Profile an in-memory table."""
    builder = ProfileBuilder(table.schema, columns, source)
    builder.update(table)
    return builder.finish()


def iter_batches(uri: str, columns: Sequence[str] | None = None) -> tuple[pa.Schema, Iterator]:
    """Open a data file for streaming: ``(schema, iterator of record batches)``.

    Local Parquet files (or a folder of them) are read with ``ParquetFile.iter_batches`` and
    local CSV with pyarrow's streaming CSV reader, so memory stays flat in the number of rows;
    other URIs (``gs://``) are read whole through :func:`refit.io.tables.read_table`.

    Raises:
        DataError: If the data cannot be read, naming the URI.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = uri[len("file://") :] if uri.startswith("file://") else uri
    lower = path.lower()
    is_local = "://" not in path
    try:
        if is_local and not Path(path).exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if is_local and (lower.endswith(".csv") or lower.endswith(".csv.gz")):
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24))
            schema = reader.schema

            def csv_batches() -> Iterator[pa.RecordBatch]:
                for batch in reader:
                    yield batch.select(list(columns)) if columns else batch

            return (
                schema
                if not columns
                else pa.schema([schema.field(c) for c in columns if c in schema.names]),
                csv_batches(),
            )
        if is_local:
            files = (
                sorted(str(p) for p in Path(path).rglob("*.parquet"))
                if Path(path).is_dir()
                else [path]
            )
            if not files:
                raise FileNotFoundError(f"no Parquet files under {path}")
            first = pq.ParquetFile(files[0], pre_buffer=False)
            schema = first.schema_arrow
            cols = None if columns is None else [c for c in columns if c in schema.names]

            def pq_batches() -> Iterator[pa.RecordBatch]:
                for file in files:
                    # pre_buffer off: pre-buffering reads whole row groups ahead and
                    # nearly doubled the peak memory of a streamed 1M x 25 window
                    pf = pq.ParquetFile(file, pre_buffer=False)
                    yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=cols)

            if cols is not None:
                schema = pa.schema([schema.field(c) for c in cols])
            return schema, pq_batches()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data at {uri}: {exc}") from None
    from refit.io.tables import read_table

    table = read_table(uri)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table.schema, iter(table.to_batches(BATCH_ROWS))


def profile_uri(uri: str, columns: Sequence[str] | None = None) -> Profile:
    """Profile a Parquet/CSV file, folder or URI in one streaming pass.

    Raises:
        DataError: If the data cannot be read, naming the URI.
    """
    schema, batches = iter_batches(uri, columns)
    builder = ProfileBuilder(schema, None, source=uri)
    try:
        for batch in batches:
            builder.update(batch)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data at {uri}: {exc}") from None
    return builder.finish()


def load_profile(uri: str) -> Profile:
    """Read a stored profile (JSON) from a path or URI.

    Raises:
        DataError: If it cannot be read. SchemaError: If it is not a current refit profile.
    """
    from refit.io.uri import read_bytes

    try:
        raw = read_bytes(uri)
    except Exception as exc:  # noqa: BLE001 - any read failure becomes a DataError naming the uri
        raise DataError(f"cannot read profile at {uri}: {exc}") from None
    return Profile.from_json(raw, where=f"profile {uri}")


def save_profile(profile: Profile, uri: str) -> None:
    """Write a profile as JSON to a path or URI."""
    from refit.io.uri import write_bytes

    write_bytes(uri, profile.to_json().encode("utf-8"))


def is_profile_file(uri: str) -> bool:
    """Whether ``uri`` looks like a stored profile (``.json``) rather than data."""
    return uri.lower().endswith(".json")
