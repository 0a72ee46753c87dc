"""Schema inference from statistics, and the schema's text format (TFDV's ``schema.pbtxt``)."""

from __future__ import annotations

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
        SchemaError: The text is not a valid schema.
    """
    try:
        return text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise SchemaError(f"invalid schema text: {exc}") from exc
