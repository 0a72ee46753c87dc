"""Schema inference from statistics, and the schema's text format (TFDV's ``schema.pbtxt``)."""

from __future__ import annotations

import math

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from refit.errors import SchemaError
from refit.validation.statistics import (
    FeatureType,
    arrow_type_of,
    common_stats,
    feature_name,
)

MAX_STRING_DOMAIN_SIZE = 100

_SCHEMA_TYPE = {
    FeatureType.INT: schema_pb2.INT,
    FeatureType.FLOAT: schema_pb2.FLOAT,
    FeatureType.STRING: schema_pb2.BYTES,
    FeatureType.BYTES: schema_pb2.BYTES,
    FeatureType.STRUCT: schema_pb2.STRUCT,
}


def schema_type_for(stats_type: int) -> int:
    """Map a statistics feature type to the schema's feature type (STRING -> BYTES, as TFDV).

    Args:
        stats_type: ``FeatureNameStatistics.Type`` value.

    Returns:
        ``schema_pb2.FeatureType`` value.
    """
    return _SCHEMA_TYPE.get(stats_type, schema_pb2.TYPE_UNKNOWN)


def infer_schema(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    *,
    max_string_domain_size: int = MAX_STRING_DOMAIN_SIZE,
) -> schema_pb2.Schema:
    """Infer a schema from statistics, as TFDV's ``infer_schema`` does.

    Per feature: type (INT, FLOAT or BYTES), ``presence`` (``min_fraction`` 1.0 when the feature
    had no missing values, else only ``min_count`` 1), ``value_count`` 1..1, and for string
    features with at most ``max_string_domain_size`` distinct values a top-level
    ``string_domain`` (named after the feature) listing them. Numeric ranges are not put in the
    schema: out-of-range checks compare against reference statistics (see ``validate``).

    Args:
        stats: Statistics (the first dataset is used).
        max_string_domain_size: Largest number of distinct values that makes a categorical
            domain.

    Returns:
        The schema.

    Raises:
        SchemaError: ``stats`` holds no dataset.
    """
    if not stats.datasets:
        raise SchemaError("cannot infer a schema: the statistics hold no dataset")
    dataset = stats.datasets[0]
    schema = schema_pb2.Schema()
    for fstats in dataset.features:
        name = feature_name(fstats)
        feature = schema.feature.add(name=name, type=schema_type_for(fstats.type))
        common = common_stats(fstats)
        if common.num_missing == 0 and common.num_non_missing > 0:
            feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.value_count.min = 1
        feature.value_count.max = 1
        if arrow_type_of(fstats) == "bool":
            feature.bool_domain.SetInParent()
            continue
        if fstats.type == FeatureType.STRING and fstats.HasField("string_stats"):
            sstats = fstats.string_stats
            if (
                0 < sstats.unique <= max_string_domain_size
                and len(sstats.rank_histogram.buckets) >= sstats.unique
            ):
                domain = schema.string_domain.add(name=name)
                domain.value.extend(sorted(b.label for b in sstats.rank_histogram.buckets))
                feature.domain = name
    return schema


def string_domain_of(schema: schema_pb2.Schema, feature: schema_pb2.Feature) -> list[str] | None:
    """Return a feature's allowed string values (inline or named domain), or None.

    Args:
        schema: The schema holding named domains.
        feature: The feature.

    Returns:
        The values, or None when the feature has no string domain.

    Raises:
        SchemaError: The feature names a domain the schema does not define.
    """
    kind = feature.WhichOneof("domain_info")
    if kind == "string_domain":
        return list(feature.string_domain.value)
    if kind == "domain":
        for domain in schema.string_domain:
            if domain.name == feature.domain:
                return list(domain.value)
        raise SchemaError(
            f"feature {feature.name!r} names string domain {feature.domain!r}, "
            "which the schema does not define"
        )
    return None


def schema_to_text(schema: schema_pb2.Schema) -> str:
    """Serialise a schema to protobuf text format (TFDV's ``schema.pbtxt``).

    Args:
        schema: The schema.

    Returns:
        Text format.
    """
    return text_format.MessageToString(schema)


def schema_from_text(text: str) -> schema_pb2.Schema:
    """Parse a schema from protobuf text format.

    Args:
        text: Text format.

    Returns:
        The schema.

    Raises:
        SchemaError: The text is not a valid schema, or not a consistent one (see
            :func:`check_schema`).
    """
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise SchemaError(f"invalid schema text: {exc}") from exc
    return check_schema(schema)


def check_schema(schema: schema_pb2.Schema, where: str = "schema") -> schema_pb2.Schema:
    """Check a parsed schema's internal consistency.

    Feature names are distinct; ``presence.min_fraction`` lies in ``[0, 1]``; ``value_count``,
    ``int_domain`` and ``float_domain`` have ``min <= max`` (float bounds not NaN); a named
    string domain exists and lists distinct values; a ``drift_comparator``/``skew_comparator``
    threshold is a finite number >= 0. Every reader of a schema file calls this after parsing.

    Args:
        schema: The parsed schema.
        where: What it is, for the message (e.g. ``"schema schema.pbtxt"``).

    Returns:
        The same schema.

    Raises:
        SchemaError: The first inconsistency, naming ``where``, the feature and the field.
    """
    seen: set[str] = set()
    domains = {d.name for d in schema.string_domain}
    for domain in schema.string_domain:
        values = list(domain.value)
        if len(set(values)) != len(values):
            dupes = sorted({v for v in values if values.count(v) > 1})[:5]
            raise SchemaError(f"{where}: string_domain {domain.name!r} repeats value(s) {dupes}")
    for feature in schema.feature:
        at = f"{where}: feature {feature.name!r}"
        if not feature.name:
            raise SchemaError(f"{where}: a feature has no name")
        if feature.name in seen:
            raise SchemaError(f"{at} is declared twice")
        seen.add(feature.name)
        _check_counts(feature, at)
        _check_domain(feature, at, domains)
        _check_comparators(feature, at)
    return schema


def _check_counts(feature: schema_pb2.Feature, at: str) -> None:
    """``presence`` and ``value_count`` of a schema feature."""
    presence = feature.presence
    if presence.HasField("min_fraction") and not 0.0 <= presence.min_fraction <= 1.0:
        raise SchemaError(f"{at}: presence.min_fraction {presence.min_fraction} is not in [0, 1]")
    if presence.min_count < 0:
        raise SchemaError(f"{at}: presence.min_count {presence.min_count} is negative")
    count = feature.value_count
    if count.HasField("max") and count.min > count.max:
        raise SchemaError(f"{at}: value_count min {count.min} > max {count.max}")


def _check_domain(feature: schema_pb2.Feature, at: str, domains: set[str]) -> None:
    """A schema feature's domain: ordered bounds, a defined named domain, distinct values."""
    kind = feature.WhichOneof("domain_info")
    if kind == "int_domain":
        d = feature.int_domain
        if d.HasField("min") and d.HasField("max") and d.min > d.max:
            raise SchemaError(f"{at}: int_domain min {d.min} > max {d.max}")
    elif kind == "float_domain":
        _check_float_domain(feature.float_domain, at)
    elif kind == "domain" and feature.domain not in domains:
        raise SchemaError(
            f"{at}: names string domain {feature.domain!r}, which the schema does not define"
        )
    elif kind == "string_domain":
        values = list(feature.string_domain.value)
        if len(set(values)) != len(values):
            raise SchemaError(f"{at}: string_domain repeats values")


def _check_float_domain(f: schema_pb2.FloatDomain, at: str) -> None:
    for bound in ("min", "max"):
        if f.HasField(bound) and math.isnan(getattr(f, bound)):
            raise SchemaError(f"{at}: float_domain {bound} is NaN")
    if f.HasField("min") and f.HasField("max") and f.min > f.max:
        raise SchemaError(f"{at}: float_domain min {f.min} > max {f.max}")


def _check_comparators(feature: schema_pb2.Feature, at: str) -> None:
    """Drift and skew comparators' thresholds: finite numbers >= 0."""
    for which in ("drift_comparator", "skew_comparator"):
        if not feature.HasField(which):
            continue
        comparator = getattr(feature, which)
        for norm in ("infinity_norm", "jensen_shannon_divergence", "normalized_abs_difference"):
            if not (hasattr(comparator, norm) and comparator.HasField(norm)):
                continue
            threshold = getattr(comparator, norm).threshold
            if not (math.isfinite(threshold) and threshold >= 0):
                raise SchemaError(
                    f"{at}: {which}.{norm}.threshold {threshold} must be a finite number >= 0"
                )


def check_statistics(
    stats: statistics_pb2.DatasetFeatureStatisticsList, where: str = "statistics"
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Check parsed statistics' internal consistency.

    Per dataset: ``num_examples`` is at most 10^15; per feature: missing and non-missing counts
    at most ``num_examples``, ``min <= max`` (not NaN), ``mean`` finite and between them,
    histogram buckets ordered with ``low <= high`` and non-negative sample counts whose sum does
    not exceed the number of values, top-value/rank frequencies non-negative. A forged or corrupt
    statistics file would otherwise forge the validation result.

    Args:
        stats: Parsed statistics.
        where: What it is, for the message.

    Returns:
        The same statistics.

    Raises:
        SchemaError: The first inconsistency, naming ``where``, the feature and the field.
    """
    limit = 10**15
    for dataset in stats.datasets:
        n = dataset.num_examples
        if not 0 <= n <= limit:
            raise SchemaError(f"{where}: num_examples {n} is not in [0, {limit}]")
        for fstats in dataset.features:
            _check_feature_stats(fstats, n, f"{where}: feature {feature_name(fstats)!r}")
    return stats


def _check_feature_stats(fstats: statistics_pb2.FeatureNameStatistics, n: int, at: str) -> None:
    """One feature's statistics in a dataset of ``n`` examples."""
    common = common_stats(fstats)
    slack = max(n, 1) * 1e-9 + 1e-6  # weighted statistics are floats
    for label, value in (
        ("num_missing", common.num_missing),
        ("num_non_missing", common.num_non_missing),
    ):
        if value > n + slack:
            raise SchemaError(f"{at}: {label} {value} exceeds num_examples {n}")
    values = max(common.num_non_missing, 1) * max(common.max_num_values, 1)
    if fstats.HasField("num_stats"):
        s = fstats.num_stats
        if math.isnan(s.min) or math.isnan(s.max) or s.min > s.max:
            raise SchemaError(f"{at}: min {s.min} and max {s.max} are not ordered")
        if s.std_dev < 0 or math.isnan(s.std_dev):
            raise SchemaError(f"{at}: std_dev {s.std_dev} is negative or NaN")
        for histogram in s.histograms:
            _check_histogram(histogram, values, at)
    if fstats.HasField("string_stats"):
        s2 = fstats.string_stats
        for bucket in s2.top_values:
            if bucket.frequency < 0:
                raise SchemaError(f"{at}: top value {bucket.value!r} has a negative count")
        _check_histogram(s2.rank_histogram, values, at, ordered=False)


def _check_histogram(histogram: object, values: float, at: str, *, ordered: bool = True) -> None:
    # (ignore below) a TFMD Histogram proto; tensorflow_metadata ships no types
    buckets = list(histogram.buckets)  # type: ignore[attr-defined]
    total = 0.0
    previous = -math.inf
    for bucket in buckets:
        count = bucket.sample_count
        if not (count >= 0 and math.isfinite(count)):
            raise SchemaError(f"{at}: a histogram bucket has sample_count {count}")
        total += count
        if ordered:
            if bucket.low_value > bucket.high_value or bucket.low_value < previous:
                raise SchemaError(f"{at}: histogram buckets are not ordered")
            previous = bucket.low_value
    if total > values * (1 + 1e-6) + 1:
        raise SchemaError(
            f"{at}: histogram sample counts sum to {total:g}, more than the {values:g} values"
        )
