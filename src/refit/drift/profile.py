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
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, SchemaError
from refit.io.tables import check_schema

#: Format version of stored profiles. Bump on any incompatible change.
PROFILE_VERSION = 1
#: Mantissa bits kept by the bucket grid (relative bucket width at most 2**-MANTISSA_BITS).
MANTISSA_BITS = 10
_SHIFT = 52 - MANTISSA_BITS
#: Numeric features with at most this many distinct values keep them exactly.
EXACT_LIMIT = 1000
#: Rows per batch when streaming files.
BATCH_ROWS = 131_072
#: Most rows a stored profile may claim (10^15): more is a forged or corrupt profile.
MAX_PROFILE_ROWS = 10**15
#: Feature types a profile holds.
FEATURE_TYPES = ("numeric", "categorical", "unsupported")


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
        acc = _NumericAccumulator()
        acc.add(np.asarray(values, dtype=np.float64), missing)
        return acc.summary()

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
            count=_count(data["count"], "count"),
            missing=_count(data["missing"], "missing"),
            pos_inf=_count(data["pos_inf"], "pos_inf"),
            neg_inf=_count(data["neg_inf"], "neg_inf"),
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
        counts = {str(k): _count(v, f"count of {k!r}") for k, v in dict(data["counts"]).items()}
        return cls(counts, _count(data["missing"], "missing"))


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
            # (ignore below) same type (checked above): both summaries are of one kind
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
                try:
                    features[str(name)] = _feature_from_dict(str(name), f)
                except (KeyError, TypeError, ValueError, zlib.error) as exc:
                    raise SchemaError(
                        f"{where}: feature {str(name)!r} is malformed: {_reason(exc)}"
                    ) from None
            profile = cls(
                rows=_count(data["rows"], f"{where}: rows"),
                features=features,
                source=str(data.get("source", "")),
            )
        except SchemaError:
            raise
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise SchemaError(f"{where} is malformed: {_reason(exc)}") from None
        check_profile(profile, where)
        return profile

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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SchemaError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} is missing"
    return f"{type(exc).__name__}: {exc}"


def _feature_from_dict(name: str, data: Mapping[str, Any]) -> FeatureProfile:
    ftype = str(data["type"])
    if ftype not in FEATURE_TYPES:
        raise SchemaError(f"type {ftype!r} is not one of {list(FEATURE_TYPES)}")
    raw = data["summary"]
    summary: Summary | None
    if raw is None or ftype == "unsupported":
        summary = None
    elif ftype == "numeric":
        summary = NumericSummary.from_dict(raw)
    else:
        summary = CategoricalSummary.from_dict(raw)
    return FeatureProfile(name, ftype, str(data["arrow_type"]), summary)


def _count(value: Any, what: str) -> int:
    """A stored count: an integer in ``[0, MAX_PROFILE_ROWS]`` (JSON floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SchemaError(f"{what} must be an integer count, got {value!r}")
    if not 0 <= value <= MAX_PROFILE_ROWS:
        raise SchemaError(f"{what} is {value}; a count must be between 0 and {MAX_PROFILE_ROWS}")
    return int(value)


def _check_numeric(summary: NumericSummary, rows: int, where: str) -> None:
    for name in ("count", "missing", "pos_inf", "neg_inf"):
        _count(getattr(summary, name), f"{where}: {name}")
    if summary.rows != rows:
        raise SchemaError(
            f"{where}: count + missing + pos_inf + neg_inf is {summary.rows}, but the profile "
            f"has {rows} rows"
        )
    points, counts = summary.points, summary.counts
    if len(points) != len(counts):
        raise SchemaError(f"{where}: {len(points)} points but {len(counts)} counts")
    if len(counts) and int(counts.min()) <= 0:
        raise SchemaError(f"{where}: histogram counts must be positive, found {int(counts.min())}")
    total = int(counts.sum(dtype=np.int64)) if len(counts) else 0
    if total != summary.count:
        raise SchemaError(f"{where}: histogram counts sum to {total}, but count is {summary.count}")
    if len(points) > 1 and not np.all(np.diff(points) > 0):
        raise SchemaError(f"{where}: histogram points are not strictly increasing")
    if summary.count == 0:
        if not (math.isnan(summary.min) and math.isnan(summary.max)):
            raise SchemaError(f"{where}: min/max given for a feature with no finite values")
        return
    lo, hi = summary.min, summary.max
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise SchemaError(f"{where}: min {lo!r} and max {hi!r} are not finite with min <= max")
    # sum and m2 overflow to inf/NaN for values near the float64 limits: only what cannot
    # come from the data is refused (a negative m2, a finite mean outside [min, max]).
    if summary.m2 < 0:
        raise SchemaError(f"{where}: m2 {summary.m2!r} is negative")
    mean = summary.mean
    slack = 1e-6 * max(abs(lo), abs(hi))  # rounding of a long sum
    if math.isfinite(mean) and not lo - slack <= mean <= hi + slack:
        raise SchemaError(f"{where}: mean {mean!r} lies outside [min {lo}, max {hi}]")
    if summary.exact:
        if not np.all(np.isfinite(points)) or points[0] < lo or points[-1] > hi:
            raise SchemaError(f"{where}: exact values lie outside [min {lo}, max {hi}]")
        if points[0] != lo or points[-1] != hi:
            raise SchemaError(f"{where}: the smallest/largest exact values are not min/max")
    else:
        low, high = bucket_bounds(points[[0, -1]])
        if not (low[0] <= lo <= high[0] and low[1] <= hi <= high[1]):
            raise SchemaError(f"{where}: min/max do not fall in the first/last histogram buckets")


def check_profile(profile: Profile, where: str = "profile") -> None:
    """Check a profile's internal consistency (see :meth:`Profile.from_dict`).

    Every count is an integer in ``[0, MAX_PROFILE_ROWS]``; each feature's counts add up to the
    profile's rows; histogram counts are positive and sum to the feature's count; points are
    strictly increasing; ``min <= max``, both finite, with the mean between them and the exact
    values or the end buckets matching them; ``m2 >= 0``. A forged profile (negative counts,
    10^30 rows, a histogram that does not match its count) would otherwise forge the drift
    result.

    Args:
        profile: The profile.
        where: What it is, for the message (e.g. ``"profile ref.json"``).

    Raises:
        SchemaError: The first inconsistency, naming ``where``, the feature and the field.
    """
    rows = _count(profile.rows, f"{where}: rows")
    for name, feature in profile.features.items():
        at = f"{where}: feature {name!r}"
        if feature.type not in FEATURE_TYPES:
            raise SchemaError(f"{at}: type {feature.type!r} is not one of {list(FEATURE_TYPES)}")
        summary = feature.summary
        if feature.type == "unsupported":
            continue
        if feature.type == "numeric" and isinstance(summary, NumericSummary):
            _check_numeric(summary, rows, at)
        elif feature.type == "categorical" and isinstance(summary, CategoricalSummary):
            _count(summary.missing, f"{at}: missing")
            for label, value in summary.counts.items():
                _count(value, f"{at}: count of {label!r}")
                if value == 0:
                    raise SchemaError(f"{at}: category {label!r} has count 0")
            if summary.rows != rows:
                raise SchemaError(
                    f"{at}: category counts + missing is {summary.rows}, but the profile has "
                    f"{rows} rows"
                )
        else:
            raise SchemaError(f"{at}: a {feature.type} feature needs a {feature.type} summary")


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
#
# Streaming accumulation. A column is summarised batch by batch into an accumulator whose size
# depends on the data's spread (bucket grid span, distinct values), never on the number of rows.
# Values come out of Arrow buffers with numpy directly: ``Array.to_numpy`` (even zero-copy) makes
# pyarrow import pandas (0.2 s with cached bytecode, a second without, ~50 MB), which the drift
# path never needs.

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
            self.keys, self.counts = _reduce(
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


class _NumericAccumulator:
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
            points, counts = _reduce(
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


class _CategoricalAccumulator:
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


def _pool() -> ThreadPoolExecutor:
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
        self._acc: dict[str, _NumericAccumulator | _CategoricalAccumulator] = {}
        for name in names:
            arrow_type = schema.field(name).type
            ftype = feature_type(arrow_type) or "unsupported"
            self._features[name] = FeatureProfile(name, ftype, str(arrow_type), None)
            if ftype == "numeric":
                self._acc[name] = _NumericAccumulator()
            elif ftype == "categorical":
                self._acc[name] = _CategoricalAccumulator()

    @property
    def profiled_columns(self) -> list[str]:
        """Columns with a supported type (the ones that get a summary)."""
        return list(self._acc)

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch of rows."""
        self.rows += batch.num_rows
        names = self.profiled_columns
        if len(names) > 1 and batch.num_rows >= 10_000:
            list(_pool().map(lambda n: self.update_column(n, batch.column(n)), names))
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
            check_schema(schema, uri, csv=True)

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
            check_schema(schema, uri)
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


@contextmanager
def streaming_memory_pool() -> Iterator[None]:
    """Make Arrow allocate from its jemalloc pool while streaming, where pyarrow has one.

    pyarrow's default pool, mimalloc, kept growing over a long stream of short-lived batches
    although Arrow's own count of allocated bytes stayed at a few MB: peak RSS of a streamed
    10M-row window was 1.4x the 1M-row one; with jemalloc it was flat. Buffers remember their pool,
    so switching the default for the duration is safe. Nothing changes when
    ``ARROW_DEFAULT_MEMORY_POOL`` is set (the user chose) or jemalloc is not built in.
    """
    previous = pa.default_memory_pool()
    pool = None
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and previous.backend_name != "jemalloc":
        try:
            pool = pa.jemalloc_memory_pool()
        except NotImplementedError:
            pool = None
    if pool is None:
        yield
        return
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _is_csv(path: str) -> bool:
    lower = path.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def _local_parquet_files(path: str) -> list[str]:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if not Path(path).is_dir():
        return [path]
    files = sorted(str(p) for p in Path(path).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {path}")
    return files


def _profile_parquet_by_column(
    uri: str,
    files: list[str],
    columns: Sequence[str] | None,
    row_groups: Sequence[Sequence[int] | None] | None = None,
) -> Profile:
    """Profile local Parquet files one column at a time.

    Each column is streamed on its own (``iter_batches`` over that column only, string columns
    read dictionary-encoded), columns in parallel on the thread pool. Only the columns being
    read are in memory, one batch and one column chunk each, so memory is flat in rows and in
    columns; reading whole record batches held every column's chunk buffers at once.
    ``row_groups`` (one entry per file, None: all of it) limits each file to those row groups
    (a shard of a window, :mod:`refit.drift.shards`).
    """
    import pyarrow.parquet as pq

    metadata = [pq.ParquetFile(f, pre_buffer=False).metadata for f in files]
    for meta in metadata:
        check_schema(meta.schema.to_arrow_schema(), uri)
    groups = list(row_groups) if row_groups is not None else [None] * len(files)
    schema = metadata[0].schema.to_arrow_schema()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
    builder = ProfileBuilder(schema, None, source=uri)
    builder.rows = sum(
        m.num_rows if g is None else sum(m.row_group(i).num_rows for i in g)
        for m, g in zip(metadata, groups, strict=True)
    )

    def one(name: str) -> None:
        for file, meta, group in zip(files, metadata, groups, strict=True):
            file_schema = meta.schema.to_arrow_schema()
            if name not in file_schema.names:
                raise DataError(f"cannot read data at {uri}: column {name!r} is missing in {file}")
            arrow_type = file_schema.field(name).type
            as_dictionary = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            reader = pq.ParquetFile(
                file,
                metadata=meta,
                pre_buffer=False,
                read_dictionary=[name] if as_dictionary else None,
            )
            for batch in reader.iter_batches(
                batch_size=BATCH_ROWS, row_groups=group, columns=[name], use_threads=False
            ):
                builder.update_column(name, batch.column(0))

    names = builder.profiled_columns
    if len(names) > 1:
        list(_pool().map(one, names))
    else:
        for name in names:
            one(name)
    return builder.finish()


def profile_uri(uri: str, columns: Sequence[str] | None = None) -> Profile:
    """Profile a Parquet/CSV file, folder or URI in one streaming pass.

    Local Parquet is read one column at a time in batches of :data:`BATCH_ROWS` rows (columns in
    parallel), local CSV with pyarrow's streaming reader; memory is flat in the number of rows.
    ``gs://`` Parquet is first downloaded in chunks to a temporary folder (disk, not memory, holds
    it) and then read the same way; ``gs://`` CSV is read whole (see :func:`iter_batches`).

    Raises:
        DataError: If the data cannot be read, naming the URI.
    """
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    try:
        with streaming_memory_pool():
            if "://" not in path and not _is_csv(path):
                return _profile_parquet_by_column(uri, _local_parquet_files(path), columns)
            if uri.startswith("gs://") and not _is_csv(path):
                import tempfile

                from refit.io.tables import download_parquet

                with tempfile.TemporaryDirectory(prefix="refit-profile-") as folder:
                    files = download_parquet(uri, folder)
                    return _profile_parquet_by_column(uri, files, columns)
            schema, batches = iter_batches(uri, columns)
            builder = ProfileBuilder(schema, None, source=uri)
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
    except Exception as exc:  # any read failure becomes a DataError naming the uri
        raise DataError(f"cannot read profile at {uri}: {exc}") from None
    return Profile.from_json(raw, where=f"profile {uri}")


def save_profile(profile: Profile, uri: str) -> None:
    """Write a profile as JSON to a path or URI."""
    from refit.io.uri import write_bytes

    write_bytes(uri, profile.to_json().encode("utf-8"))


#: How a stored profile begins (:meth:`Profile.to_json` writes ``kind`` first).
_PROFILE_HEAD = re.compile(rb'\s*\{\s*"kind"\s*:\s*"refit\.drift\.profile"')


def is_profile_file(uri: str) -> bool:
    """Whether ``uri`` holds a stored profile rather than data, by its content, not its name.

    A profile is a JSON object whose first key is ``"kind": "refit.drift.profile"`` (what
    :func:`save_profile` writes); only its first bytes are read. Parquet and CSV never begin
    so, whatever the file is called.
    """
    from refit.io.uri import read_head

    return bool(_PROFILE_HEAD.match(read_head(uri, 256)))
