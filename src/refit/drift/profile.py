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
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import SchemaError

#: Format version of stored profiles. Bump on any incompatible change.
PROFILE_VERSION = 1
#: Mantissa bits kept by the bucket grid (relative bucket width at most 2**-MANTISSA_BITS).
MANTISSA_BITS = 10
_SHIFT = 52 - MANTISSA_BITS
#: Numeric features with at most this many distinct values keep them exactly.
EXACT_LIMIT = 1000
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


def reduce_points(points: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        from refit.drift.accumulate import NumericAccumulator  # builds on this module

        acc = NumericAccumulator()
        acc.add(np.asarray(values, dtype=np.float64), missing)
        return acc.summary()

    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """The distribution as bucket keys and counts (exact values are bucketed)."""
        if not self.exact:
            return self.points, self.counts
        return reduce_points(bucket_keys(self.points), self.counts)

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
            points, counts = reduce_points(
                np.concatenate([self.points, other.points]),
                np.concatenate([self.counts, other.counts]),
            )
            if len(points) <= EXACT_LIMIT:
                out.points, out.counts = points, counts
                return out
        a_k, a_c = self.buckets()
        b_k, b_c = other.buckets()
        out.exact = False
        out.points, out.counts = reduce_points(
            np.concatenate([a_k, b_k]), np.concatenate([a_c, b_c])
        )
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
    _check_histogram(summary, where)
    if summary.count == 0:
        if not (math.isnan(summary.min) and math.isnan(summary.max)):
            raise SchemaError(f"{where}: min/max given for a feature with no finite values")
        return
    _check_range(summary, where)


def _check_histogram(summary: NumericSummary, where: str) -> None:
    """Histogram points strictly increasing, with one positive count each summing to ``count``."""
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


def _check_range(summary: NumericSummary, where: str) -> None:
    """``min <= max`` finite, ``m2`` and the mean possible, the distribution's ends at min/max."""
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
    points = summary.points
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
