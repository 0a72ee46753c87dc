"""The declarative gate on paired statistics, with real trained models."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from refit.errors import PolicyError, SchemaError, TrainingError
from refit.evaluation import (
    FIRST_RUN_REASON,
    NO_THRESHOLDS_REASON,
    GateConfig,
    compare_models,
    gate,
    render_checks_markdown,
)
from refit.io.tables import write_parquet
from refit.steps import evaluate_model
from refit.training import train
from refit.training.artifacts import save_model

LEGACY = {"thresholds": {"accuracy": 0.7, "roc_auc": 0.7}, "max_degradation": 0.03}


def make_table(n: int, seed: int, noise: float = 0.8, blind: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 0.5 * x2 + noise * rng.normal(size=n) > 0).astype(int)
    if blind:  # x1 carries no signal in this table: a model trained on it leans on x2 alone
        x1 = rng.permutation(x1)
    seg = np.where(x1 > 1.2, "tail", "body")
    return pa.table({"x1": x1, "x2": x2, "seg": seg, "y": y})


@pytest.fixture(scope="module")
def models():
    good = train(make_table(1500, 1), "y", trainer="logistic_regression", exclude=("seg",))
    twin = train(make_table(1500, 2), "y", trainer="logistic_regression", exclude=("seg",))
    weak = train(make_table(600, 3, blind=True), "y", trainer="logistic_regression",
                 exclude=("seg",))  # fmt: skip
    return {"good": good, "twin": twin, "weak": weak}


@pytest.fixture(scope="module")
def holdout():
    return make_table(600, 9)


def test_legacy_config_keeps_its_meaning(models, holdout):
    config = GateConfig.from_dict(LEGACY)
    assert config.mode is None and config.max_degradation == 0.03
    equal = compare_models(models["twin"], models["good"], holdout, config).judge(config)
    assert equal.blessed, equal.reasons
    kinds = {c["kind"] for c in equal.checks}
    assert kinds == {"threshold", "champion"}
    worse = compare_models(models["weak"], models["good"], holdout, config).judge(config)
    assert not worse.blessed
    assert any("beyond -0.030 margin" in r for r in worse.reasons)


def test_non_inferior_blesses_an_equal_challenger_and_refuses_a_worse_one(models, holdout):
    config = GateConfig.from_dict({**LEGACY, "mode": "non-inferior", "margin": 0.03})
    cmp = compare_models(models["twin"], models["good"], holdout, config)
    result = cmp.judge(config)
    assert result.blessed, result.reasons
    ni = [c for c in result.checks if c["kind"] == "non-inferior"]
    assert {c["metric"] for c in ni} == {"accuracy", "roc_auc"}
    low = cmp.paired["accuracy"]["low"]
    assert low > -0.03
    assert any(f"lower bound {low:+.3f} > -0.030 margin" in r for r in result.reasons)
    worse = compare_models(models["weak"], models["good"], holdout, config).judge(config)
    assert not worse.blessed
    assert any("not shown non-inferior" in r for r in worse.reasons)


def test_superior_needs_significance(models, holdout):
    config = GateConfig.from_dict({**LEGACY, "mode": "superior"})
    same = compare_models(models["twin"], models["good"], holdout, config)
    result = same.judge(config)
    assert not result.blessed
    assert any("McNemar p = " in r and "not significantly better" in r for r in result.reasons)
    better = compare_models(models["good"], models["weak"], holdout, config)
    result = better.judge(config)
    assert result.blessed, result.reasons
    assert better.tests["mcnemar"]["p_value"] < 0.05
    assert better.tests["delong"]["p_value"] < 0.05
    assert any("DeLong p = " in r for r in result.reasons)


def test_too_few_rows_says_so_and_closes_the_gate(models):
    config = GateConfig.from_dict({**LEGACY, "mode": "non-inferior"})
    tiny = make_table(20, 4)
    cmp = compare_models(models["good"], models["weak"], tiny, config)
    assert "error" in cmp.tests["mcnemar"] and "p_value" not in cmp.tests["mcnemar"]
    result = cmp.judge(config)
    assert not result.blessed
    assert any("too few rows for a judgement: 20 < 30" in r for r in result.reasons)
    assert any("too few rows (20 < 30)" in r and "no p-value" in r for r in result.reasons)


def test_first_run_uses_absolute_thresholds_and_says_so(models, holdout):
    config = GateConfig.from_dict({**LEGACY, "mode": "superior"})
    result = compare_models(models["good"], None, holdout, config).judge(config)
    assert result.blessed and result.first_run
    assert result.reasons[0] == FIRST_RUN_REASON
    result = compare_models(models["good"], None, holdout, GateConfig()).judge(GateConfig())
    assert not result.blessed and NO_THRESHOLDS_REASON in result.reasons


def test_change_thresholds_absolute_relative_and_direction():
    config = GateConfig.from_dict(
        {
            "thresholds": {"accuracy": 0.5, "log_loss": 0.6},
            "changes": {"accuracy": {"min": 0.01}, "log_loss": {"min": 0.05, "relative": True}},
        }
    )
    champ = {"accuracy": 0.80, "log_loss": 0.50}
    result = gate({"accuracy": 0.82, "log_loss": 0.45}, champ, config)
    assert result.blessed, result.reasons
    assert "log_loss 0.450 <= 0.600" in result.reasons
    assert any("log_loss improvement over champion +10.00% >= required +5.00%" in r
               for r in result.reasons)  # fmt: skip
    result = gate({"accuracy": 0.805, "log_loss": 0.49}, champ, config)
    assert not result.blessed
    assert any("accuracy improvement over champion +0.005 < required +0.010" in r
               for r in result.reasons)  # fmt: skip
    # lower is better: a log loss above the maximum fails
    assert (
        "log_loss 0.700 > 0.600 (above maximum)"
        in gate({"accuracy": 0.9, "log_loss": 0.7}, None, config).reasons
    )
    flipped = GateConfig.from_dict(
        {"thresholds": {"accuracy": 0.5}, "directions": {"accuracy": "lower"}}
    )
    assert gate({"accuracy": 0.4}, None, flipped).blessed


def test_mode_without_paired_results_fails_closed():
    config = GateConfig.from_dict({**LEGACY, "mode": "non-inferior"})
    result = gate({"accuracy": 0.9, "roc_auc": 0.9}, {"accuracy": 0.9, "roc_auc": 0.9}, config)
    assert not result.blessed
    assert any("needs paired per-row results" in r for r in result.reasons)


def test_slices_have_their_own_thresholds(models, holdout):
    config = GateConfig.from_dict(
        {
            **LEGACY,
            "slices": [
                {
                    "name": "body",
                    "column": "seg",
                    "values": ["body"],
                    "thresholds": {"accuracy": 0.7},
                },
                {
                    "name": "strict",
                    "column": "seg",
                    "values": ["body"],
                    "thresholds": {"accuracy": 0.999},
                },
                {
                    "name": "none",
                    "column": "seg",
                    "values": ["absent"],
                    "thresholds": {"accuracy": 0.1},
                },
            ],
        }
    )
    cmp = compare_models(models["good"], None, holdout, config)
    assert cmp.slices["body"]["n_rows"] == int(
        np.sum(np.array(holdout["seg"].to_pylist()) == "body")
    )
    result = cmp.judge(config)
    assert not result.blessed
    assert any(r.startswith("slice body: accuracy ") and ">= 0.700" in r for r in result.reasons)
    assert any(
        r.startswith("slice strict: accuracy ") and "(below minimum)" in r for r in result.reasons
    )
    assert "slice none: too few rows (0 < 30) to judge" in result.reasons
    md = render_checks_markdown(result)
    assert "**Not blessed.**" in md and "| slice | slice strict: accuracy |" in md


def test_bad_input_is_named(models, holdout):
    other = train(make_table(300, 5).drop_columns(["x2"]), "y", trainer="logistic_regression",
                  exclude=("seg",))  # fmt: skip
    with pytest.raises(
        SchemaError,
        match=r"different feature sets: only challenger \[\] only|different feature sets",
    ):
        compare_models(other, models["good"], holdout)
    bad = holdout.set_column(3, "y", pa.array([2] * holdout.num_rows))
    with pytest.raises(TrainingError, match=r"label\(s\) \['2'\] not among"):
        compare_models(models["good"], None, bad)
    with pytest.raises(PolicyError, match="'mode' must be one of"):
        GateConfig.from_dict({"thresholds": {"accuracy": 0.5}, "mode": "better"})
    with pytest.raises(PolicyError, match="slice"):
        GateConfig.from_dict({"thresholds": {"accuracy": 0.5}, "slices": [{"column": "seg"}]})


def test_step_closes_gate_on_corrupted_model_and_writes_intervals(models, holdout, tmp_path: Path):
    hold = str(tmp_path / "holdout.parquet")
    write_parquet(holdout, hold)
    d = tmp_path / "m"
    save_model(models["good"], d)
    out = evaluate_model(str(d), hold, LEGACY)
    first = out.audit
    assert out.blessed and out.first_run
    assert out.extra["intervals"]["challenger"]["accuracy"]["method"] == "wilson"
    assert "| threshold | accuracy |" in out.markdown
    meta = json.loads((d / "model.json").read_text())
    with open(d / meta["file"], "ab") as fh:
        fh.write(b"tampered")
    out = evaluate_model(str(d), hold, LEGACY)
    assert not out.blessed
    assert out.reasons[0].startswith("cannot evaluate:") and "sha256" in out.reasons[0]
    assert [a["blessed"] for a in (first, out.audit)] == [True, False]
    assert first["intervals"]["challenger"]["accuracy"]["method"] == "wilson"
