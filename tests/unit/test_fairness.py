"""Fairness in the promotion gate: per-group metrics, disparities, intervals, blocking."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from statsmodels.stats.proportion import proportion_confint

from refit.errors import DataError, PolicyError
from refit.evaluation import (
    FairnessConfig,
    GateConfig,
    compute_fairness,
    fairness_report,
    gate,
    render_checks_markdown,
    render_fairness_markdown,
)
from refit.io.tables import write_parquet
from refit.steps import evaluate_model
from refit.training import train
from refit.training.artifacts import save_model

# Hand-computed table: groups A (4 rows), B (4 rows), C (1 row, below min_group_size 2).
#   A: y 1 1 0 0 | challenger 1 0 1 0 | champion 1 1 0 0
#   B: y 1 1 1 0 | challenger 1 1 1 1 | champion 1 1 1 0
#   C: y 1       | challenger 0       | champion 1
GROUPS = ["A"] * 4 + ["B"] * 4 + ["C"]
Y = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1])
CHALLENGER = np.array([1, 0, 1, 0, 1, 1, 1, 1, 0])
CHAMPION = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1])


@pytest.fixture(scope="module")
def small():
    return compute_fairness(
        GROUPS, Y, CHALLENGER, CHAMPION, attribute="g", min_group_size=2, n_resamples=500
    ).to_dict()


def _group(report: dict, name: str) -> dict:
    return next(g for g in report["groups"] if g["group"] == name)


def test_per_group_metrics_are_the_hand_computed_values(small):
    a, b, c = (_group(small, g) for g in "ABC")
    assert (a["count"], a["positives"], b["count"], b["positives"]) == (4, 2, 4, 3)
    assert {m: v["value"] for m, v in a["challenger"].items()} == {
        "selection_rate": 0.5, "tpr": 0.5, "fpr": 0.5, "accuracy": 0.5,
    }  # fmt: skip
    assert {m: v["value"] for m, v in b["challenger"].items()} == {
        "selection_rate": 1.0, "tpr": 1.0, "fpr": 1.0, "accuracy": 0.75,
    }  # fmt: skip
    assert {m: v["value"] for m, v in b["champion"].items()} == {
        "selection_rate": 0.75, "tpr": 1.0, "fpr": 0.0, "accuracy": 1.0,
    }  # fmt: skip
    # C has no negatives: FPR undefined, not zero
    assert c["challenger"]["fpr"] is None and c["challenger"]["tpr"]["value"] == 0.0
    assert c["used"] == {
        "demographic_parity_difference": False,
        "equal_opportunity_difference": False,
    }


def test_group_intervals_are_wilson(small):
    a = _group(small, "A")["challenger"]
    low, high = proportion_confint(2, 4, alpha=0.05, method="wilson")
    assert a["selection_rate"]["low"] == pytest.approx(low)
    assert a["selection_rate"]["high"] == pytest.approx(high)
    b = _group(small, "B")["challenger"]
    low, high = proportion_confint(3, 4, alpha=0.05, method="wilson")
    assert (b["accuracy"]["low"], b["accuracy"]["high"]) == pytest.approx((low, high))


def test_differences_exclude_small_groups_and_name_the_extremes(small):
    chal, champ, inc = small["challenger"], small["champion"], small["increase"]
    # C (selection 0, TPR 0) would make both differences 1.0 if it counted.
    dp = chal["demographic_parity_difference"]
    assert dp["value"] == 0.5 and (dp["max_group"], dp["min_group"]) == ("B", "A")
    assert chal["equal_opportunity_difference"]["value"] == 0.5
    assert champ["demographic_parity_difference"]["value"] == 0.25
    assert champ["equal_opportunity_difference"]["value"] == 0.0
    assert inc["demographic_parity_difference"]["value"] == pytest.approx(0.25)
    assert inc["equal_opportunity_difference"]["value"] == pytest.approx(0.5)
    for interval in (dp, inc["demographic_parity_difference"]):
        assert interval["low"] <= interval["value"] <= interval["high"]
    assert any("'C' has 1 rows" in n and "not used" in n for n in small["notes"])


def test_bootstrap_is_seeded():
    args = (GROUPS, Y, CHALLENGER, CHAMPION)
    one = compute_fairness(*args, min_group_size=2, n_resamples=300, seed=3).to_dict()
    two = compute_fairness(*args, min_group_size=2, n_resamples=300, seed=3).to_dict()
    assert one == two
    json.dumps(one)  # JSON-ready, no NaN


def test_difference_interval_covers_the_true_value_about_95_percent():
    # Two groups of 400; selection probabilities 0.55 and 0.40: true difference 0.15.
    rng = np.random.default_rng(2024)
    covered = 0
    trials = 200
    for t in range(trials):
        groups = ["a"] * 400 + ["b"] * 400
        pred = np.concatenate([rng.random(400) < 0.55, rng.random(400) < 0.40]).astype(int)
        y = rng.integers(0, 2, 800)
        rep = compute_fairness(groups, y, pred, n_resamples=300, seed=t).to_dict()
        dp = rep["challenger"]["demographic_parity_difference"]
        covered += dp["low"] <= 0.15 <= dp["high"]
    assert 0.88 <= covered / trials <= 0.99


def test_wilson_group_intervals_cover_about_95_percent():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(300):
        pred = (rng.random(60) < 0.3).astype(int)
        rep = compute_fairness(["g"] * 60, np.ones(60, int), pred, n_resamples=100).to_dict()
        sel = rep["groups"][0]["challenger"]["selection_rate"]
        covered += sel["low"] <= 0.3 <= sel["high"]
    assert 0.90 <= covered / 300 <= 0.99


def test_missing_attribute_values_form_their_own_group():
    rep = compute_fairness(
        ["x", None, "x", None], np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0]),
        min_group_size=1, n_resamples=100,
    ).to_dict()  # fmt: skip
    assert [g["group"] for g in rep["groups"]] == ["x", "<missing>"]
    assert any("2 rows have no" in n for n in rep["notes"])


# --- the gate --------------------------------------------------------------------------------

METRICS = {"accuracy": 0.9}


def _gate(fairness: dict, report: dict, champion: dict | None = METRICS):
    config = GateConfig.from_dict({"thresholds": {"accuracy": 0.5}, "fairness": fairness})
    return gate(METRICS, champion, config, comparison={"fairness": report})


def test_ceiling_blocks_and_passes(small):
    base = {"attribute": "g", "min_group_size": 2}
    blocked = _gate({**base, "max_demographic_parity_difference": 0.4}, small)
    assert not blocked.blessed
    assert any(
        "demographic-parity difference 0.500" in r and "> ceiling 0.400" in r
        for r in blocked.reasons
    )
    assert any(c["kind"] == "fairness" and not c["passed"] for c in blocked.checks)
    passed = _gate({**base, "max_demographic_parity_difference": 0.5}, small)
    assert passed.blessed, passed.reasons
    assert any("'C' has 1 rows" in r for r in passed.reasons)  # said, not used for blocking
    md = render_checks_markdown(blocked)
    assert "| fairness | demographic_parity_difference |" in md


def test_champion_margin_blocks_and_passes(small):
    base = {"attribute": "g", "min_group_size": 2}
    # DP increase 0.25 and EO increase 0.5 over the champion
    blocked = _gate({**base, "max_increase_over_champion": 0.3}, small)
    assert not blocked.blessed
    failed = [c for c in blocked.checks if not c["passed"]]
    assert [(c["kind"], c["metric"]) for c in failed] == [
        ("fairness-champion", "equal_opportunity_difference")
    ]
    assert "increase +0.500" in failed[0]["detail"] and "beyond +0.300" in failed[0]["detail"]
    assert _gate({**base, "max_increase_over_champion": 0.5}, small).blessed
    # no champion: the margin cannot apply, said so; ceilings alone
    first = compute_fairness(GROUPS, Y, CHALLENGER, min_group_size=2, n_resamples=100).to_dict()
    result = _gate({**base, "max_increase_over_champion": 0.0}, first, champion=None)
    assert result.blessed and result.first_run
    assert any("no champion: judged on absolute ceilings alone" in r for r in result.reasons)


def test_unmeasurable_difference_and_missing_results_fail_closed(small):
    # min_group_size 4: only A and B have 4 rows, but no group has 4 positives -> EO undefined
    rep = compute_fairness(GROUPS, Y, CHALLENGER, CHAMPION, min_group_size=4).to_dict()
    assert rep["challenger"]["equal_opportunity_difference"] is None
    result = _gate({"attribute": "g", "min_group_size": 4,
                    "max_equal_opportunity_difference": 0.9}, rep)  # fmt: skip
    assert not result.blessed
    assert any("cannot be measured" in r and "4 actual positives" in r for r in result.reasons)
    result = gate(METRICS, None, GateConfig.from_dict(
        {"thresholds": {"accuracy": 0.5}, "fairness": {"attribute": "g"}}))  # fmt: skip
    assert not result.blessed
    assert any("no fairness results given" in r for r in result.reasons)


def test_report_only_section_does_not_block(small):
    result = _gate({"attribute": "g", "min_group_size": 2}, small)
    assert result.blessed
    assert any("reported only" in r for r in result.reasons)


def test_config_validation_and_round_trip():
    config = GateConfig.from_dict(
        {"thresholds": {"accuracy": 0.5},
         "fairness": {"attribute": "region", "max_demographic_parity_difference": 0.1,
                      "max_equal_opportunity_difference": 0.1,
                      "max_increase_over_champion": 0.02, "min_group_size": 30}}
    )  # fmt: skip
    assert isinstance(config.fairness, FairnessConfig)
    assert GateConfig.from_dict(config.to_dict()) == config
    with pytest.raises(PolicyError, match=r"'fairness' has unknown key\(s\) \['max_dpd'\]"):
        FairnessConfig.from_dict({"attribute": "r", "max_dpd": 0.1})
    with pytest.raises(PolicyError, match="needs 'attribute'"):
        FairnessConfig.from_dict({"max_demographic_parity_difference": 0.1})
    with pytest.raises(PolicyError, match="max_increase_over_champion"):
        FairnessConfig.from_dict({"attribute": "r", "max_increase_over_champion": -1})
    with pytest.raises(PolicyError, match="min_group_size"):
        FairnessConfig.from_dict({"attribute": "r", "min_group_size": 0})


# --- real models ----------------------------------------------------------------------------


def region_table(n: int, seed: int) -> pa.Table:
    """x1 runs higher in the north, so a model on x1 selects northerners more often."""
    rng = np.random.default_rng(seed)
    region = np.where(rng.random(n) < 0.5, "north", "south")
    x1 = rng.normal(size=n) + np.where(region == "north", 0.6, -0.6)
    x2 = rng.normal(size=n)
    y = (x1 + 0.5 * x2 + 0.8 * rng.normal(size=n) > 0).astype(int)
    region = region.astype(object)
    region[:12] = "island"  # a group too small to judge
    return pa.table({"x1": x1, "x2": x2, "region": region.astype(str), "y": y})


@pytest.fixture(scope="module")
def models():
    fair = train(region_table(1500, 1), "y", trainer="logistic_regression", exclude=("region",))
    return {"fair": fair}


def test_fairness_report_on_real_models(models):
    holdout = region_table(800, 9)
    config = FairnessConfig(attribute="region", min_group_size=30)
    rep = fairness_report(models["fair"], models["fair"], holdout, config, n_resamples=300)
    d = rep.to_dict()
    assert d["positive_label"] == 1
    assert [g["group"] for g in d["groups"]] == ["island", "north", "south"]
    assert not _group(d, "island")["used"]["demographic_parity_difference"]
    dp = d["challenger"]["demographic_parity_difference"]
    assert (dp["max_group"], dp["min_group"]) == ("north", "south")
    assert dp["low"] < dp["value"] < dp["high"]
    assert d["increase"]["demographic_parity_difference"]["value"] == 0.0
    md = render_fairness_markdown(d)
    assert "| north | challenger |" in md and "| island | champion |" in md
    assert "no (too small)" in md


def test_missing_attribute_is_a_data_error_naming_the_columns(models):
    holdout = region_table(100, 3).drop_columns(["region"])
    with pytest.raises(DataError, match=r"'region'.*columns present: \['x1', 'x2', 'y'\]"):
        fairness_report(models["fair"], None, holdout, FairnessConfig(attribute="region"))


def test_positive_label_must_be_a_class(models):
    with pytest.raises(PolicyError, match=r"positive_label' 'yes' is not one of .*\[0, 1\]"):
        fairness_report(
            models["fair"], None, region_table(50, 4),
            FairnessConfig(attribute="region", positive_label="yes"),
        )  # fmt: skip


def test_step_reports_fairness_and_fails_closed_on_a_missing_attribute(models, tmp_path: Path):
    d = tmp_path / "m"
    save_model(models["fair"], d)
    hold = str(tmp_path / "holdout.parquet")
    write_parquet(region_table(600, 5), hold)
    gate_config = {
        "thresholds": {"accuracy": 0.6},
        "fairness": {"attribute": "region", "max_demographic_parity_difference": 0.95},
    }
    out = evaluate_model(str(d), hold, gate_config)
    first = out.audit
    assert out.blessed, out.reasons
    assert out.extra["fairness"] == out.fairness
    assert out.fairness["challenger"]["demographic_parity_difference"]["value"] > 0.1
    assert "| south | challenger |" in out.fairness_markdown
    gate_config["fairness"]["attribute"] = "postcode"
    out = evaluate_model(str(d), hold, gate_config)
    assert not out.blessed
    reason = next(r for r in out.reasons if "postcode" in r)
    assert "columns present" in reason and "'region'" in reason and "failing closed" in reason
    assert "**Cannot check:**" in out.fairness_markdown
    # the summary the audit log records (a stateful step records it)
    payloads = [json.loads(json.dumps(first)), json.loads(json.dumps(out.audit))]
    assert [p["blessed"] for p in payloads] == [True, False]
    assert payloads[0]["fairness"]["attribute"] == "region"
    assert payloads[0]["fairness"]["groups"]["island"] == sum(
        1 for v in region_table(600, 5).column("region").to_pylist() if v == "island"
    )
    assert "columns present" in payloads[1]["fairness"]["error"]
