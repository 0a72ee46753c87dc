"""The multivariate drift check: a broken correlation that no per-feature test flags."""

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from refit import steps
from refit.drift import detect_drift
from refit.drift.multivariate import MultivariateConfig, multivariate_drift
from refit.errors import DriftError
from refit.io.tables import write_parquet

FEATURES = ["income", "spend", "age", "tenure", "region"]


def make(rows: int, rho: float, seed: int) -> pa.Table:
    """Income and spend correlated ``rho`` (same marginals whatever ``rho``), plus others."""
    rng = np.random.default_rng(seed)
    z1, z2 = rng.standard_normal(rows), rng.standard_normal(rows)
    spend = rho * z1 + np.sqrt(1.0 - rho**2) * z2
    return pa.table(
        {
            "income": 50.0 + 10.0 * z1,
            "spend": 20.0 + 3.0 * spend,
            "age": rng.normal(40.0, 10.0, rows),
            "tenure": rng.exponential(30.0, rows),
            "region": rng.choice(["n", "s", "e"], rows),
            "label": rng.integers(0, 2, rows),
        }
    )


REFERENCE = make(3000, 0.9, seed=1)


@pytest.mark.parametrize("rho", [0.0, -0.9])
def test_a_planted_correlation_change_is_flagged_and_no_per_feature_test_flags_it(rho):
    current = make(2000, rho, seed=2)
    per_feature = detect_drift(REFERENCE, current, columns=FEATURES)
    assert per_feature.n_drifted == 0 and not per_feature.drifted

    result = multivariate_drift(REFERENCE, current, FEATURES)

    assert result.drifted
    assert result.p_value is not None and result.p_value < 0.01
    assert result.statistic is not None and result.statistic > 2.0
    assert result.features == ["income", "spend", "age", "tenure"]
    assert "region" in result.skipped


@pytest.mark.parametrize("seed", range(2, 8))
def test_a_stable_window_is_not_flagged(seed):
    result = multivariate_drift(REFERENCE, make(2000, 0.9, seed=seed + 10), FEATURES)

    assert not result.drifted
    assert result.statistic is not None and result.statistic < 1.1


def test_seeded_results_repeat_and_rows_are_capped():
    current = make(4000, 0.0, seed=3)
    config = {"max_rows": 1000, "permutations": 199, "seed": 7}

    first = multivariate_drift(REFERENCE, current, FEATURES, config)
    again = multivariate_drift(REFERENCE, current, FEATURES, config)

    assert first.to_dict() == again.to_dict()
    assert first.rows == {"reference_fit": 500, "reference_holdout": 500, "current": 1000}
    # the smallest p-value 199 shuffles can give
    assert first.p_value == pytest.approx(1 / 200)


def test_too_few_features_or_rows_is_a_note_not_an_error():
    one = multivariate_drift(REFERENCE, make(500, 0.0, 2), ["income", "region"])
    assert not one.drifted and one.p_value is None
    assert "at least 2 are needed" in one.note

    few = multivariate_drift(REFERENCE, make(10, 0.0, 2), FEATURES)
    assert not few.drifted and "at least 20 a side" in few.note


def test_constant_and_missing_values_are_handled():
    current = make(2000, 0.0, seed=4)
    constant = pa.array(np.full(REFERENCE.num_rows, 1.0))
    reference = REFERENCE.append_column("flag", constant)
    with_nan = current.column("age").to_numpy().astype(float, copy=True)
    with_nan[::7] = np.nan
    current = current.set_column(2, "age", pa.array(with_nan)).append_column(
        "flag", pa.array(np.full(current.num_rows, 1.0))
    )

    result = multivariate_drift(reference, current, [*FEATURES, "flag"])

    assert result.skipped["flag"] == "constant in the reference"
    assert result.drifted


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"alpha": 1.5}, "multivariate.alpha"),
        ({"max_rows": 10}, "multivariate.max_rows"),
        ({"permutations": 5.5}, "multivariate.permutations"),
        ({"method": "magic"}, "multivariate.method 'magic'"),
        ({"alfa": 0.1}, "unknown key(s) ['alfa']"),
        ({"min_error_ratio": 0.5}, "multivariate.min_error_ratio"),
    ],
)
def test_bad_settings_are_refused_by_name(config, message):
    with pytest.raises(DriftError, match=re.escape(message)):
        MultivariateConfig.from_dict(config)


def test_the_drift_step_runs_it_on_request_and_reports_it_beside_the_feature_table(tmp_path):
    reference, window = tmp_path / "reference.parquet", tmp_path / "window.parquet"
    write_parquet(REFERENCE, str(reference))
    write_parquet(make(2000, -0.9, seed=5), str(window))

    off = steps.detect_drift(str(window), "label", reference_path=str(reference))
    on = steps.detect_drift(
        str(window),
        "label",
        reference_path=str(reference),
        # as KFP sends numbers: doubles
        multivariate={"method": "pca_reconstruction", "permutations": 199.0},
    )

    assert "multivariate" not in off.result and "multivariate" not in off.audit
    assert 'id="multivariate"' not in off.html
    assert on.drift_share == off.drift_share == 0.0
    assert on.result["multivariate"]["drifted"] is True
    assert on.audit["multivariate"]["drifted"] is True
    assert on.audit["multivariate"]["p_value"] == pytest.approx(1 / 200)
    json.dumps(on.result)
    html = on.html
    assert (
        html.index('id="features"')
        < html.index('id="multivariate"')
        < html.index("<h2>Distributions</h2>")
    )


def test_the_drift_step_says_why_without_reference_rows(tmp_path):
    from refit.drift.accumulate import profile_table
    from refit.drift.profile_io import save_profile

    profile, window = tmp_path / "profile.json", tmp_path / "window.parquet"
    save_profile(profile_table(REFERENCE), str(profile))
    write_parquet(make(500, 0.0, seed=6), str(window))

    out = steps.detect_drift(
        str(window),
        "label",
        reference_profile_path=str(profile),
        multivariate={"method": "pca_reconstruction"},
    )

    assert out.result["multivariate"]["drifted"] is False
    assert "no reference data" in out.result["multivariate"]["note"]
    assert "no reference data" in out.html
