"""TFDV compatibility: drift_comparator thresholds from a TFDV schema, drift as TFDV Anomalies."""

import math

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from refit.drift import detect_drift
from refit.errors import SchemaError
from refit.validation import comparators

SCHEMA = """
feature {
  name: "channel"
  type: BYTES
  drift_comparator { infinity_norm { threshold: 0.05 } }
}
feature {
  name: "income"
  type: FLOAT
  drift_comparator { jensen_shannon_divergence { threshold: 0.01 } }
}
feature { name: "age" type: FLOAT }
"""


def _tables():
    rng = np.random.default_rng(4)
    n = 4000
    reference = pa.table(
        {
            "channel": rng.choice(["web", "branch", "partner"], n, p=[0.5, 0.3, 0.2]),
            "income": rng.lognormal(3.9, 0.35, n),
            "age": rng.normal(41, 11, n),
        }
    )
    current = pa.table(
        {
            "channel": rng.choice(["web", "branch", "partner"], n, p=[0.4, 0.3, 0.3]),
            "income": rng.lognormal(4.2, 0.35, n),
            "age": rng.normal(41, 11, n),
        }
    )
    return reference, current


def test_schema_comparators_become_tests_and_thresholds(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text(SCHEMA)
    schema = comparators.read_schema(str(path))
    tests, thresholds = comparators.comparators(schema)
    assert tests == {"channel": "linf", "income": "jensenshannon"}
    assert thresholds["channel"] == 0.05
    assert thresholds["income"] == pytest.approx(math.sqrt(0.01))  # divergence -> distance


def test_drift_written_as_tfdv_anomalies():
    schema = text_format.Parse(SCHEMA, schema_pb2.Schema())
    tests, thresholds = comparators.comparators(schema)
    reference, current = _tables()
    result = detect_drift(reference, current, tests=tests, thresholds=thresholds)
    anomalies = text_format.Parse(
        comparators.anomalies_text(result, schema), anomalies_pb2.Anomalies()
    )
    infos = {tuple(i.path.step): i for i in anomalies.drift_skew_info}
    assert set(infos) == {("channel",), ("income",)}  # age has no TFDV comparator
    channel = infos[("channel",)].drift_measurements[0]
    assert channel.type == anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY
    assert channel.value == pytest.approx(result.features["channel"].statistic)
    assert channel.threshold == pytest.approx(0.05)
    income = infos[("income",)].drift_measurements[0]
    assert income.type == anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE
    assert income.value == pytest.approx(result.features["income"].statistic ** 2)
    assert income.threshold == pytest.approx(0.01)
    assert set(anomalies.anomaly_info) == {"channel", "income"}
    reason = anomalies.anomaly_info["channel"].reason[0]
    assert reason.type == anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH
    assert anomalies.baseline.feature[0].name == "channel"


def test_unsupported_comparator_and_zero_threshold_are_refused(tmp_path):
    bad = text_format.Parse(
        'feature { name: "x" drift_comparator { normalized_abs_difference { threshold: 0.1 } } }',
        schema_pb2.Schema(),
    )
    with pytest.raises(SchemaError, match="'x'.*normalized_abs_difference"):
        comparators.comparators(bad)
    zero = text_format.Parse(
        'feature { name: "y" drift_comparator { infinity_norm { threshold: 0 } } }',
        schema_pb2.Schema(),
    )
    with pytest.raises(SchemaError, match="'y'.*must be > 0"):
        comparators.comparators(zero)
    (tmp_path / "broken.pbtxt").write_text("feature { nme: 1 }")
    with pytest.raises(SchemaError, match="does not parse"):
        comparators.read_schema(str(tmp_path / "broken.pbtxt"))
