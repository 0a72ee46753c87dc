"""Mergeable profiles: shards merge to the same decisions, streaming from Parquet, versioning,
and KS from bucketed histograms within its stated bound."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _gcs import fake_gcs
from scipy.stats import ks_2samp

from refit.drift import accumulate, compare_profiles, detect_drift, merge_profiles, profile_table
from refit.drift.ks import ks_summary
from refit.drift.profile import (
    EXACT_LIMIT,
    PROFILE_VERSION,
    NumericSummary,
    Profile,
    bucket_bounds,
    bucket_keys,
)
from refit.drift.profile_io import load_profile, profile_uri, save_profile
from refit.errors import DataError, SchemaError

RNG = np.random.default_rng(5)
N = 40_000


def _table(n: int, shift: float = 0.0, rng=RNG) -> pa.Table:
    return pa.table(
        {
            "normal": rng.normal(shift, 1.0, n),
            "lognormal": rng.lognormal(0.0, 1.0, n),
            "small_int": rng.integers(0, 7, n),
            "with_nulls": pa.array(
                np.where(rng.random(n) < 0.1, np.nan, rng.exponential(2.0, n)),
                from_pandas=True,
            ),
            "cat": rng.choice(
                ["a", "b", "c"], n, p=[0.5, 0.3, 0.2] if not shift else [0.4, 0.35, 0.25]
            ),
            "flag": rng.random(n) < 0.3,
        }
    )


def test_bucket_grid_is_monotone_and_bounds_hold_the_values():
    values = np.concatenate([RNG.normal(0, 1e-3, 1000), RNG.normal(0, 1e6, 1000), [0.0, -0.0]])
    values.sort()
    keys = bucket_keys(values)
    assert np.all(np.diff(keys) >= 0)
    lower, upper = bucket_bounds(keys)
    assert np.all(lower <= values) and np.all(values <= upper)
    width = (upper - lower)[np.abs(values) > 1e-300]
    assert np.all(width <= np.abs(values[np.abs(values) > 1e-300]) * 2.0**-9)


def test_shard_profiles_merge_to_the_profile_of_all_data():
    reference = _table(N)
    current = _table(N, shift=0.2)
    whole = profile_table(reference)
    shards = [profile_table(reference.slice(i, N // 4)) for i in range(0, N, N // 4)]
    merged = merge_profiles(shards)
    assert merged.rows == whole.rows
    for name, feature in whole.features.items():
        a, b = feature.summary, merged.features[name].summary
        if isinstance(a, NumericSummary):
            assert (a.count, a.missing, a.min, a.max, a.exact) == (
                b.count,
                b.missing,
                b.min,
                b.max,
                b.exact,
            )
            assert np.array_equal(a.points, b.points) and np.array_equal(a.counts, b.counts)
            assert b.sum == pytest.approx(a.sum, rel=1e-12)
            assert b.m2 == pytest.approx(a.m2, rel=1e-9)
        else:
            assert a.counts == b.counts and a.missing == b.missing
    cur = profile_table(current)
    one, many = compare_profiles(whole, cur), compare_profiles(merged, cur)
    for name in whole.features:
        f, g = one.features[name], many.features[name]
        assert (f.test, f.drifted) == (g.test, g.drifted)
        assert g.statistic == pytest.approx(f.statistic, rel=1e-9, abs=1e-12)
    assert one.drifted_features() == many.drifted_features()
    assert set(one.drifted_features()) == {"normal", "cat"}


def test_exact_values_become_buckets_when_the_union_grows_past_the_limit():
    a = NumericSummary.from_values(np.arange(EXACT_LIMIT, dtype=float))
    b = NumericSummary.from_values(np.arange(EXACT_LIMIT, 2 * EXACT_LIMIT, dtype=float))
    assert a.exact and b.exact
    merged = a.merge(b)
    whole = NumericSummary.from_values(np.arange(2 * EXACT_LIMIT, dtype=float))
    assert not merged.exact and not whole.exact
    assert np.array_equal(merged.points, whole.points)
    assert np.array_equal(merged.counts, whole.counts)


@pytest.mark.parametrize("case", ["normal", "lognormal", "far_from_zero"])
def test_ks_from_bucketed_profiles_within_its_stated_bound(case):
    rng = np.random.default_rng(3)
    reference, current = {
        "normal": lambda: (rng.normal(0, 1, 30_000), rng.normal(0.02, 1, 20_000)),
        "lognormal": lambda: (rng.lognormal(0, 2, 30_000), rng.lognormal(0, 2.1, 30_000)),
        # far from zero relative to its spread: few buckets, and the stated bound says so
        "far_from_zero": lambda: (
            rng.uniform(1000, 1001, 20_000),
            rng.uniform(1000, 1001.05, 20_000),
        ),
    }[case]()
    ref, cur = NumericSummary.from_values(reference), NumericSummary.from_values(current)
    assert not ref.exact
    outcome = ks_summary(ref, cur, "numeric")
    exact = ks_2samp(reference, current, method="asymp")
    assert outcome.statistic <= exact.statistic + 1e-12  # never overstates
    assert exact.statistic - outcome.statistic <= outcome.error_bound
    if case == "far_from_zero":
        assert outcome.error_bound > 0.1
    else:
        assert outcome.error_bound < 0.002
    assert outcome.p_value >= exact.pvalue - 1e-12


def test_streamed_parquet_equals_in_memory_profile(tmp_path, monkeypatch):
    table = _table(10_000)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    monkeypatch.setattr(accumulate, "BATCH_ROWS", 1_500)
    streamed = profile_uri(str(path))
    whole = profile_table(table)
    assert streamed.rows == whole.rows == 10_000
    for name in whole.features:
        a, b = whole.features[name].summary, streamed.features[name].summary
        if isinstance(a, NumericSummary):
            assert np.array_equal(a.points, b.points) and np.array_equal(a.counts, b.counts)
            assert (a.count, a.missing) == (b.count, b.missing)
        else:
            assert a.counts == b.counts
    csv = tmp_path / "data.csv"
    csv.write_text("x,c\n1.5,a\n2.5,b\n,a\n", encoding="utf-8")
    from_csv = profile_uri(str(csv))
    assert from_csv.features["x"].summary.missing == 1
    assert from_csv.features["c"].summary.counts == {"a": 2, "b": 1}


def test_profile_json_round_trip_and_drift_from_a_stored_profile(tmp_path):
    reference, current = _table(5_000), _table(5_000, shift=0.3)
    path = str(tmp_path / "ref.json")
    save_profile(profile_table(reference, source="ref"), path)
    data = json.loads((tmp_path / "ref.json").read_text())
    assert data["version"] == PROFILE_VERSION and data["kind"] == "refit.drift.profile"
    loaded = load_profile(path)
    from_profile = detect_drift(loaded, current)
    from_tables = detect_drift(reference, current)
    assert from_profile.to_dict() == from_tables.to_dict()


def test_other_profile_versions_and_junk_are_schema_errors(tmp_path):
    data = profile_table(_table(100)).to_dict()
    old = dict(data, version=0)
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(SchemaError, match=r"profile format version 0; this refit reads version 1"):
        load_profile(str(tmp_path / "old.json"))
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(SchemaError, match="not a refit drift profile"):
        load_profile(str(tmp_path / "junk.json"))
    broken = dict(data)
    broken["features"] = {"x": {"type": "numeric"}}
    with pytest.raises(SchemaError, match="malformed"):
        Profile.from_dict(broken)
    with pytest.raises(DataError, match="cannot read profile"):
        load_profile(str(tmp_path / "absent.json"))


def test_merging_profiles_with_different_columns_or_types_is_refused():
    a = profile_table(pa.table({"x": [1.0, 2.0]}))
    b = profile_table(pa.table({"y": [1.0, 2.0]}))
    c = profile_table(pa.table({"x": ["1", "2"]}))
    with pytest.raises(SchemaError, match="different columns"):
        merge_profiles([a, b])
    with pytest.raises(SchemaError, match="'x' is numeric"):
        merge_profiles([a, c])


def _all_types_table(n: int, rng) -> pa.Table:
    floats = rng.normal(0.0, 1.0, n)
    floats[rng.random(n) < 0.05] = np.nan
    floats[:3] = [np.inf, -np.inf, -0.0]
    return pa.table(
        {
            "normal": rng.normal(0.0, 1.0, n),
            "nan_inf": floats,
            "float_nulls": pa.array(rng.exponential(2.0, n), mask=rng.random(n) < 0.1),
            "int_nulls": pa.array(rng.integers(-3, 3, n), mask=rng.random(n) < 0.2),
            "int32": pa.array(rng.integers(0, 3000, n).astype(np.int32)),
            "float32": rng.normal(5.0, 2.0, n).astype(np.float32),
            "negative": -rng.exponential(1.0, n),
            "wide": rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-100, 100, n),
            "halves": rng.integers(0, 100, n) / 2.0,
            "all_null": pa.nulls(n, pa.float64()),
            "cat_nulls": pa.array(rng.choice(["x", "y", "z"], n), mask=rng.random(n) < 0.3),
            "dictionary": pa.array(rng.choice(["p", "q"], n)).dictionary_encode(),
            "large": pa.array(rng.choice(["u", "v"], n), pa.large_string()),
            "flag": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1),
        }
    )


def _assert_same_profile(a: Profile, b: Profile) -> None:
    assert a.rows == b.rows and list(a.features) == list(b.features)
    for name, feature in a.features.items():
        other = b.features[name]
        assert (feature.type, feature.arrow_type) == (other.type, other.arrow_type), name
        x, y = feature.summary, other.summary
        if isinstance(x, NumericSummary):
            assert (x.count, x.missing, x.pos_inf, x.neg_inf, x.exact) == (
                y.count,
                y.missing,
                y.pos_inf,
                y.neg_inf,
                y.exact,
            ), name
            assert np.array_equal(x.points, y.points) and np.array_equal(x.counts, y.counts), name
            assert (x.min, x.max) == (y.min, y.max) or x.count == 0, name
            assert y.sum == pytest.approx(x.sum, rel=1e-12, abs=1e-9), name
            assert y.m2 == pytest.approx(x.m2, rel=1e-9, abs=1e-9), name
        else:
            assert (x.counts, x.missing) == (y.counts, y.missing), name


def test_column_by_column_parquet_stream_equals_the_in_memory_profile(tmp_path, monkeypatch):
    """Every type through the column-wise Parquet reader (strings read dictionary-encoded),
    across files of a folder and batches that do not line up with row groups."""
    table = _all_types_table(12_000, np.random.default_rng(11))
    folder = tmp_path / "window"
    folder.mkdir()
    pq.write_table(table.slice(0, 5_000), folder / "a.parquet", row_group_size=1_700)
    pq.write_table(table.slice(5_000), folder / "b.parquet", row_group_size=2_300)
    monkeypatch.setattr(accumulate, "BATCH_ROWS", 1_000)
    _assert_same_profile(profile_table(table), profile_uri(str(folder)))
    picked = profile_uri(str(folder), ["large", "normal", "absent"])
    assert picked.columns == ["large", "normal"] and picked.rows == 12_000
    pq.write_table(table.select(["normal"]), folder / "c.parquet")
    with pytest.raises(DataError, match="column 'nan_inf' is missing"):
        profile_uri(str(folder))


def test_histograms_stay_exact_when_they_grow_and_go_sparse(monkeypatch):
    """The accumulator's dense window grows, then turns sparse past DENSE_SPAN buckets; the
    histogram stays the one of all the values at once."""
    rng = np.random.default_rng(2)
    monkeypatch.setattr(accumulate, "DENSE_SPAN", 4_096)
    batches = [rng.normal(0.0, 10.0 ** (k % 5), 3_000) for k in range(30)]
    batches.append(rng.choice([-1.0, 1.0], 3_000) * 10.0 ** rng.uniform(-100, 100, 3_000))
    acc = accumulate.NumericAccumulator()
    for batch in batches:
        acc.add(batch)
    streamed = acc.summary()
    whole = NumericSummary.from_values(np.concatenate(batches))
    assert acc._pos.keys is not None and acc._neg.keys is not None  # went sparse
    assert np.array_equal(streamed.points, whole.points)
    assert np.array_equal(streamed.counts, whole.counts)
    assert streamed.count == whole.count == 31 * 3_000
    assert streamed.m2 == pytest.approx(whole.m2, rel=1e-9)


def test_a_check_from_a_profile_imports_neither_pandas_nor_scipy(tmp_path):
    """pyarrow's ``to_numpy`` imports pandas and the chi-square module used to import scipy at
    load time: about a second and 60 MB that a check with distance tests does not need."""
    import subprocess
    import sys

    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.normal(0.0, 1.0, 5_000), "c": rng.choice(["a", "b"], 5_000)})
    pq.write_table(table, tmp_path / "ref.parquet")
    pq.write_table(table, tmp_path / "cur.parquet")
    code = f"""
import sys
from refit.cli import app
root = {str(tmp_path)!r}
for args in (["profile", root + "/ref.parquet", "-o", root + "/ref.json"],
             ["drift", "--reference", root + "/ref.json", "--current", root + "/cur.parquet",
              "--output", root + "/out", "--test", "x=wasserstein", "--test", "c=jensenshannon"]):
    try:
        app(args)
    except SystemExit as exc:
        assert not exc.code, exc.code
print(sorted(m for m in ("pandas", "scipy") if m in sys.modules))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["drifted"] is False


@pytest.fixture(scope="module")
def drift_gcs_bucket():
    with fake_gcs("refit-drift-profile"):
        yield "gs://refit-drift-profile"


def test_gcs_parquet_is_profiled_from_a_chunked_local_copy(drift_gcs_bucket, tmp_path):
    from refit.io.tables import write_parquet

    table = _all_types_table(6_000, np.random.default_rng(8))
    write_parquet(table, f"{drift_gcs_bucket}/one/window.parquet")
    write_parquet(table.slice(0, 2_500), f"{drift_gcs_bucket}/parts/a.parquet")
    write_parquet(table.slice(2_500), f"{drift_gcs_bucket}/parts/b.parquet")
    whole = profile_table(table)
    _assert_same_profile(whole, profile_uri(f"{drift_gcs_bucket}/one/window.parquet"))
    _assert_same_profile(whole, profile_uri(f"{drift_gcs_bucket}/parts"))
    with pytest.raises(DataError, match="cannot read data at gs://refit-drift-profile/none"):
        profile_uri(f"{drift_gcs_bucket}/none")


def test_values_that_round_away_in_the_integer_path_stay_distinct() -> None:
    # -2.0 and -1.4e-45 lie 2.0 apart once -2.0 is subtracted: the integral fast path must not
    # take -1.4e-45 for 0.0 (found by hypothesis against scipy's KS).
    import numpy as np
    import pyarrow as pa

    from refit.drift import detect_drift

    tiny = -1.401298464324817e-45
    result = detect_drift(pa.table({"x": np.array([0.0])}), pa.table({"x": np.array([-2.0, tiny])}))
    assert result.features["x"].statistic == 1.0
