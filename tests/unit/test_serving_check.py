"""The serving check in the promotion gate: real models loaded as served, timed in one run.

Timing assertions are on decisions only, with wide margins: the slow challenger sleeps 50 ms in
every request, the similar pair differs by noise, and these gates ignore p99 increases under
20 ms (sub-20 ms spikes happen on a busy shared machine; the slow one is 50 ms slower always).
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from refit.errors import DataError, PolicyError
from refit.evaluation import (
    GateConfig,
    ServingConfig,
    gate,
    render_checks_markdown,
    render_serving_markdown,
    serving_check,
)
from refit.evaluation.latency import build_requests
from refit.io.tables import write_parquet
from refit.registry import ModelRegistry
from refit.steps import evaluate_model
from refit.training import train
from refit.training.artifacts import load_model, save_model

SLOW_S = 0.050
LENIENT = {"requests": 60, "warmup": 5, "max_p99_increase": 0.5, "min_p99_increase_ms": 20.0}


def make_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x2[::17] = np.nan  # missing values travel as null
    plan = np.where(rng.random(n) < 0.5, "basic", "pro")
    y = (x1 + 0.5 * np.nan_to_num(x2) + 0.8 * rng.normal(size=n) > 0).astype(int)
    return pa.table({"x1": x1, "x2": x2, "plan": plan, "y": y})


class _Slow:
    """An estimator that answers like the one it wraps, SLOW_S later."""

    def __init__(self, inner):
        self.inner = inner

    def predict_proba(self, X):
        time.sleep(SLOW_S)
        return self.inner.predict_proba(X)


class _Broken:
    def predict_proba(self, X):
        raise RuntimeError("out of memory in predict")


def _loader(directory: Path, wrap=None):
    def load():
        model = load_model(directory)
        return model if wrap is None else dataclasses.replace(model, estimator=wrap(model))

    return load


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    out = {}
    for name, seed in (("a", 1), ("b", 2)):
        model = train(make_table(800, seed), "y", trainer="logistic_regression")
        out[name] = root / name
        save_model(model, out[name])
    xgb = train(make_table(800, 3), "y", trainer="xgboost", params={"n_estimators": 20})
    out["xgb"] = root / "xgb"
    save_model(xgb, out["xgb"])
    return out


@pytest.fixture(scope="module")
def holdout():
    return make_table(300, 9)


def _judge(report, serving: dict, champion: bool = True):
    config = GateConfig.from_dict({"thresholds": {"accuracy": 0.5}, "serving": serving})
    metrics = {"accuracy": 0.9}
    return gate(
        metrics, metrics if champion else None, config, comparison={"serving": report.to_dict()}
    )


def test_requests_are_kserve_v2_json_one_tensor_per_feature(holdout):
    bodies = build_requests(holdout, ["x1", "x2", "plan"], n=5, batch_size=3, seed=1)
    assert len(bodies) == 5
    request = json.loads(bodies[0])
    assert request["id"] == "0"
    tensors = {t["name"]: t for t in request["inputs"]}
    assert list(tensors) == ["x1", "x2", "plan"]
    assert {n: (t["datatype"], t["shape"]) for n, t in tensors.items()} == {
        "x1": ("FP64", [3]), "x2": ("FP64", [3]), "plan": ("BYTES", [3]),
    }  # fmt: skip
    assert all(len(t["data"]) == 3 for t in tensors.values())
    assert set(tensors["plan"]["data"]) <= {"basic", "pro"}
    many = [json.loads(b) for b in build_requests(holdout, ["x2"], n=40, seed=1)]
    assert any(r["inputs"][0]["data"] == [None] for r in many)  # NaN -> null, valid JSON
    assert build_requests(holdout, ["x1"], n=5, seed=1) == build_requests(
        holdout, ["x1"], n=5, seed=1
    )
    with pytest.raises(DataError, match=r"\['age'\] are not in the holdout"):
        build_requests(holdout, ["x1", "age"], n=1)


def test_similar_models_pass_and_results_are_complete(dirs, holdout):
    config = ServingConfig(**LENIENT, max_p99_ms=500.0)
    report = serving_check(dirs["a"], dirs["b"], holdout, config)
    for stats in (report.challenger, report.champion):
        assert stats.loaded and stats.load_error is None and stats.load_ms > 0
        assert stats.requests == 60 and stats.errors == 0 and stats.first_error is None
        assert 0 < stats.p50_ms <= stats.p99_ms <= stats.max_ms
        assert stats.throughput_rps == pytest.approx(1000 / stats.mean_ms)
    assert report.order.startswith("interleaved")
    result = _judge(report, {**LENIENT, "max_p99_ms": 500.0})
    assert result.blessed, result.reasons
    kinds = [c["kind"] for c in result.checks if c["kind"].startswith("serving")]
    assert kinds == ["serving", "serving", "serving-champion"]
    assert any("answered all 60 requests" in r for r in result.reasons)
    json.dumps(report.to_dict())


def test_slow_challenger_is_blocked_against_the_champion(dirs, holdout):
    config = ServingConfig(**LENIENT)
    slow = _loader(dirs["a"], lambda m: _Slow(m.estimator))
    report = serving_check(slow, dirs["b"], holdout, config)
    assert report.challenger.p50_ms >= SLOW_S * 1000
    result = _judge(report, LENIENT)
    assert not result.blessed
    failed = [c for c in result.checks if not c["passed"]]
    assert [(c["kind"], c["metric"]) for c in failed] == [("serving-champion", "p99_ms")]
    assert "beyond the allowed +50%" in failed[0]["detail"]
    assert "vs champion" in failed[0]["detail"]


def test_no_champion_uses_the_ceiling_alone_and_says_so(dirs, holdout):
    slow = _loader(dirs["a"], lambda m: _Slow(m.estimator))
    serving = {**LENIENT, "max_p99_ms": 25.0}
    report = serving_check(slow, None, holdout, ServingConfig(**serving))
    assert report.champion is None and "no champion" in report.order
    result = _judge(report, serving, champion=False)
    assert not result.blessed
    assert any("p99 latency" in r and "> ceiling 25.00 ms" in r for r in result.reasons)
    assert any("no champion: latency judged on the absolute ceiling alone" in r
               for r in result.reasons)  # fmt: skip
    fast = serving_check(dirs["a"], None, holdout, ServingConfig(**{**serving, "max_p99_ms": 500}))
    assert _judge(fast, {**serving, "max_p99_ms": 500.0}, champion=False).blessed


def test_xgboost_serves_batches(dirs, holdout):
    config = ServingConfig(requests=20, warmup=2, batch_size=8)
    report = serving_check(dirs["xgb"], dirs["xgb"], holdout, config)
    assert report.challenger.errors == 0 and report.champion.errors == 0
    assert report.challenger.rows_per_s == pytest.approx(8 * report.challenger.throughput_rps)
    result = _judge(report, {"requests": 20, "batch_size": 8})
    assert result.blessed
    assert any("latency reported only" in r for r in result.reasons)


def test_corrupted_model_file_blocks_with_the_error_named(dirs, holdout, tmp_path):
    bad = tmp_path / "bad"
    save_model(load_model(dirs["a"]), bad)
    meta = json.loads((bad / "model.json").read_text())
    with open(bad / meta["file"], "ab") as fh:
        fh.write(b"tampered")
    report = serving_check(bad, dirs["b"], holdout, ServingConfig(**LENIENT))
    assert not report.challenger.loaded
    assert "IntegrityError" in report.challenger.load_error
    assert "sha256 mismatch" in report.challenger.load_error
    result = _judge(report, LENIENT)
    assert not result.blessed
    assert any("challenger failed to load as served: IntegrityError" in r for r in result.reasons)
    # a broken champion leaves no baseline: the margin fails closed
    report = serving_check(dirs["a"], bad, holdout, ServingConfig(**LENIENT))
    result = _judge(report, LENIENT)
    assert not result.blessed
    assert any("champion failed to load" in r and "failing closed" in r for r in result.reasons)


def test_failing_requests_block_with_the_first_error(dirs, holdout):
    broken = _loader(dirs["a"], lambda m: _Broken())
    report = serving_check(broken, dirs["b"], holdout, ServingConfig(requests=10, warmup=1))
    assert report.challenger.errors == 10 and report.challenger.p99_ms is None
    result = _judge(report, {"requests": 10, "warmup": 1, "max_p99_ms": 100.0})
    assert not result.blessed
    assert any(
        "failed 10 of 10 requests" in r and "RuntimeError: out of memory in predict" in r
        for r in result.reasons
    )
    md = render_serving_markdown(report.to_dict())
    assert "| challenger | yes | — | — |" in md and "10 of 10 (first: RuntimeError" in md
    assert "| serving | errors |" in render_checks_markdown(result)


def test_config_validation_and_round_trip():
    serving = {"requests": 200, "max_p99_increase": 0.5, "max_p99_ms": 50, "batch_size": 1}
    config = GateConfig.from_dict({"thresholds": {"accuracy": 0.5}, "serving": serving})
    assert config.serving == ServingConfig(requests=200, max_p99_increase=0.5, max_p99_ms=50.0)
    assert GateConfig.from_dict(config.to_dict()) == config
    with pytest.raises(PolicyError, match=r"'serving' has unknown key\(s\) \['p99'\]"):
        ServingConfig.from_dict({"p99": 3})
    with pytest.raises(PolicyError, match="serving.requests"):
        ServingConfig.from_dict({"requests": 0})
    with pytest.raises(PolicyError, match="serving.max_p99_increase"):
        ServingConfig.from_dict({"max_p99_increase": -0.1})
    missing = gate({"accuracy": 0.9}, None, config)
    assert not missing.blessed
    assert any("no serving-check results given: failing closed" in r for r in missing.reasons)


def test_step_serves_the_registered_champion_and_records_it(dirs, holdout, tmp_path: Path):
    store = str(tmp_path / "store")
    registry = ModelRegistry(store, "m")
    version = registry.register(
        dirs["xgb"], metrics={"accuracy": 0.8}, snapshot_sha256="0" * 64,
        parent_version=None, run_label="r0",
    )  # fmt: skip
    registry.set_alias("champion", version.version)
    hold = str(tmp_path / "holdout.parquet")
    write_parquet(holdout, hold)
    gate_config = {
        "thresholds": {"accuracy": 0.6},
        "max_degradation": 0.2,
        "serving": {"requests": 30, "warmup": 3, "max_p99_ms": 10_000, "max_p99_increase": 1000},
    }
    champion = registry.champion()
    out = evaluate_model(
        str(dirs["a"]),
        hold,
        gate_config,
        baseline_dir=champion.model_uri,
        baseline_version=champion.version,
    )
    assert out.blessed, out.reasons
    assert out.extra["serving"] == out.serving
    assert out.serving["champion"]["loaded"] and out.serving["champion"]["errors"] == 0
    assert out.serving["order"].startswith("interleaved")
    assert "## Serving check" in out.markdown and "| champion | yes |" in out.markdown
    assert "No fairness check configured" in out.fairness_markdown
    record = out.audit  # the summary the audit log records
    assert record["serving"]["challenger"]["errors"] == 0
    assert record["serving"]["champion"]["p99_ms"] > 0
    assert record["fairness"] is None
