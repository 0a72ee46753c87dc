"""The registry's tests (PSI, Wasserstein, L-infinity, KL, Hellinger, ...), the automatic choice,
the missing / infinite / new-category checks and per-feature "not comparable" results."""

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import euclidean, jensenshannon
from scipy.stats import entropy, wasserstein_distance

from refit.drift import available_tests, detect_drift, get_test
from refit.drift.binning import EPSILON
from refit.drift.detect import LARGE_SAMPLE, choose_test
from refit.drift.profile import CategoricalSummary, NumericSummary
from refit.errors import DriftError

RNG = np.random.default_rng(11)
REF_CATS = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
CUR_CATS = np.array(["a"] * 30 + ["b"] * 40 + ["c"] * 20 + ["d"] * 10, dtype=object)


def _props(counts, eps=0.0):
    p = np.asarray(counts, dtype=float) / np.sum(counts)
    return np.where(p == 0, eps, p) if eps else p


def test_all_tests_registered_with_kinds_and_types():
    assert set(available_tests()) >= {
        "ks",
        "chisquare",
        "jensenshannon",
        "psi",
        "wasserstein",
        "linf",
        "kl",
        "hellinger",
    }
    assert get_test("wasserstein").feature_types == frozenset({"numeric"})
    assert get_test("linf").feature_types == frozenset({"categorical"})
    for name in ("psi", "kl", "hellinger", "jensenshannon"):
        assert get_test(name).feature_types == frozenset({"numeric", "categorical"})
        assert get_test(name).kind == "distance"
    assert get_test("ks").kind == "p_value" and get_test("chisquare").kind == "p_value"


def test_categorical_distances_match_scipy_and_formulas():
    # categories a, b, c, d; "d" is unseen in the reference
    ref, cur = np.array([50, 30, 20, 0]), np.array([30, 40, 20, 10])
    p, q = _props(ref, EPSILON), _props(cur, EPSILON)
    cases = {
        "psi": float(np.sum((q - p) * np.log(q / p))),
        "kl": float(entropy(p, q)),
        "hellinger": euclidean(np.sqrt(_props(ref)), np.sqrt(_props(cur))) / math.sqrt(2),
        "linf": 0.2,
        "jensenshannon": float(jensenshannon(_props(ref), _props(cur), base=2)),
    }
    for name, expected in cases.items():
        outcome = get_test(name).fn(REF_CATS, CUR_CATS, "categorical")
        assert outcome.statistic == pytest.approx(expected, rel=1e-9), name
        assert outcome.p_value is None
    # PSI is the symmetrised KL
    psi = get_test("psi").fn(REF_CATS, CUR_CATS, "categorical").statistic
    assert psi == pytest.approx(entropy(p, q) + entropy(q, p), rel=1e-4)  # up to smoothing


def test_wasserstein_is_normalised_by_the_reference_std():
    reference = RNG.normal(10.0, 4.0, 500)
    current = RNG.normal(12.0, 4.0, 400)
    outcome = get_test("wasserstein").fn(reference, current, "numeric")
    expected = wasserstein_distance(reference, current) / reference.std()
    assert outcome.statistic == pytest.approx(expected, rel=1e-9)
    assert outcome.statistic == pytest.approx(0.5, abs=0.15)
    # a constant reference leaves the distance in the data's units
    flat = get_test("wasserstein").fn(np.full(10, 3.0), np.full(10, 5.0), "numeric")
    assert flat.statistic == pytest.approx(2.0)


def test_bucketed_wasserstein_within_its_stated_bound():
    reference = RNG.lognormal(0.0, 1.0, 50_000)
    current = RNG.lognormal(0.1, 1.0, 50_000)
    ref, cur = NumericSummary.from_values(reference), NumericSummary.from_values(current)
    assert not ref.exact
    outcome = get_test("wasserstein").summary_fn(ref, cur, "numeric")
    exact = wasserstein_distance(reference, current) / reference.std()
    assert 0 < outcome.error_bound < 0.01
    assert abs(outcome.statistic - exact) <= outcome.error_bound


def test_numeric_binned_tests_see_a_shift():
    reference = RNG.normal(0, 1, 5000)
    same = RNG.normal(0, 1, 5000)
    shifted = RNG.normal(0.5, 1, 5000)
    for name in ("psi", "kl", "hellinger", "jensenshannon"):
        spec = get_test(name)
        calm = spec.fn(reference, same, "numeric").statistic
        moved = spec.fn(reference, shifted, "numeric").statistic
        assert calm < spec.default_threshold <= moved, (name, calm, moved)


def test_wrong_type_and_unknown_test_are_typed_errors_naming_the_feature():
    table = pa.table({"size": [1.0, 2.0, 3.0], "colour": ["r", "g", "b"]})
    with pytest.raises(DriftError, match="'size'"):
        detect_drift(table, table, tests={"size": "linf"})
    with pytest.raises(DriftError, match="'colour'"):
        detect_drift(table, table, tests={"colour": "wasserstein"})
    with pytest.raises(DriftError, match="unknown drift test 'emd'.*known tests: chisquare"):
        detect_drift(table, table, tests={"size": "emd"})


def test_automatic_choice_by_type_sample_size_and_cardinality():
    small = NumericSummary.from_values(RNG.normal(size=1000))
    large = NumericSummary(count=LARGE_SAMPLE + 1)
    assert choose_test("numeric", small, small) == "ks"
    assert choose_test("numeric", small, large) == "ks"  # the smaller side decides
    assert choose_test("numeric", large, large) == "wasserstein"
    few = CategoricalSummary({"a": 600, "b": 400})
    assert choose_test("categorical", few, few) == "chisquare"
    # 300 categories over 1000 rows: under 5 expected rows per category
    sparse = CategoricalSummary({f"c{i}": 3 for i in range(300)})
    assert choose_test("categorical", sparse, few) == "jensenshannon"
    many = CategoricalSummary({"a": LARGE_SAMPLE, "b": LARGE_SAMPLE})
    assert choose_test("categorical", many, many) == "jensenshannon"
    # the override wins
    table = pa.table({"x": RNG.normal(size=200)})
    assert detect_drift(table, table, tests={"x": "psi"}).features["x"].test == "psi"
    assert detect_drift(table, table).features["x"].test == "ks"


def test_missing_rise_is_its_own_check_not_hidden_by_dropping_nulls():
    values = RNG.normal(size=1000)
    reference = pa.table({"x": values})
    with_nulls = pa.array(np.where(np.arange(1000) % 5 == 0, np.nan, values))
    result = detect_drift(reference, pa.table({"x": with_nulls}))
    x = result.features["x"]
    assert not x.drifted  # the remaining values come from the same distribution
    assert x.checks["missing"]["alert"]
    assert x.checks["missing"]["current_share"] == pytest.approx(0.2)
    assert result.check_alerts == {"x": ["missing"]}
    assert result.drift_share == 0.0  # checks do not count toward the drift share


def test_new_categories_are_their_own_check():
    reference = pa.table({"c": list(REF_CATS)})
    result = detect_drift(reference, pa.table({"c": list(CUR_CATS)}))
    check = result.features["c"].checks["new_categories"]
    assert check["alert"] and check["categories"] == ["d"] and check["count"] == 1
    assert check["current_share"] == pytest.approx(0.1)
    quiet = detect_drift(reference, reference).features["c"].checks["new_categories"]
    assert not quiet["alert"] and quiet["count"] == 0


def test_infinities_are_counted_apart_and_checked():
    finite = RNG.normal(size=500)
    current = finite.copy()
    current[:100] = np.inf
    current[100:110] = -np.inf
    result = detect_drift(pa.table({"x": finite}), pa.table({"x": current}))
    x = result.features["x"]
    assert x.comparable and x.n_current == 390
    assert x.checks["infinite"]["alert"] and x.checks["infinite"]["current"] == 110
    only_inf = detect_drift(
        pa.table({"x": finite, "y": finite}),
        pa.table({"x": np.full(500, np.inf), "y": finite}),
    )
    assert not only_inf.features["x"].comparable
    assert "no non-missing finite values in the current data" in only_inf.features["x"].reason


def test_type_change_and_single_row_give_results_not_crashes():
    reference = pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "z": [1.0, 2.0, 3.0]})
    current = pa.table({"x": ["1", "2", "3"], "c": ["a", "b", "b"], "z": [2.0, 3.0, 4.0]})
    result = detect_drift(reference, current)
    assert not result.features["x"].comparable
    assert "type changed: numeric (double) in the reference, categorical (string)" in (
        result.features["x"].reason
    )
    assert result.n_features == 2
    single = detect_drift(reference, current.slice(0, 1).select(["c", "z"]), columns=["c", "z"])
    assert single.features["z"].n_current == 1
    assert 0.0 <= single.features["z"].p_value <= 1.0
    data = single.to_dict()
    assert set(data["features"]["z"]) >= {"test", "statistic", "p_value", "threshold", "drifted"}
