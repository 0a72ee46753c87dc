"""Parity of the native validation engine with real TFDV 1.21 (run in its own interpreter).

Runs only where ``REFIT_TFDV_PYTHON`` names the TFDV interpreter (``scripts/tfdv-env.sh`` builds
it and prints the path; CI exports it). The TFDV jobs run as one batch (TensorFlow imports once).

Held equal: the inferred schema (type, presence, value count, string domains), the anomaly kinds
on the bad-input corpus, the L-infinity values (exactly: both compare category shares) and the
drifted features. Documented differences, asserted as such:

* ``default`` (an int column of 0/1): TFDV infers a ``bool_domain``, native an int feature.
* An all-null column: TFDV ``FEATURE_TYPE_NOT_PRESENT``, native
  ``FEATURE_TYPE_LOW_FRACTION_PRESENT``.
* An empty window: both set ``data_missing``; native adds a ``DATASET_LOW_NUM_EXAMPLES`` reason,
  TFDV gives no reason.
* Jensen-Shannon divergence of numeric columns: TFDV bins on equal-width histogram buckets (10),
  native at the reference's deciles. Tolerance: within 0.03 of each other on shifted columns;
  below 0.025 (TFDV) and 0.005 (native) on unshifted ones; threshold 0.05 flags the same.
* A reference makes native also check ranges against its observed ``[min, max]``; TFDV checks
  only schema domains (``check_ranges=False`` makes the two agree).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from typer.testing import CliRunner

from refit.cli import app
from refit.demo.data import DemoScenario, make_windows
from refit.errors import DataError
from refit.tfdv.client import TfdvJob, TfdvOutputs, run_tfdv_batch
from refit.validation import compute_statistics, infer_schema
from refit.validation.anomalies import ValidationOptions
from refit.validation.engines import (
    EngineResult,
    anomaly_kinds,
    drift_measurements,
    validate_native,
)
from refit.validation.schema import string_domain_of

TFDV_PYTHON = os.environ.get("REFIT_TFDV_PYTHON", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TFDV_PYTHON,
        reason="REFIT_TFDV_PYTHON is unset: build the TFDV env with scripts/tfdv-env.sh and "
        'export REFIT_TFDV_PYTHON="$(scripts/tfdv-env.sh | tail -n 1)"',
    ),
]

RANGE_KINDS = {
    "INT_TYPE_BIG_INT",
    "INT_TYPE_SMALL_INT",
    "FLOAT_TYPE_BIG_FLOAT",
    "FLOAT_TYPE_SMALL_FLOAT",
}
NUMERIC = ("income", "age", "debt_ratio", "credit_score", "tenure_months")
JS_THRESHOLD = 0.05


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


class Parity:
    """Everything the tests compare, computed once per module."""

    def __init__(self, tmp: Path) -> None:
        windows = make_windows(DemoScenario(windows=5, rows=2000))
        self.windows = windows
        reference, clean = windows[0], windows[1]
        rng = np.random.default_rng(3)
        region = np.array(clean.column("region").to_pylist(), dtype=object)
        region[rng.random(len(region)) < 0.2] = "mars"
        age = clean.column("age").to_numpy().copy()
        age[:50] = 200
        self.corpus = {
            "clean": clean,
            "renamed": windows[4],
            "missing_column": clean.drop_columns(["region"]),
            "empty_window": clean.slice(0, 0),
            "all_null": _replace(clean, "income", pa.nulls(clean.num_rows, pa.float64())),
            "type_change": _replace(
                clean, "age", pa.array([str(v) for v in clean.column("age").to_pylist()])
            ),
            "unseen_categories": _replace(clean, "region", pa.array(region.tolist())),
            "out_of_range": _replace(clean, "age", pa.array(age)),
        }
        # the curated schema: the native inferred one plus a domain for age
        self.schema = infer_schema(compute_statistics(reference))
        for feature in self.schema.feature:
            if feature.name == "age":
                feature.int_domain.min, feature.int_domain.max = 18, 85
        self.drift_schema = infer_schema(compute_statistics(reference))
        for feature in self.drift_schema.feature:
            if feature.name in ("region", "channel"):
                feature.drift_comparator.infinity_norm.threshold = 0.1
            if feature.name in NUMERIC:
                feature.drift_comparator.jensen_shannon_divergence.threshold = JS_THRESHOLD
        self.native_ref_stats = tmp / "native_reference_statistics.pb"
        self.native_ref_stats.write_bytes(
            compute_statistics(reference, "reference").SerializeToString()
        )
        flat = reference.drop_columns(["event_time"])
        self.csv = tmp / "reference.csv"
        pacsv.write_csv(flat, self.csv)
        self.flat = flat

        jobs = {"infer": TfdvJob(reference)}
        jobs.update({f"bad:{k}": TfdvJob(t, schema=self.schema) for k, t in self.corpus.items()})
        for i in (1, 3):
            jobs[f"drift:{i}"] = TfdvJob(windows[i], reference=reference, schema=self.drift_schema)
        jobs["native_stats_in"] = TfdvJob(
            windows[3], reference=self.native_ref_stats, schema=self.drift_schema
        )
        jobs["beam_parquet"] = TfdvJob(flat, beam_pipeline_args=["--runner=DirectRunner"])
        jobs["beam_csv"] = TfdvJob(self.csv, beam_pipeline_args=["--runner=DirectRunner"])
        jobs["beam_bad_runner"] = TfdvJob(flat, beam_pipeline_args=["--runner=NoSuchRunner"])
        jobs["facets"] = TfdvJob(windows[3], reference=reference, facets=True)
        results = run_tfdv_batch(list(jobs.values()), python=TFDV_PYTHON)
        self.tfdv: dict[str, TfdvOutputs | DataError] = dict(zip(jobs, results, strict=True))

    def ok(self, key: str) -> TfdvOutputs:
        result = self.tfdv[key]
        assert isinstance(result, TfdvOutputs), f"TFDV job {key} failed: {result}"
        return result

    def native_bad(self, key: str) -> EngineResult:
        return validate_native(self.corpus[key], schema=self.schema)

    def native_drift(self, i: int, check_ranges: bool = True) -> EngineResult:
        return validate_native(
            self.windows[i],
            reference=self.windows[0],
            schema=self.drift_schema,
            options=ValidationOptions(check_ranges=check_ranges),
        )


@pytest.fixture(scope="module")
def parity(tmp_path_factory: pytest.TempPathFactory) -> Parity:
    return Parity(tmp_path_factory.mktemp("parity"))


def _features(schema: schema_pb2.Schema) -> dict[str, dict[str, object]]:
    out = {}
    for feature in schema.feature:
        out[feature.name] = {
            "type": schema_pb2.FeatureType.Name(feature.type),
            "min_fraction": feature.presence.min_fraction,
            "min_count": feature.presence.min_count,
            "value_count": (feature.value_count.min, feature.value_count.max),
            "domain": sorted(string_domain_of(schema, feature) or []),
            "bool_domain": feature.HasField("bool_domain"),
        }
    return out


def test_inferred_schema_matches(parity: Parity) -> None:
    native = _features(infer_schema(compute_statistics(parity.windows[0])))
    tfdv = _features(parity.ok("infer").schema)
    assert list(native) == list(tfdv)
    assert (
        native["region"]["domain"] == tfdv["region"]["domain"] == ["east", "north", "south", "west"]
    )
    assert tfdv["income"] == {
        "type": "FLOAT",
        "min_fraction": 1.0,
        "min_count": 1,
        "value_count": (1, 1),
        "domain": [],
        "bool_domain": False,
    }
    # by design: TFDV infers a bool_domain for an int column holding only 0 and 1
    assert tfdv["default"]["bool_domain"] and not native["default"]["bool_domain"]
    tfdv["default"]["bool_domain"] = False
    assert native == tfdv


def test_statistics_agree(parity: Parity) -> None:
    native = compute_statistics(parity.windows[0]).datasets[0]
    tfdv = parity.ok("infer").statistics.datasets[0]
    assert native.num_examples == tfdv.num_examples == 2000
    by_name = {f.path.step[0]: f for f in tfdv.features}
    for feature in native.features:
        other = by_name[feature.path.step[0]]
        assert feature.type == other.type, feature.path.step[0]
        if feature.HasField("num_stats"):
            assert other.num_stats.mean == pytest.approx(feature.num_stats.mean, rel=1e-9)
            assert other.num_stats.std_dev == pytest.approx(feature.num_stats.std_dev, rel=1e-9)
            assert (other.num_stats.min, other.num_stats.max) == (
                feature.num_stats.min,
                feature.num_stats.max,
            )
        else:
            assert other.string_stats.unique == feature.string_stats.unique


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("clean", set()),
        (
            "renamed",
            {("creditScore", "SCHEMA_NEW_COLUMN"), ("credit_score", "SCHEMA_MISSING_COLUMN")},
        ),
        ("missing_column", {("region", "SCHEMA_MISSING_COLUMN")}),
        ("type_change", {("age", "UNEXPECTED_DATA_TYPE")}),
        ("unseen_categories", {("region", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")}),
        ("out_of_range", {("age", "INT_TYPE_BIG_INT")}),
    ],
)
def test_bad_input_corpus_same_anomaly_kinds(
    parity: Parity, case: str, expected: set[tuple[str, str]]
) -> None:
    assert anomaly_kinds(parity.native_bad(case).anomalies) == expected
    assert anomaly_kinds(parity.ok(f"bad:{case}").anomalies) == expected


def test_all_null_column_differs_by_design(parity: Parity) -> None:
    assert anomaly_kinds(parity.native_bad("all_null").anomalies) == {
        ("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")
    }
    assert anomaly_kinds(parity.ok("bad:all_null").anomalies) == {
        ("income", "FEATURE_TYPE_NOT_PRESENT")
    }


def test_empty_window_differs_by_design(parity: Parity) -> None:
    native = parity.native_bad("empty_window").anomalies
    tfdv = parity.ok("bad:empty_window").anomalies
    assert native.data_missing and tfdv.data_missing
    assert anomaly_kinds(native) == {("(dataset)", "DATASET_LOW_NUM_EXAMPLES")}
    assert anomaly_kinds(tfdv) == set()


@pytest.mark.parametrize("window", [1, 3])
def test_drift_comparators_agree(parity: Parity, window: int) -> None:
    native = parity.native_drift(window)
    tfdv = parity.ok(f"drift:{window}").anomalies
    n, t = drift_measurements(native.anomalies), drift_measurements(tfdv)
    assert set(n) == set(t) == {"region", "channel", *NUMERIC}
    for name in ("region", "channel"):
        assert n[name][0] == t[name][0] == "L_INFTY"
        assert n[name][1] == pytest.approx(t[name][1], abs=1e-9)
    shifted = {"income", "credit_score"} if window == 3 else set()
    for name in NUMERIC:
        assert n[name][0] == t[name][0] == "JENSEN_SHANNON_DIVERGENCE"
        assert n[name][2] == pytest.approx(t[name][2]) == JS_THRESHOLD
        if name in shifted:
            assert n[name][1] == pytest.approx(t[name][1], abs=0.03)
            assert min(n[name][1], t[name][1]) > 2 * JS_THRESHOLD
        else:
            assert n[name][1] < 0.005 and t[name][1] < 0.025
    drifted = {"channel", *shifted} if window == 3 else set()
    comparator_kinds = {"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"}
    for kinds in (anomaly_kinds(native.anomalies), anomaly_kinds(tfdv)):
        assert {f for f, k in kinds if k in comparator_kinds} == drifted
    # by design: with a reference, native also checks ranges against its observed [min, max]
    native_other = {(f, k) for f, k in anomaly_kinds(native.anomalies) if k not in comparator_kinds}
    assert native_other and {k for _, k in native_other} <= RANGE_KINDS
    assert {(f, k) for f, k in anomaly_kinds(tfdv) if k not in comparator_kinds} == set()
    no_ranges = anomaly_kinds(parity.native_drift(window, check_ranges=False).anomalies)
    assert no_ranges == anomaly_kinds(tfdv)


def test_tfdv_reads_native_statistics_and_schema(parity: Parity) -> None:
    # the reference statistics and the schema of this job were written by the native engine
    native_ref_input = parity.ok("native_stats_in")
    assert native_ref_input.reference_statistics is not None
    assert native_ref_input.reference_statistics.datasets[0].num_examples == 2000
    assert drift_measurements(native_ref_input.anomalies)["channel"][1] == pytest.approx(
        drift_measurements(parity.ok("drift:3").anomalies)["channel"][1], abs=1e-9
    )


def test_beam_pipeline_args_reach_tfdv(parity: Parity) -> None:
    frame = parity.ok("infer").statistics.datasets[0]
    for key in ("beam_parquet", "beam_csv"):
        out = parity.ok(key)
        assert out.metadata["beam"] is True
        assert out.metadata["beam_pipeline_args"] == ["--runner=DirectRunner"]
        dataset = out.statistics.datasets[0]
        assert dataset.num_examples == 2000
        means = {f.path.step[0]: f.num_stats.mean for f in dataset.features}
        for feature in frame.features:
            name = feature.path.step[0]
            if name in means and feature.HasField("num_stats"):
                assert means[name] == pytest.approx(feature.num_stats.mean, rel=1e-6), (key, name)
    failed = parity.tfdv["beam_bad_runner"]
    assert isinstance(failed, DataError)
    assert "NoSuchRunner" in str(failed)


def test_facets_html_is_written(parity: Parity) -> None:
    html = parity.ok("facets").facets_html
    assert html is not None
    assert "facets-overview" in html and "facets-iframe" in html
    assert parity.ok("infer").facets_html is None


def test_cli_tfdv_engine_files_load_in_tfdv(parity: Parity, tmp_path: Path) -> None:
    data, reference = tmp_path / "w3.parquet", tmp_path / "w0.parquet"
    pq.write_table(parity.windows[3], data)
    pq.write_table(parity.windows[0], reference)
    for engine in ("native", "tfdv"):
        result = CliRunner().invoke(
            app,
            [
                "validate",
                str(data),
                "--reference",
                str(reference),
                "--engine",
                engine,
                "-o",
                str(tmp_path / engine),
            ]
            + (["--facets"] if engine == "tfdv" else []),
        )
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith(f"{engine} engine: ")
    assert (tmp_path / "tfdv" / "facets.html").exists()
    script = tmp_path / "load.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, tensorflow_data_validation as tfdv
            for folder in sys.argv[1:]:
                stats = tfdv.load_stats_binary(folder + "/statistics.pb")
                schema = tfdv.load_schema_text(folder + "/schema.pbtxt")
                anomalies = tfdv.load_anomalies_text(folder + "/anomalies.pbtxt")
                again = tfdv.validate_statistics(stats, schema)
                print("LOADED", stats.datasets[0].num_examples, len(schema.feature),
                      len(anomalies.anomaly_info), len(again.anomaly_info))
            """
        )
    )
    proc = subprocess.run(
        [TFDV_PYTHON, str(script), str(tmp_path / "native"), str(tmp_path / "tfdv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded == [["2000", "9", loaded[0][2], "0"], ["2000", "9", loaded[1][2], "0"]]


@pytest.mark.parametrize("label", ["missing", "all-null"])
def test_late_labels_lets_an_unlabelled_window_through_either_engine(
    tmp_path: Path, label: str
) -> None:
    from refit.steps.data import validate_data

    windows = make_windows(DemoScenario(windows=2, rows=400, seed=3))
    reference, current = windows[0], windows[1]
    if label == "missing":
        current = current.drop_columns(["default"])
    else:
        current = _replace(current, "default", pa.nulls(current.num_rows, pa.int64()))
    ref, cur = str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet")
    pq.write_table(reference, ref)
    pq.write_table(current, cur)
    for engine in ("native", "tfdv"):
        off = validate_data(cur, "default", reference_path=ref, engine=engine)
        assert not off.passed and {a["feature"] for a in off.anomalies} == {"default"}, engine
        on = validate_data(cur, "default", reference_path=ref, engine=engine, late_labels=True)
        assert on.passed and on.labelled is False and on.audit["engine"] == engine, on.anomalies
