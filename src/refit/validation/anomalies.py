"""Validate statistics against a schema (and reference statistics) into TFDV ``Anomalies``.

Checks, each reported under TFDV's reason type:

* empty dataset -> ``DATASET_LOW_NUM_EXAMPLES`` (``dataset_anomaly_info``, ``data_missing``);
* schema feature or required column absent -> ``SCHEMA_MISSING_COLUMN``;
* column absent from the schema -> ``SCHEMA_NEW_COLUMN`` (a renamed column gives one of each);
* type differs from the schema -> ``UNEXPECTED_DATA_TYPE`` (INT data under a FLOAT schema is
  accepted; all-null columns of Arrow type ``null`` carry no type and are not checked);
* present fraction below ``presence.min_fraction``, all values missing, or the missing fraction
  rising by more than ``missing_spike`` over the reference -> ``FEATURE_TYPE_LOW_FRACTION_PRESENT``;
* share of values outside the string domain above ``category_tolerance`` ->
  ``ENUM_TYPE_UNEXPECTED_STRING_VALUES``;
* numbers outside the schema's ``int_domain``/``float_domain`` (when a curated schema sets one),
  or outside the reference statistics' observed ``[min, max]`` widened on each side by
  ``range_tolerance`` times its width -> ``INT_TYPE_SMALL_INT``/``INT_TYPE_BIG_INT`` or
  ``FLOAT_TYPE_SMALL_FLOAT``/``FLOAT_TYPE_BIG_FLOAT``. Inferred schemas hold no ranges, so
  the range check needs ``reference_stats``. Booleans and temporal columns are not
  range-checked against the reference (time moves on); ``check_ranges=False`` turns the
  reference range check off (curated schema domains still apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.errors import DataError, SchemaError
from refit.validation.schema import infer_schema, schema_type_for, string_domain_of
from refit.validation.statistics import (
    INFINITE_STAT,
    FeatureType,
    arrow_type_of,
    common_stats,
    compute_statistics,
    feature_stats,
    is_temporal_type,
)

AnomalyType = anomalies_pb2.AnomalyInfo.Type
DATASET_KEY = "(dataset)"


@dataclass(frozen=True)
class ValidationOptions:
    """Tolerances of ``validate``.

    Attributes:
        category_tolerance: Share of non-missing values allowed outside a string domain.
        range_tolerance: Widening of the reference ``[min, max]`` on each side, as a fraction
            of its width (0.0: any value beyond the reference extremes is an anomaly).
        missing_spike: Absolute rise in the missing fraction over the reference allowed.
        required_columns: Columns that must be present (e.g. the target), schema or not.
        check_ranges: Compare numbers against the reference ``[min, max]`` at all (extra to
            the API contract). Extremes of heavy-tailed columns move from window to window,
            and a shift of the distribution is drift's business: set False (or a generous
            ``range_tolerance``) to leave ranges to curated schema domains.
    """

    category_tolerance: float = 0.01
    range_tolerance: float = 0.0
    missing_spike: float = 0.1
    required_columns: tuple[str, ...] = ()
    check_ranges: bool = True

    def __post_init__(self) -> None:
        for name in ("category_tolerance", "range_tolerance", "missing_spike"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value >= 0:
                raise SchemaError(f"validation option {name} must be a number >= 0, got {value!r}")
        if isinstance(self.required_columns, str):
            raise SchemaError(
                "validation option required_columns must be a sequence of names, "
                f"got the string {self.required_columns!r}"
            )
        object.__setattr__(self, "required_columns", tuple(self.required_columns))


class _Collector:
    def __init__(self, schema: schema_pb2.Schema) -> None:
        self.anomalies = anomalies_pb2.Anomalies()
        self.anomalies.baseline.CopyFrom(schema)

    def add(self, feature: str, kind: int, short: str, description: str) -> None:
        info = self.anomalies.anomaly_info[feature]
        if not info.path.step:
            info.path.step.append(feature)
            info.severity = anomalies_pb2.AnomalyInfo.ERROR
        for reason in info.reason:
            if reason.type == kind:  # one reason per kind: merge descriptions
                reason.description += f" {description}"
                break
        else:
            info.reason.add(type=kind, short_description=short, description=description)
        self._summarise(info)

    def add_dataset(self, kind: int, short: str, description: str) -> None:
        info = self.anomalies.dataset_anomaly_info
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.reason.add(type=kind, short_description=short, description=description)
        self._summarise(info)

    @staticmethod
    def _summarise(info: anomalies_pb2.AnomalyInfo) -> None:
        if len(info.reason) == 1:
            info.short_description = info.reason[0].short_description
            info.description = info.reason[0].description
        else:
            info.short_description = "Multiple errors"
            info.description = " ".join(r.description for r in info.reason)


def _fraction(value: float) -> str:
    return f"{value:.2%}"


def _check_type(
    out: _Collector,
    name: str,
    fstats: statistics_pb2.FeatureNameStatistics,
    feature: schema_pb2.Feature,
) -> bool:
    if arrow_type_of(fstats) == "null" or feature.type == schema_pb2.TYPE_UNKNOWN:
        return True
    actual = schema_type_for(fstats.type)
    expected = feature.type
    if actual == expected or (expected == schema_pb2.FLOAT and actual == schema_pb2.INT):
        return True
    expected_name = schema_pb2.FeatureType.Name(expected)
    actual_name = schema_pb2.FeatureType.Name(actual)
    out.add(
        name,
        AnomalyType.UNEXPECTED_DATA_TYPE,
        "Unexpected data type",
        f"Column {name!r} has type {actual_name} (Arrow {arrow_type_of(fstats) or '?'}); "
        f"the schema expects {expected_name}.",
    )
    return False


def _check_presence(
    out: _Collector,
    name: str,
    fstats: statistics_pb2.FeatureNameStatistics,
    feature: schema_pb2.Feature | None,
    ref: statistics_pb2.FeatureNameStatistics | None,
    num_examples: int,
    ref_examples: int,
    options: ValidationOptions,
) -> None:
    common = common_stats(fstats)
    present = common.num_non_missing
    kind = AnomalyType.FEATURE_TYPE_LOW_FRACTION_PRESENT
    if present == 0:
        out.add(
            name,
            kind,
            "Column has no values",
            f"Column {name!r} is missing in all {num_examples} rows.",
        )
        return
    fraction = present / num_examples
    if feature is not None and feature.HasField("presence"):
        min_fraction = feature.presence.min_fraction
        if fraction < min_fraction:
            out.add(
                name,
                kind,
                "Column dropped",
                f"Column {name!r} is present in {_fraction(fraction)} of rows; the schema "
                f"requires at least {_fraction(min_fraction)}.",
            )
            return
        if present < feature.presence.min_count:
            out.add(
                name,
                kind,
                "Column dropped",
                f"Column {name!r} has {present} values; the schema requires at least "
                f"{feature.presence.min_count}.",
            )
            return
    if ref is not None and ref_examples > 0:
        ref_missing = common_stats(ref).num_missing / ref_examples
        missing = common.num_missing / num_examples
        if missing - ref_missing > options.missing_spike + 1e-12:
            out.add(
                name,
                kind,
                "Missing values rose",
                f"Column {name!r} is missing in {_fraction(missing)} of rows against "
                f"{_fraction(ref_missing)} in the reference (allowed rise "
                f"{_fraction(options.missing_spike)}).",
            )


def _check_categories(
    out: _Collector,
    name: str,
    fstats: statistics_pb2.FeatureNameStatistics,
    domain: list[str],
    options: ValidationOptions,
) -> None:
    if not fstats.HasField("string_stats"):
        return
    sstats = fstats.string_stats
    present = sstats.common_stats.num_non_missing
    if not present:
        return
    allowed = set(domain)
    unseen = [
        (b.label, int(b.sample_count))
        for b in sstats.rank_histogram.buckets
        if b.label not in allowed
    ]
    unseen_count = sum(count for _, count in unseen)
    share = unseen_count / present
    if share > options.category_tolerance:
        shown = ", ".join(f"{label!r} ({count})" for label, count in unseen[:10])
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        out.add(
            name,
            AnomalyType.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
            "Unexpected string values",
            f"Column {name!r} has {len(unseen)} value(s) outside its domain in "
            f"{_fraction(share)} of non-missing rows (tolerance "
            f"{_fraction(options.category_tolerance)}): {shown}{more}.",
        )


def _range_kinds(fstats: statistics_pb2.FeatureNameStatistics) -> tuple[int, int]:
    if fstats.type == FeatureType.INT:
        return AnomalyType.INT_TYPE_SMALL_INT, AnomalyType.INT_TYPE_BIG_INT
    return AnomalyType.FLOAT_TYPE_SMALL_FLOAT, AnomalyType.FLOAT_TYPE_BIG_FLOAT


def _check_range(
    out: _Collector,
    name: str,
    fstats: statistics_pb2.FeatureNameStatistics,
    feature: schema_pb2.Feature | None,
    ref: statistics_pb2.FeatureNameStatistics | None,
    options: ValidationOptions,
) -> None:
    if not fstats.HasField("num_stats") or not fstats.num_stats.common_stats.num_non_missing:
        return
    low, high = fstats.num_stats.min, fstats.num_stats.max
    small, big = _range_kinds(fstats)
    infinite = next((c.num for c in fstats.custom_stats if c.name == INFINITE_STAT), 0.0)
    if infinite:
        out.add(
            name,
            AnomalyType.FLOAT_TYPE_HAS_INF,
            "Infinite values",
            f"Column {name!r} has {int(infinite)} infinite value(s) (+inf or -inf).",
        )
    if feature is not None:
        kind = feature.WhichOneof("domain_info")
        domain = (
            feature.int_domain
            if kind == "int_domain"
            else (feature.float_domain if kind == "float_domain" else None)
        )
        if domain is not None:
            if domain.HasField("min") and low < domain.min:
                out.add(
                    name,
                    small,
                    "Out-of-range values",
                    f"Column {name!r} has minimum {low:g} below the schema minimum {domain.min:g}.",
                )
            if domain.HasField("max") and high > domain.max:
                out.add(
                    name,
                    big,
                    "Out-of-range values",
                    f"Column {name!r} has maximum {high:g} above the schema maximum "
                    f"{domain.max:g}.",
                )
    arrow_type = arrow_type_of(fstats)
    if (
        ref is None
        or not options.check_ranges
        or not ref.HasField("num_stats")
        or not ref.num_stats.common_stats.num_non_missing
        or arrow_type == "bool"
        or is_temporal_type(arrow_type)
        or is_temporal_type(arrow_type_of(ref))
    ):
        return
    ref_low, ref_high = ref.num_stats.min, ref.num_stats.max
    slack = options.range_tolerance * (ref_high - ref_low)
    where = (
        f"the reference range [{ref_low:g}, {ref_high:g}] widened by "
        f"{options.range_tolerance:g} of its width to [{ref_low - slack:g}, "
        f"{ref_high + slack:g}]"
    )
    if low < ref_low - slack:
        out.add(
            name,
            small,
            "Out-of-range values",
            f"Column {name!r} has minimum {low:g}, below {where}.",
        )
    if high > ref_high + slack:
        out.add(
            name,
            big,
            "Out-of-range values",
            f"Column {name!r} has maximum {high:g}, above {where}.",
        )


def validate(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    *,
    reference_stats: statistics_pb2.DatasetFeatureStatisticsList | None = None,
    options: ValidationOptions = ValidationOptions(),
) -> anomalies_pb2.Anomalies:
    """Validate statistics against a schema and, optionally, reference statistics.

    See the module docstring for the checks. Reference statistics add the missing-fraction
    spike check and the out-of-range check (observed reference ``[min, max]`` widened by
    ``options.range_tolerance`` of its width).

    Args:
        stats: Statistics of the data to check (first dataset).
        schema: The expected schema (``anomalies.baseline`` gets a copy).
        reference_stats: Statistics of the reference data.
        options: Tolerances and required columns.

    Returns:
        TFDV ``Anomalies``: ``anomaly_info`` keyed by feature name, ``dataset_anomaly_info``
        for dataset-level problems; empty when the data is fine.

    Raises:
        DataError: ``stats`` holds no dataset.
        SchemaError: The schema references an undefined domain.
    """
    if not stats.datasets:
        raise DataError("cannot validate: the statistics hold no dataset")
    out = _Collector(schema)
    num_examples = stats.datasets[0].num_examples
    current = feature_stats(stats)
    reference = feature_stats(reference_stats) if reference_stats is not None else {}
    ref_examples = (
        reference_stats.datasets[0].num_examples if reference_stats is not None and reference else 0
    )
    expected = {f.name: f for f in schema.feature}

    if num_examples == 0:
        out.anomalies.data_missing = True
        out.add_dataset(
            AnomalyType.DATASET_LOW_NUM_EXAMPLES,
            "Low num examples in dataset",
            f"The dataset {stats.datasets[0].name!r} has 0 rows.",
        )

    _check_missing_columns(out, expected, current, options.required_columns)
    for name, fstats in current.items():
        feature = expected.get(name)
        if feature is None:
            out.add(
                name,
                AnomalyType.SCHEMA_NEW_COLUMN,
                "New column",
                f"Column {name!r} is in the data but not in the schema.",
            )
        if num_examples == 0:
            continue
        _check_feature(
            out,
            name,
            fstats,
            feature,
            reference.get(name),
            (num_examples, ref_examples),
            schema,
            options,
        )
    return out.anomalies


def _check_missing_columns(
    out: _Collector,
    expected: dict[str, schema_pb2.Feature],
    current: dict[str, statistics_pb2.FeatureNameStatistics],
    required_columns: tuple[str, ...],
) -> None:
    """Columns the schema declares, or the options require, that the data lacks."""
    for name in expected:
        if name not in current:
            out.add(
                name,
                AnomalyType.SCHEMA_MISSING_COLUMN,
                "Column dropped",
                f"Column {name!r} is in the schema but not in the data.",
            )
    for name in required_columns:
        if name not in current and name not in expected:
            out.add(
                name,
                AnomalyType.SCHEMA_MISSING_COLUMN,
                "Required column missing",
                f"Required column {name!r} is not in the data.",
            )
        elif name not in current:
            out.add(
                name,
                AnomalyType.SCHEMA_MISSING_COLUMN,
                "Required column missing",
                f"Column {name!r} is required.",
            )


def _check_feature(
    out: _Collector,
    name: str,
    fstats: statistics_pb2.FeatureNameStatistics,
    feature: schema_pb2.Feature | None,
    ref: statistics_pb2.FeatureNameStatistics | None,
    examples: tuple[int, int],
    schema: schema_pb2.Schema,
    options: ValidationOptions,
) -> None:
    """One column of a non-empty window: type, presence, categories and range.

    ``examples`` is ``(rows of the data, rows of the reference)``.
    """
    type_ok = True
    if feature is not None:
        type_ok = _check_type(out, name, fstats, feature)
    _check_presence(out, name, fstats, feature, ref, *examples, options)
    if not type_ok:
        return
    if ref is not None and ref.type != fstats.type and arrow_type_of(ref) != "null":
        ref = None  # a reference of another type says nothing about ranges
    if feature is not None:
        domain = string_domain_of(schema, feature)
        if domain is not None:
            _check_categories(out, name, fstats, domain, options)
    _check_range(out, name, fstats, feature, ref, options)


@dataclass
class ValidationResult:
    """Outcome of ``validate_table``.

    Attributes:
        anomalies: TFDV anomalies (empty when the data is fine).
        statistics: Statistics of the current data.
        schema: The schema validated against.
        reference_statistics: Statistics of the reference data, if any.
    """

    anomalies: anomalies_pb2.Anomalies
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema
    reference_statistics: statistics_pb2.DatasetFeatureStatisticsList | None = field(default=None)

    @property
    def ok(self) -> bool:
        """True when no anomaly was found."""
        return not self.summary()

    def summary(self) -> list[dict[str, Any]]:
        """List the anomalies, one entry per reason.

        Returns:
            Dicts with ``feature`` (``"(dataset)"`` for dataset-level ones), ``kind`` (TFDV
            reason type name) and ``description``; dataset-level first, then by feature.
        """
        rows: list[dict[str, Any]] = []
        for reason in self.anomalies.dataset_anomaly_info.reason:
            rows.append(
                {
                    "feature": DATASET_KEY,
                    "kind": AnomalyType.Name(reason.type),
                    "description": reason.description,
                }
            )
        for name in sorted(self.anomalies.anomaly_info):
            for reason in self.anomalies.anomaly_info[name].reason:
                rows.append(
                    {
                        "feature": name,
                        "kind": AnomalyType.Name(reason.type),
                        "description": reason.description,
                    }
                )
        return rows


def validate_table(
    current: pa.Table,
    reference: pa.Table | None,
    *,
    schema: schema_pb2.Schema | None = None,
    options: ValidationOptions = ValidationOptions(),
) -> ValidationResult:
    """Compute statistics of a table and validate them.

    The schema is the one given, else inferred from the reference, else from the current data
    (first run). With a reference, its statistics drive the spike and range checks.

    Args:
        current: Data to check.
        reference: Reference data (e.g. the last training snapshot), or None.
        schema: Curated schema, or None to infer one.
        options: Tolerances and required columns.

    Returns:
        The result (anomalies, statistics, schema, reference statistics).

    Raises:
        DataError: An input is not a pyarrow Table.
    """
    stats = compute_statistics(current, name="current")
    ref_stats = compute_statistics(reference, name="reference") if reference is not None else None
    if schema is None:
        schema = infer_schema(ref_stats if ref_stats is not None else stats)
    anomalies = validate(stats, schema, reference_stats=ref_stats, options=options)
    _check_numeric_like(current, schema, anomalies)
    return ValidationResult(anomalies, stats, schema, ref_stats)


def _check_numeric_like(
    table: pa.Table, schema: schema_pb2.Schema, anomalies: anomalies_pb2.Anomalies
) -> None:
    """Report string columns that are numeric columns holding a few stray strings.

    A column whose values are nearly all numbers (``"1.5"``, ``"42"``) but holds a few others
    (``"?"``, ``"unknown"``) is reported as ``FLOAT_TYPE_STRING_NOT_FLOAT`` with sample values:
    training refuses such a column (see :mod:`refit.training.features`), and a categorical
    reading of it would be silently wrong.
    """
    from refit.training.features import NUMERIC_LIKE_SHARE, numeric_like_strings

    out = _Collector(schema)
    out.anomalies = anomalies
    for name in table.column_names:
        column = table.column(name)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        stray = numeric_like_strings(column)
        if stray is None:
            continue
        bad, present, samples = stray
        out.add(
            name,
            AnomalyType.FLOAT_TYPE_STRING_NOT_FLOAT,
            "Numeric column with non-numeric values",
            f"Column {name!r} looks numeric ({present - bad} of {present} values, at least "
            f"{NUMERIC_LIKE_SHARE:.0%}, are numbers) but holds {bad} non-numeric value(s), "
            f"e.g. {samples}.",
        )


def anomalies_to_text(anomalies: anomalies_pb2.Anomalies) -> str:
    """Serialise anomalies to protobuf text format (as TFDV's ``write_anomalies_text``).

    Args:
        anomalies: The anomalies.

    Returns:
        Text format.
    """
    from google.protobuf import text_format

    return text_format.MessageToString(anomalies)


def anomalies_from_text(text: str) -> anomalies_pb2.Anomalies:
    """Parse anomalies from protobuf text format.

    Args:
        text: Text format.

    Returns:
        The anomalies.

    Raises:
        SchemaError: The text is not valid.
    """
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, anomalies_pb2.Anomalies())
    except text_format.ParseError as exc:
        raise SchemaError(f"invalid anomalies text: {exc}") from exc
