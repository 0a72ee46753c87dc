"""TFDV schemas' drift comparators: read as refit drift tests, drift written as TFDV Anomalies.

refit's native engine honours them (:func:`refit.validation.engines.validate_native`, and
``refit drift --tfdv-schema``); TFDV itself is not involved (that engine is :mod:`refit.tfdv`).

Reading: each ``feature { drift_comparator { ... } }`` of a TFDV ``Schema`` (text proto) sets
that feature's test and threshold:

* ``infinity_norm { threshold: t }`` -> refit's ``"linf"`` test with threshold ``t``
  (categorical features, as in TFDV);
* ``jensen_shannon_divergence { threshold: t }`` -> refit's ``"jensenshannon"`` test. TFDV's
  threshold bounds the *divergence* (base 2); refit's statistic is the *distance*, its square
  root, so the threshold becomes ``sqrt(t)`` and the Anomalies carry the divergence again.
  Numeric features are binned at the reference's deciles (TFDV uses its histogram buckets).

``normalized_abs_difference`` has no refit equivalent and is refused with a
:class:`~refit.errors.SchemaError` naming the feature.

Writing: :func:`to_anomalies` builds ``anomalies_pb2.Anomalies`` with one ``drift_skew_info``
per feature checked with a TFDV comparator (``L_INFTY`` / ``JENSEN_SHANNON_DIVERGENCE``
measurements with value and threshold) and, for those that drifted, an ``anomaly_info`` entry
with TFDV's reason type (``COMPARATOR_L_INFTY_HIGH`` /
``COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH``), so tools that read TFDV's output read refit's.
"""

from __future__ import annotations

import math

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from refit.drift.result import DriftResult
from refit.errors import DataError, SchemaError


def read_schema(uri: str) -> schema_pb2.Schema:
    """Read a TFDV schema (text proto) from a path or URI.

    Raises:
        DataError: If it cannot be read. SchemaError: If it does not parse.
    """
    from refit.io.uri import read_bytes

    try:
        text = read_bytes(uri).decode("utf-8")
    except Exception as exc:  # any read failure becomes a DataError naming the uri
        raise DataError(f"cannot read TFDV schema at {uri}: {exc}") from None
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise SchemaError(f"TFDV schema {uri} does not parse: {exc}") from None
    from refit.validation.schema import check_schema

    return check_schema(schema, f"TFDV schema {uri}")


def comparators(schema: schema_pb2.Schema) -> tuple[dict[str, str], dict[str, float]]:
    """Tests and thresholds per feature from the schema's ``drift_comparator`` entries.

    Returns:
        ``(tests, thresholds)`` keyed by feature name, for :func:`refit.drift.detect_drift`.

    Raises:
        SchemaError: A comparator refit cannot honour, or a threshold that is not > 0.
    """
    tests: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for feature in schema.feature:
        if not feature.HasField("drift_comparator"):
            continue
        comparator = feature.drift_comparator
        if comparator.HasField("normalized_abs_difference"):
            raise SchemaError(
                f"feature {feature.name!r}: drift_comparator normalized_abs_difference has no "
                "refit equivalent; use infinity_norm or jensen_shannon_divergence"
            )
        if comparator.HasField("infinity_norm"):
            tests[feature.name] = "linf"
            thresholds[feature.name] = _positive(comparator.infinity_norm.threshold, feature.name)
        elif comparator.HasField("jensen_shannon_divergence"):
            tests[feature.name] = "jensenshannon"
            value = _positive(comparator.jensen_shannon_divergence.threshold, feature.name)
            thresholds[feature.name] = math.sqrt(value)
    return tests, thresholds


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise SchemaError(
            f"feature {name!r}: drift_comparator threshold must be > 0, got {value} "
            "(TFDV's default 0 would flag every feature)"
        )
    return float(value)


def to_anomalies(
    result: DriftResult, schema: schema_pb2.Schema | None = None
) -> anomalies_pb2.Anomalies:
    """Drift as TFDV ``Anomalies`` (``drift_skew_info`` and ``anomaly_info``)."""
    anomalies = anomalies_pb2.Anomalies()
    if schema is not None:
        anomalies.baseline.CopyFrom(schema)
    anomalies.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    measurement_type = anomalies_pb2.DriftSkewInfo.Measurement
    for feature in result.sorted_features():
        if not feature.comparable or feature.test not in ("linf", "jensenshannon"):
            continue
        info = anomalies.drift_skew_info.add()
        info.path.step.append(feature.name)
        m = info.drift_measurements.add()
        if feature.test == "linf":
            m.type, m.value, m.threshold = (
                measurement_type.L_INFTY,
                feature.statistic,
                feature.threshold,
            )
            reason_type = anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH
            label = "Linfty distance"
        else:
            m.type = measurement_type.JENSEN_SHANNON_DIVERGENCE
            m.value, m.threshold = feature.statistic**2, feature.threshold**2
            reason_type = anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH
            label = "Jensen-Shannon divergence"
        if not feature.drifted:
            continue
        anomaly = anomalies.anomaly_info[feature.name]
        anomaly.path.step.append(feature.name)
        anomaly.severity = anomalies_pb2.AnomalyInfo.ERROR
        short = f"High {label} between current and previous"
        description = (
            f"The {label} between current and previous is {m.value:.6g}, above the "
            f"threshold {m.threshold:.6g}."
        )
        anomaly.short_description = short
        anomaly.description = description
        reason = anomaly.reason.add()
        reason.type = reason_type
        reason.short_description = short
        reason.description = description
    return anomalies


def anomalies_text(result: DriftResult, schema: schema_pb2.Schema | None = None) -> str:
    """:func:`to_anomalies` as a text proto."""
    return text_format.MessageToString(to_anomalies(result, schema))
