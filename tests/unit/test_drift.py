import json

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from refit.drift import (
    DriftResult,
    TestOutcome,
    TestSpec,
    available_tests,
    detect_drift,
    get_test,
    register,
    render_drift_html,
)
from refit.drift.base import _REGISTRY
from refit.drift.binning import reference_quantile_bins
from refit.drift.profile import NumericSummary
from refit.errors import DataError, DriftError

N = 2000


@pytest.fixture
def tables():
    rng = np.random.default_rng(42)
    cats = np.array(["a", "b", "c"])
    reference = pa.table(
        {
            "num_stable": rng.normal(0, 1, N),
            "num_shift": rng.normal(0, 1, N),
            "cat_stable": rng.choice(cats, N, p=[0.5, 0.3, 0.2]),
            "cat_shift": rng.choice(cats, N, p=[0.5, 0.3, 0.2]),
        }
    )
    current = pa.table(
        {
            "num_stable": rng.normal(0, 1, N),
            "num_shift": rng.normal(0.5, 1, N),
            "cat_stable": rng.choice(cats, N, p=[0.5, 0.3, 0.2]),
            "cat_shift": rng.choice(np.array(["a", "b", "c", "new"]), N, p=[0.3, 0.3, 0.2, 0.2]),
        }
    )
    return reference, current


def test_builtin_tests_registered():
    assert {"ks", "chisquare", "jensenshannon"} <= set(available_tests())
    assert get_test("ks").kind == "p_value"
    assert get_test("jensenshannon").kind == "distance"
    assert get_test("jensenshannon").feature_types == frozenset({"numeric", "categorical"})


def test_shifted_flagged_unshifted_not(tables):
    reference, current = tables
    result = detect_drift(reference, current)
    assert result.features["num_shift"].drifted
    assert result.features["cat_shift"].drifted
    assert not result.features["num_stable"].drifted
    assert not result.features["cat_stable"].drifted
    assert result.features["num_stable"].test == "ks"
    assert result.features["cat_stable"].test == "chisquare"
    assert result.features["cat_stable"].type == "categorical"
    assert result.n_features == 4 and result.n_drifted == 2
    assert result.drift_share == pytest.approx(0.5)
    assert result.drifted  # 0.5 >= 0.5
    assert not detect_drift(reference, current, drift_share_threshold=0.6).drifted


def test_ks_matches_scipy(tables):
    reference, current = tables
    result = detect_drift(reference, current, columns=["num_shift", "num_stable"])
    for name in ("num_shift", "num_stable"):
        expected = ks_2samp(reference[name].to_numpy(), current[name].to_numpy())
        feature = result.features[name]
        assert feature.statistic == pytest.approx(expected.statistic)
        assert feature.p_value == pytest.approx(expected.pvalue)
        assert feature.threshold == 0.05


def test_chisquare_matches_contingency_with_unseen_category(tables):
    reference, current = tables
    result = detect_drift(reference, current, columns=["cat_shift"])
    ref = reference["cat_shift"].to_pylist()
    cur = current["cat_shift"].to_pylist()
    cats = sorted(set(ref) | set(cur))
    assert "new" in cats and "new" not in ref
    table = np.array([[ref.count(c) for c in cats], [cur.count(c) for c in cats]])
    expected = chi2_contingency(table, correction=False)
    feature = result.features["cat_shift"]
    assert feature.statistic == pytest.approx(expected.statistic)
    assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_jensenshannon_matches_scipy(tables):
    reference, current = tables
    result = detect_drift(
        reference,
        current,
        tests={name: "jensenshannon" for name in reference.column_names},
    )
    # categorical: frequencies over the union of categories
    ref = reference["cat_shift"].to_pylist()
    cur = current["cat_shift"].to_pylist()
    cats = sorted(set(ref) | set(cur))
    p = np.array([ref.count(c) for c in cats], dtype=float)
    q = np.array([cur.count(c) for c in cats], dtype=float)
    expected = jensenshannon(p / p.sum(), q / q.sum(), base=2)
    assert result.features["cat_shift"].statistic == pytest.approx(expected)
    assert result.features["cat_shift"].p_value is None
    # numeric: common bins at the reference deciles, each holding about a tenth of it
    r, c = reference["num_shift"].to_numpy(), current["num_shift"].to_numpy()
    rc, cc = reference_quantile_bins(NumericSummary.from_values(r), NumericSummary.from_values(c))
    assert rc.sum() == N and cc.sum() == N
    assert len(rc) == 10 and np.all(np.abs(rc / N - 0.1) < 0.01)
    expected = jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2)
    assert result.features["num_shift"].statistic == pytest.approx(expected)
    assert result.features["num_shift"].drifted
    assert not result.features["num_stable"].drifted
    assert result.features["cat_shift"].drifted
    assert not result.features["cat_stable"].drifted


def test_constant_columns_do_not_crash():
    reference = pa.table({"x": [3.0] * 50, "c": ["k"] * 50})
    current = pa.table({"x": [3.0] * 40, "c": ["k"] * 40})
    result = detect_drift(reference, current)
    assert result.features["x"].statistic == 0.0
    assert result.features["x"].p_value == 1.0
    assert result.features["c"].statistic == 0.0
    assert result.features["c"].p_value == 1.0
    js = detect_drift(reference, current, tests={"x": "jensenshannon", "c": "jensenshannon"})
    assert js.features["x"].statistic == 0.0
    assert js.features["c"].statistic == 0.0
    assert js.n_drifted == 0


def test_nulls_dropped_and_counted():
    reference = pa.table(
        {"x": pa.array([1.0, 2.0, None, 3.0, float("nan")]), "c": ["a", None, "b", "a", "b"]}
    )
    current = pa.table({"x": pa.array([1.0, None, None, 2.5]), "c": ["a", "b", None, None]})
    result = detect_drift(reference, current)
    x = result.features["x"]
    assert (x.n_reference, x.missing_reference, x.n_current, x.missing_current) == (3, 2, 2, 2)
    expected = ks_2samp([1.0, 2.0, 3.0], [1.0, 2.5])
    assert x.p_value == pytest.approx(expected.pvalue)
    c = result.features["c"]
    assert (c.n_reference, c.missing_reference, c.n_current, c.missing_current) == (4, 1, 2, 2)


def test_all_missing_column_is_not_comparable_and_alerts():
    reference = pa.table({"x": [1.0, 2.0], "y": [1.0, 2.0]})
    current = pa.table({"x": pa.array([None, None], type=pa.float64()), "y": [1.0, 2.0]})
    result = detect_drift(reference, current)
    x = result.features["x"]
    assert not x.comparable and "no non-missing finite values in the current data" in x.reason
    assert x.checks["missing"]["alert"] and x.checks["missing"]["current_share"] == 1.0
    assert result.n_features == 1 and result.not_comparable == {"x": x.reason}
    with pytest.raises(DataError, match="x: no non-missing"):
        detect_drift(reference.select(["x"]), current.select(["x"]))


def test_arrow_types_map_to_feature_types():
    reference = pa.table(
        {
            "i": pa.array([1, 2, 3, 4], type=pa.int32()),
            "b": [True, False, True, True],
            "d": pa.array(["u", "v", "u", "v"]).dictionary_encode(),
            "ls": pa.array(["u", "v", "u", "v"], type=pa.large_string()),
        }
    )
    result = detect_drift(reference, reference)
    assert result.features["i"].type == "numeric"
    assert {result.features[n].type for n in ("b", "d", "ls")} == {"categorical"}
    assert result.n_drifted == 0


def test_unsupported_types_skipped_by_default_and_refused_when_named():
    reference = pa.table({"x": [1.0, 2.0, 3.0], "t": pa.array([1, 2, 3], type=pa.timestamp("s"))})
    result = detect_drift(reference, reference)
    assert "t" in result.skipped and set(result.features) == {"x"}
    with pytest.raises(DriftError, match="'t'"):
        detect_drift(reference, reference, columns=["t"])


def test_mismatched_columns_named():
    reference = pa.table({"a": [1.0], "only_ref": [1.0]})
    current = pa.table({"a": [1.0], "only_cur": [1.0]})
    result = detect_drift(reference, current)
    assert result.not_comparable == {
        "only_ref": "column is missing from the current data",
        "only_cur": "column is missing from the reference data",
    }
    assert result.n_features == 1
    with pytest.raises(DataError, match="missing from current: only_ref"):
        detect_drift(reference, current, columns=["a", "only_ref"])


def test_unknown_test_lists_known():
    with pytest.raises(DriftError, match="nope") as info:
        get_test("nope")
    for name in ("ks", "chisquare", "jensenshannon"):
        assert name in str(info.value)
    reference = pa.table({"a": [1.0, 2.0]})
    with pytest.raises(DriftError, match="known tests"):
        detect_drift(reference, reference, tests={"a": "nope"})


def test_wrong_type_names_feature():
    reference = pa.table({"colour": ["r", "g"], "size": [1.0, 2.0]})
    with pytest.raises(DriftError, match="'colour'"):
        detect_drift(reference, reference, tests={"colour": "ks"})
    with pytest.raises(DriftError, match="'size'"):
        detect_drift(reference, reference, tests={"size": "chisquare"})


def test_tests_and_thresholds_naming_unknown_columns():
    reference = pa.table({"a": [1.0, 2.0]})
    with pytest.raises(DataError, match="ghost"):
        detect_drift(reference, reference, tests={"ghost": "ks"})
    with pytest.raises(DataError, match="ghost"):
        detect_drift(reference, reference, thresholds={"ghost": 0.1})
    with pytest.raises(DriftError, match="'a'"):
        detect_drift(reference, reference, thresholds={"a": 1.5})
    with pytest.raises(DriftError, match="drift_share_threshold"):
        detect_drift(reference, reference, drift_share_threshold=2.0)


def test_thresholds_by_column_and_by_test(tables):
    reference, current = tables
    # a threshold keyed by test name applies to every ks column; a column key wins over it
    result = detect_drift(
        reference, current, thresholds={"ks": 1e-300, "cat_shift": 0.01}, columns=None
    )
    assert result.features["num_stable"].threshold == 1e-300
    assert result.features["cat_shift"].threshold == 0.01
    assert result.features["cat_stable"].threshold == 0.05


def test_round_trip(tables):
    reference, current = tables
    result = detect_drift(reference, current, tests={"num_stable": "jensenshannon"})
    data = result.to_dict()
    assert set(data) >= {"drifted", "drift_share", "n_features", "n_drifted", "features"}
    feature = data["features"]["num_shift"]
    assert set(feature) >= {"test", "type", "statistic", "p_value", "threshold", "drifted"}
    assert data["features"]["num_stable"]["p_value"] is None
    restored = DriftResult.from_dict(json.loads(json.dumps(data)))
    assert restored == result


def test_from_dict_minimal_contract_fields():
    data = {
        "drifted": False,
        "drift_share": 0.0,
        "n_features": 1,
        "n_drifted": 0,
        "features": {
            "a": {
                "test": "jensenshannon",
                "type": "numeric",
                "statistic": 0.01,
                "p_value": None,
                "threshold": 0.1,
                "drifted": False,
            }
        },
    }
    result = DriftResult.from_dict(data)
    assert result.features["a"].kind == "distance"
    with pytest.raises(DataError, match="n_features"):
        DriftResult.from_dict({k: v for k, v in data.items() if k != "n_features"})


def test_drift_share_counts():
    rng = np.random.default_rng(7)
    cols = {f"f{i}": rng.normal(0, 1, N) for i in range(5)}
    reference = pa.table(cols)
    current = pa.table(
        {
            name: (values + 1.0 if name in ("f0", "f3") else rng.normal(0, 1, N))
            for name, values in cols.items()
        }
    )
    result = detect_drift(reference, current, drift_share_threshold=0.3)
    assert result.n_drifted == 2
    assert result.drift_share == pytest.approx(2 / 5)
    assert result.drifted
    assert result.drifted_features() == sorted(
        result.drifted_features(), key=lambda n: result.features[n].p_value
    )
    assert set(result.drifted_features()) == {"f0", "f3"}


def test_register_new_test_module_style():
    def mean_gap(reference, current, feature_type):
        return TestOutcome(statistic=abs(float(reference.mean() - current.mean())), p_value=None)

    spec = register(
        TestSpec(
            name="mean_gap_test",
            feature_types=frozenset({"numeric"}),
            default_threshold=0.5,
            kind="distance",
            fn=mean_gap,
        )
    )
    try:
        assert "mean_gap_test" in available_tests()
        reference = pa.table({"x": [0.0, 1.0, 2.0]})
        current = pa.table({"x": [1.0, 2.0, 3.0]})
        result = detect_drift(reference, current, tests={"x": "mean_gap_test"})
        assert result.features["x"].statistic == pytest.approx(1.0)
        assert result.features["x"].drifted
    finally:
        _REGISTRY.pop(spec.name)
    with pytest.raises(DriftError, match="kind"):
        TestSpec("bad", frozenset({"numeric"}), 0.1, "oops", mean_gap)  # type: ignore[arg-type]


def test_report_html(tables):
    reference, current = tables
    current = current.append_column("<script>x</script>", pa.array(["a"] * N))
    reference = reference.append_column("<script>x</script>", pa.array(["a"] * N))
    result = detect_drift(reference, current, tests={"num_stable": "jensenshannon"})
    html = render_drift_html(result, "Drift <window 3>")
    assert "2 of 5 features drifted, share 0.40" in html
    assert html.index("features drifted") < html.index("<table")
    assert "http" not in html.lower()
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Drift &lt;window 3&gt;" in html
    positions = {
        name: html.index(f"<td>{name}</td>")
        for name in ("num_shift", "cat_shift", "num_stable", "cat_stable")
    }
    assert max(positions["num_shift"], positions["cat_shift"]) < min(
        positions["num_stable"], positions["cat_stable"]
    )
    for column in ("test", "statistic", "p-value", "threshold", "drifted"):
        assert f"<th>{column}</th>" in html


def test_sorted_features_order(tables):
    reference, current = tables
    result = detect_drift(reference, current)
    ordered = result.sorted_features()
    assert [f.drifted for f in ordered] == sorted((f.drifted for f in ordered), reverse=True)
    stable = [f.p_value for f in ordered if not f.drifted]
    assert stable == sorted(stable)


# --- multiple-testing correction ------------------------------------------------------------


def _unshifted(n_cols: int, rows: int, seed: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ref = pa.table({f"x{i}": rng.normal(size=rows) for i in range(n_cols)})
    cur = pa.table({f"x{i}": rng.normal(size=rows) for i in range(n_cols)})
    return ref, cur


def test_bh_adjusted_p_values_match_scipy() -> None:
    ref, cur = _unshifted(12, 500, seed=3)
    result = detect_drift(ref, cur, correction="bh")
    names = sorted(result.features)
    raw = np.array([result.features[n].p_value for n in names])
    expected = stats.false_discovery_control(raw, method="bh")
    got = np.array([result.features[n].p_value_adjusted for n in names])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_correction_removes_chance_alarms_on_unshifted_columns() -> None:
    # 40 unshifted columns at 0.05: uncorrected, some are flagged by chance
    ref, cur = _unshifted(40, 2000, seed=2)
    raw = detect_drift(ref, cur, correction="none")
    assert raw.n_drifted == 4
    assert detect_drift(ref, cur, correction="bh").n_drifted == 0
    assert detect_drift(ref, cur, correction="bonferroni").n_drifted == 0


def test_correction_keeps_real_shifts() -> None:
    ref, cur = _unshifted(10, 2000, seed=5)
    cur = cur.set_column(0, "x0", pa.array(cur["x0"].to_numpy() + 0.3))
    for correction in ("bh", "bonferroni"):
        result = detect_drift(ref, cur, correction=correction)
        assert result.drifted_features() == ["x0"], correction


def test_bonferroni_multiplies_by_the_number_of_p_value_tests() -> None:
    ref, cur = _unshifted(4, 300, seed=2)
    result = detect_drift(ref, cur, correction="bonferroni")
    for f in result.features.values():
        assert f.p_value_adjusted == pytest.approx(min(1.0, 4 * f.p_value))


def test_unknown_correction_is_refused() -> None:
    ref, cur = _unshifted(2, 50, seed=1)
    with pytest.raises(DriftError, match="correction must be one of"):
        detect_drift(ref, cur, correction="holm")
