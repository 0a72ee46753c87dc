import math
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.errors import DataError, SchemaError
from refit.io import read_table
from refit.validation import (
    ValidationOptions,
    ValidationResult,
    anomalies_from_text,
    anomalies_to_text,
    compute_statistics,
    infer_schema,
    render_validation_html,
    schema_from_text,
    schema_to_text,
    validate,
    validate_table,
)

T = anomalies_pb2.AnomalyInfo.Type
OPTS = ValidationOptions(range_tolerance=0.25, required_columns=("label",))


def _data(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "age": pa.array(rng.integers(18, 90, n), pa.int64()),
            "income": rng.normal(50_000, 8_000, n),
            "city": pa.array(rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2])),
            "label": pa.array(rng.integers(0, 2, n), pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def val_reference() -> pa.Table:
    return _data(2000, seed=0)


@pytest.fixture(scope="module")
def val_current() -> pa.Table:
    return _data(500, seed=1)


def _kinds(result: ValidationResult) -> set[tuple[str, str]]:
    return {(row["feature"], row["kind"]) for row in result.summary()}


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


# ---- statistics ---------------------------------------------------------------------------


def test_numeric_statistics_match_numpy() -> None:
    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan, 10.0, 0.0])
    table = pa.table({"v": pa.array([*values.tolist(), None]), "n": pa.array([1, 2, 3, 4] * 2)})
    stats = compute_statistics(table, name="t")
    dataset = stats.datasets[0]
    assert dataset.name == "t" and dataset.num_examples == 8
    v = dataset.features[0]
    assert list(v.path.step) == ["v"]
    assert v.type == statistics_pb2.FeatureNameStatistics.FLOAT
    present = values[~np.isnan(values)]
    ns = v.num_stats
    assert ns.common_stats.num_non_missing == 6 and ns.common_stats.num_missing == 2
    assert ns.mean == pytest.approx(present.mean())
    assert ns.std_dev == pytest.approx(present.std())
    assert (ns.min, ns.max, ns.median, ns.num_zeros) == (0.0, 10.0, 1.5, 2)
    kinds = {h.type: h for h in ns.histograms}
    quantiles = kinds[statistics_pb2.Histogram.QUANTILES]
    assert len(quantiles.buckets) == 10
    assert quantiles.buckets[0].low_value == 0.0 and quantiles.buckets[-1].high_value == 10.0
    standard = kinds[statistics_pb2.Histogram.STANDARD]
    assert sum(b.sample_count for b in standard.buckets) == 6
    n = dataset.features[1]
    assert n.type == statistics_pb2.FeatureNameStatistics.INT
    assert n.num_stats.mean == 2.5 and n.num_stats.common_stats.num_missing == 0


def _numpy_summary(values: np.ndarray) -> tuple:
    counts, edges = np.histogram(values, bins=10)
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, 11))
    return (
        float(values.min()),
        float(values.max()),
        float(np.median(values)),
        [
            (float(lo), float(hi), float(c))
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ],
        [(float(lo), float(hi)) for lo, hi in zip(quantiles[:-1], quantiles[1:], strict=True)],
    )


def _stats_summary(ns: statistics_pb2.NumericStatistics) -> tuple:
    kinds = {h.type: h for h in ns.histograms}
    standard = kinds[statistics_pb2.Histogram.STANDARD].buckets
    quantiles = kinds[statistics_pb2.Histogram.QUANTILES].buckets
    return (
        ns.min,
        ns.max,
        ns.median,
        [(b.low_value, b.high_value, b.sample_count) for b in standard],
        [(b.low_value, b.high_value) for b in quantiles],
    )


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # std of "huge" is inf
def test_large_columns_keep_exact_quantiles_and_histograms() -> None:
    # past a few thousand values, quantiles and histogram counts come from fine bins and a
    # partial partition instead of numpy's routines: they must stay bit-identical to numpy's
    rng = np.random.default_rng(7)
    n = 20_001  # odd: the median is one value
    columns = {
        "normal": rng.normal(3.0, 2.0, n),
        "heavy_tail": rng.lognormal(0.0, 2.5, n),
        "lone_outlier": np.r_[rng.normal(0.0, 1.0, n - 1), 1e12],
        # integers 0..10: every histogram edge falls exactly on a value
        "on_edges": rng.integers(0, 11, n).astype(np.float64),
        "ties": rng.choice([-2.0, 0.0, 0.5, 7.25], n),
        "negative": -rng.exponential(5.0, n),
        "huge": rng.normal(0.0, 1e300, n),
        "subnormal_range": rng.normal(0.0, 1.0, n) * 1e-310,
        "constant": np.full(n, 4.5),
    }
    features = list(compute_statistics(pa.table(columns)).datasets[0].features)
    columns["even"] = columns["normal"][:-1]  # two middle values
    features += compute_statistics(pa.table({"even": columns["even"]})).datasets[0].features
    for feature in features:
        name = feature.path.step[0]
        assert _stats_summary(feature.num_stats) == _numpy_summary(columns[name]), name


def test_large_columns_with_missing_and_integers() -> None:
    rng = np.random.default_rng(8)
    n = 30_000
    floats = rng.normal(0.0, 1.0, n)
    floats[rng.random(n) < 0.1] = np.nan
    ints = rng.integers(-1000, 1000, n)
    table = pa.table(
        {
            "floats": pa.array(floats, mask=rng.random(n) < 0.05),
            "ints": pa.array(ints, pa.int64()),
        }
    )
    features = {f.path.step[0]: f for f in compute_statistics(table).datasets[0].features}
    present = table.column("floats").drop_null().to_numpy()
    present = present[~np.isnan(present)]
    ns = features["floats"].num_stats
    assert ns.common_stats.num_non_missing == present.size
    assert _stats_summary(ns) == _numpy_summary(present)
    assert _stats_summary(features["ints"].num_stats) == _numpy_summary(ints.astype(np.float64))


def test_string_statistics_rank_values() -> None:
    table = pa.table({"c": pa.array(["b", "a", "b", None, "c", "b", "a"]).dictionary_encode()})
    ss = compute_statistics(table).datasets[0].features[0].string_stats
    assert ss.unique == 3
    assert [(v.value, v.frequency) for v in ss.top_values] == [("b", 3), ("a", 2), ("c", 1)]
    assert [b.label for b in ss.rank_histogram.buckets] == ["b", "a", "c"]
    assert ss.common_stats.num_missing == 1 and ss.common_stats.num_non_missing == 6
    assert ss.avg_length == 1.0


@pytest.mark.parametrize("n", [50, 5000])  # numpy's fallback and the binned path
def test_constant_and_narrow_columns_never_crash_statistics(n: int) -> None:
    # A week stamped with one timestamp: a constant int64 of ~1.7e18 ns, where numpy's widening
    # of a constant range by 0.5 rounds away ("Too many bins for data range"); also a constant
    # large float and a non-constant range narrower than ten float steps.
    stamp = datetime(2024, 3, 4, tzinfo=UTC)
    narrow = np.where(np.arange(n) % 3 == 0, 1e17 + 16, 1e17)
    table = pa.table(
        {
            "week_start": pa.array([stamp] * n, pa.timestamp("ns", tz="UTC")),
            "big": np.full(n, 1e17),
            "narrow": narrow,
            "week": pa.array([7] * n, pa.int64()),
        }
    )
    features = {f.path.step[0]: f.num_stats for f in compute_statistics(table).datasets[0].features}
    for name, ns in features.items():
        counts = [b.sample_count for b in ns.histograms[0].buckets]
        assert len(counts) == 10 and sum(counts) == n, name
    week = features["week"]
    assert (week.min, week.max, week.median, week.std_dev) == (7, 7, 7, 0)
    # small constants keep numpy's own histogram: [v - 0.5, v + 0.5], all in the middle bucket
    counts, edges = np.histogram(np.full(n, 7.0), bins=10)
    assert [b.sample_count for b in week.histograms[0].buckets] == counts.tolist()
    assert [b.low_value for b in week.histograms[0].buckets] == edges[:-1].tolist()
    assert features["week_start"].min == features["week_start"].max == stamp.timestamp() * 1e9
    assert features["narrow"].max == 1e17 + 16


def test_validation_of_a_constant_timestamp_column(tmp_path: Path) -> None:
    # validate and drift-check a window whose rows share one timestamp, against another such
    # window: the crash of issue 17 was in the reference's statistics
    def week(k: int) -> pa.Table:
        rng = np.random.default_rng(k)
        stamp = datetime(2024, 1, 1, tzinfo=UTC) + k * timedelta(weeks=1)
        return pa.table(
            {
                "ts": pa.array([stamp] * 300, pa.timestamp("ns", tz="UTC")),
                "x": rng.normal(size=300),
                "label": rng.integers(0, 2, 300),
            }
        )

    result = validate_table(week(1), reference=week(0), options=OPTS)
    assert _kinds(result) == set()  # times are not range-checked: a new week is no anomaly
    ts = next(f for f in result.statistics.datasets[0].features if f.path.step[0] == "ts")
    assert ts.num_stats.min == ts.num_stats.max


def test_statistics_reject_non_tables() -> None:
    with pytest.raises(DataError, match="pyarrow Table"):
        compute_statistics({"a": [1]})  # type: ignore[arg-type]
    with pytest.raises(DataError, match="threads"):
        compute_statistics(pa.table({"a": [1]}), threads=0)


def test_statistics_do_not_depend_on_threads_or_chunks() -> None:
    rng = np.random.default_rng(9)
    n = 12_000
    floats = rng.gamma(2.0, 3.0, n)
    labels = rng.choice(["x", "y", "zz", None], n)
    whole = pa.table({"f": floats, "i": rng.integers(0, 50, n), "s": pa.array(labels)})
    # the same data in uneven chunks (an empty one too), as a Parquet read gives it
    cuts = [0, 1, 4000, 4000, 9999, n]
    chunked = pa.concat_tables(
        [whole.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    )
    assert chunked.column("f").num_chunks > 1
    one = compute_statistics(whole, threads=1)
    assert compute_statistics(whole, threads=3) == one
    assert compute_statistics(chunked, threads=2) == one


def test_statistics_do_not_import_pandas(tmp_path: Path) -> None:
    # pyarrow's to_numpy and pa.array import pandas (0.2-1 s); statistics go through buffers
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"f": np.arange(10_000.0), "s": pa.array(["a", "b"] * 5_000)}), path)
    code = (
        "import sys\n"
        "from refit.io import read_table\n"
        "from refit.validation import compute_statistics\n"
        f"compute_statistics(read_table({str(path)!r}))\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- schema -------------------------------------------------------------------------------


def test_infer_schema_and_text_round_trip(val_reference: pa.Table) -> None:
    table = val_reference.append_column(
        "note", pa.array([None if i % 4 else "x" for i in range(val_reference.num_rows)])
    )
    schema = infer_schema(compute_statistics(table))
    features = {f.name: f for f in schema.feature}
    assert features["age"].type == schema_pb2.INT
    assert features["income"].type == schema_pb2.FLOAT
    assert features["city"].type == schema_pb2.BYTES
    assert features["age"].presence.min_fraction == 1.0
    assert features["note"].presence.min_fraction == 0.0  # had missing values
    assert features["note"].presence.min_count == 1
    assert (features["age"].value_count.min, features["age"].value_count.max) == (1, 1)
    assert features["city"].domain == "city"
    assert [(d.name, list(d.value)) for d in schema.string_domain] == [
        ("city", ["lyon", "nice", "paris"]),
        ("note", ["x"]),
    ]
    assert not features["income"].HasField("float_domain")  # ranges live in reference stats
    text = schema_to_text(schema)
    assert 'name: "city"' in text
    assert schema_from_text(text) == schema


def test_high_cardinality_strings_get_no_domain() -> None:
    table = pa.table({"id": pa.array([f"id-{i}" for i in range(500)])})
    schema = infer_schema(compute_statistics(table))
    assert not schema.string_domain and schema.feature[0].domain == ""


def test_bad_schema_text_is_schema_error() -> None:
    with pytest.raises(SchemaError, match="invalid schema text"):
        schema_from_text("feature { nme: 'x' }")


# ---- validation: clean data and each kind of bad input -------------------------------------


def test_clean_data_has_no_anomalies(val_reference: pa.Table, val_current: pa.Table) -> None:
    result = validate_table(val_current, val_reference, options=OPTS)
    assert result.ok, result.summary()
    assert result.summary() == []
    assert result.reference_statistics is not None
    assert [f.name for f in result.schema.feature] == ["age", "income", "city", "label"]


def test_first_run_infers_schema_from_current(val_current: pa.Table) -> None:
    result = validate_table(val_current, None)
    assert result.ok
    assert len(result.schema.feature) == 4


def test_unreadable_file_is_data_error(tmp_path: Path) -> None:
    path = tmp_path / "window.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=rf"cannot read data at {path}"):
        validate_table(read_table(str(path)), None)


def test_empty_table_is_dataset_anomaly(val_reference: pa.Table) -> None:
    result = validate_table(val_reference.slice(0, 0), val_reference, options=OPTS)
    assert not result.ok
    assert result.anomalies.data_missing
    reasons = result.anomalies.dataset_anomaly_info.reason
    assert [r.type for r in reasons] == [T.DATASET_LOW_NUM_EXAMPLES]
    assert _kinds(result) == {("(dataset)", "DATASET_LOW_NUM_EXAMPLES")}
    assert "0 rows" in result.summary()[0]["description"]


def test_missing_target_column(val_reference: pa.Table, val_current: pa.Table) -> None:
    result = validate_table(val_current.drop_columns(["label"]), val_reference, options=OPTS)
    assert _kinds(result) == {("label", "SCHEMA_MISSING_COLUMN")}
    assert "label" in result.anomalies.anomaly_info["label"].description
    # required even when no schema lists it
    only = ValidationOptions(required_columns=("target",))
    first = validate_table(val_current, None, options=only)
    assert _kinds(first) == {("target", "SCHEMA_MISSING_COLUMN")}
    assert "Required column 'target'" in first.summary()[0]["description"]


def test_all_null_column(val_reference: pa.Table, val_current: pa.Table) -> None:
    nulls = pa.nulls(val_current.num_rows, pa.float64())
    result = validate_table(_replace(val_current, "income", nulls), val_reference, options=OPTS)
    assert _kinds(result) == {("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")}
    assert "missing in all 500 rows" in result.summary()[0]["description"]
    # an all-null column read from CSV has Arrow type null: still flagged, not a type change
    untyped = _replace(val_current, "income", pa.nulls(val_current.num_rows))
    result = validate_table(untyped, val_reference, options=OPTS)
    assert _kinds(result) == {("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")}
    # and on a first run too
    assert _kinds(validate_table(untyped, None)) == {
        ("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")
    }


def test_renamed_column_is_one_missing_and_one_new(
    val_reference: pa.Table, val_current: pa.Table
) -> None:
    renamed = val_current.rename_columns(["age", "income", "town", "label"])
    result = validate_table(renamed, val_reference, options=OPTS)
    assert _kinds(result) == {("city", "SCHEMA_MISSING_COLUMN"), ("town", "SCHEMA_NEW_COLUMN")}


def test_type_change(val_reference: pa.Table, val_current: pa.Table) -> None:
    as_text = val_current.column("age").cast(pa.string())
    result = validate_table(_replace(val_current, "age", as_text), val_reference, options=OPTS)
    assert _kinds(result) == {("age", "UNEXPECTED_DATA_TYPE")}
    assert "BYTES" in result.summary()[0]["description"]
    assert "INT" in result.summary()[0]["description"]
    # integers where floats are expected are fine; floats where integers are expected are not
    ints = pa.array(np.round(val_current.column("income").to_numpy()).astype(np.int64))
    assert validate_table(_replace(val_current, "income", ints), val_reference, options=OPTS).ok
    floats = val_current.column("age").cast(pa.float64())
    result = validate_table(_replace(val_current, "age", floats), val_reference, options=OPTS)
    assert _kinds(result) == {("age", "UNEXPECTED_DATA_TYPE")}


def test_unseen_categories_beyond_tolerance(val_reference: pa.Table, val_current: pa.Table) -> None:
    cities = val_current.column("city").to_pylist()
    few = ["lille" if i < 3 else c for i, c in enumerate(cities)]  # 0.6%: under 1%
    assert validate_table(
        _replace(val_current, "city", pa.array(few)), val_reference, options=OPTS
    ).ok
    many = ["lille" if i % 10 == 0 else c for i, c in enumerate(cities)]  # 10%
    many[1] = "brest"
    result = validate_table(
        _replace(val_current, "city", pa.array(many)), val_reference, options=OPTS
    )
    assert _kinds(result) == {("city", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")}
    description = result.summary()[0]["description"]
    assert "'lille' (50)" in description and "'brest' (1)" in description
    assert "10.20%" in description
    loose = ValidationOptions(category_tolerance=0.2, range_tolerance=0.25)
    assert validate_table(
        _replace(val_current, "city", pa.array(many)), val_reference, options=loose
    ).ok


def test_out_of_range_numbers(val_reference: pa.Table, val_current: pa.Table) -> None:
    income = val_current.column("income").to_numpy().copy()
    ref_income = val_reference.column("income").to_numpy()
    width = ref_income.max() - ref_income.min()
    income[0] = ref_income.max() + 0.5 * width  # beyond the 25% tolerance
    age = val_current.column("age").to_numpy().copy()
    age[0] = 2  # reference ages are 18..89, width 71: 25% tolerance allows down to 0.25
    age[1] = 0
    changed = _replace(_replace(val_current, "income", pa.array(income)), "age", pa.array(age))
    result = validate_table(changed, val_reference, options=OPTS)
    assert _kinds(result) == {("income", "FLOAT_TYPE_BIG_FLOAT"), ("age", "INT_TYPE_SMALL_INT")}
    income_text = result.anomalies.anomaly_info["income"].description
    assert f"maximum {income[0]:g}" in income_text
    # with a wider tolerance, both are in range
    wide = ValidationOptions(range_tolerance=0.6)
    assert validate_table(changed, val_reference, options=wide).ok
    # range checks against the reference can be switched off
    assert validate_table(changed, val_reference, options=ValidationOptions(check_ranges=False)).ok
    # a curated schema range is honoured too (even with check_ranges=False)
    schema = infer_schema(compute_statistics(val_reference))
    next(f for f in schema.feature if f.name == "age").int_domain.max = 60
    result = validate_table(val_current, None, schema=schema)
    assert _kinds(result) == {("age", "INT_TYPE_BIG_INT")}
    no_ref = ValidationOptions(check_ranges=False)
    result = validate_table(val_current, val_reference, schema=schema, options=no_ref)
    assert _kinds(result) == {("age", "INT_TYPE_BIG_INT")}


def test_timestamps_are_not_range_checked() -> None:
    def window(start: str, n: int = 48) -> pa.Table:
        times = np.arange(np.datetime64(start), np.datetime64(start) + n, dtype="datetime64[h]")
        return pa.table({"ts": pa.array(times.astype("datetime64[us]")), "v": np.ones(n)})

    assert validate_table(window("2026-02-01T00"), window("2026-01-01T00")).ok


def test_missing_fraction_spike(val_reference: pa.Table, val_current: pa.Table) -> None:
    rng = np.random.default_rng(5)

    def with_missing(table: pa.Table, share: float) -> pa.Table:
        values = table.column("income").to_pylist()
        mask = rng.random(len(values)) < share
        return _replace(
            table, "income", pa.array([None if m else v for m, v in zip(mask, values, strict=True)])
        )

    reference = with_missing(val_reference, 0.05)
    assert validate_table(with_missing(val_current, 0.08), reference, options=OPTS).ok
    result = validate_table(with_missing(val_current, 0.40), reference, options=OPTS)
    assert _kinds(result) == {("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")}
    assert "against" in result.summary()[0]["description"]
    # a column that never had gaps must stay complete (schema presence.min_fraction 1.0)
    result = validate_table(
        val_current, None, schema=infer_schema(compute_statistics(val_reference)), options=OPTS
    )
    assert result.ok
    holey = validate_table(with_missing(val_current, 0.02), val_reference, options=OPTS)
    assert _kinds(holey) == {("income", "FEATURE_TYPE_LOW_FRACTION_PRESENT")}


def test_validate_directly_and_anomalies_text(val_reference: pa.Table) -> None:
    ref_stats = compute_statistics(val_reference)
    schema = infer_schema(ref_stats)
    current = val_reference.drop_columns(["city"]).append_column(
        "extra", pa.array(np.zeros(val_reference.num_rows))
    )
    anomalies = validate(compute_statistics(current), schema, reference_stats=ref_stats)
    assert set(anomalies.anomaly_info) == {"city", "extra"}
    info = anomalies.anomaly_info["extra"]
    assert list(info.path.step) == ["extra"]
    assert info.severity == anomalies_pb2.AnomalyInfo.ERROR
    assert [r.type for r in info.reason] == [T.SCHEMA_NEW_COLUMN]
    assert anomalies.baseline == schema
    assert anomalies_from_text(anomalies_to_text(anomalies)) == anomalies
    with pytest.raises(DataError, match="no dataset"):
        validate(statistics_pb2.DatasetFeatureStatisticsList(), schema)


def test_options_are_checked() -> None:
    with pytest.raises(SchemaError, match="category_tolerance"):
        ValidationOptions(category_tolerance=-0.1)
    with pytest.raises(SchemaError, match="required_columns"):
        ValidationOptions(required_columns="label")  # type: ignore[arg-type]


# ---- HTML report --------------------------------------------------------------------------


def test_report_lists_features_and_anomalies(
    val_reference: pa.Table, val_current: pa.Table
) -> None:
    cities = [
        ("<b>évry</b>" if i % 5 == 0 else c)
        for i, c in enumerate(val_current.column("city").to_pylist())
    ]
    bad = _replace(val_current, "city", pa.array(cities)).drop_columns(["label"])
    bad = bad.append_column("a<script>x</script>", pa.array(np.ones(bad.num_rows)))
    result = validate_table(bad, val_reference, options=OPTS)
    page = render_validation_html(result, title="Window <2026-02>")
    assert page.startswith("<!DOCTYPE html>")
    rows = result.summary()
    assert len(rows) == 3
    assert "3 anomalies" in page
    assert page.index("3 anomalies") < page.index('id="anomalies"') < page.index('id="statistics"')
    for row in rows:
        assert row["kind"] in page
    for name in ["age", "income", "city", "a&lt;script&gt;x&lt;/script&gt;"]:
        assert f"<code>{name}</code>" in page
    assert "&lt;b&gt;évry&lt;/b&gt;" in page and "<b>évry" not in page
    assert "<script" not in page
    assert "Window &lt;2026-02&gt;" in page
    assert not re.search(r"https?:|//[a-z]", page, re.IGNORECASE)
    assert "<style>" in page and "<link" not in page


def test_report_ok_summary(val_reference: pa.Table, val_current: pa.Table) -> None:
    result = validate_table(val_current, val_reference, options=OPTS)
    page = render_validation_html(result, title="ok")
    assert "OK: no anomalies" in page
    for name in val_current.column_names:
        assert f"<code>{name}</code>" in page
    assert "http" not in page


def test_infinities_are_counted_reported_and_kept_out_of_the_moments() -> None:
    from refit.validation.anomalies import validate_table
    from refit.validation.statistics import INFINITE_STAT, compute_statistics

    inf = float("inf")
    table = pa.table({"x": [1.0, 2.0, inf, None, 3.0, -inf], "y": [0.5] * 6})
    (x, _) = compute_statistics(table).datasets[0].features
    assert x.num_stats.common_stats.num_non_missing == 5  # infinities are present values
    assert (x.num_stats.min, x.num_stats.max, x.num_stats.mean) == (-inf, inf, 2.0)
    assert {c.name: c.num for c in x.custom_stats}[INFINITE_STAT] == 2.0
    assert all(math.isfinite(b.low_value) for h in x.num_stats.histograms for b in h.buckets)
    reference = pa.table({"x": [1.0, 2.0, 3.0], "y": [0.5] * 3})
    anomalies = validate_table(table, reference).anomalies
    reasons = {r.type: r.description for r in anomalies.anomaly_info["x"].reason}
    kind = anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_INF
    assert reasons[kind] == "Column 'x' has 2 infinite value(s) (+inf or -inf)."
    assert "y" not in anomalies.anomaly_info
