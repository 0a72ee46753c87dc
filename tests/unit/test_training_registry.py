"""Trainer registry: tasks, reproducibility, early stopping, class weights, devices, bad input."""

import hashlib
import json
import logging

import numpy as np
import pyarrow as pa
import pytest

from refit import steps
from refit.errors import TrainingError
from refit.training import (
    available_trainers,
    build_model_card,
    cuda_status,
    load_model,
    render_model_card,
    save_model,
    train,
    validation_metrics,
)

FAST = {
    "logistic_regression": {},
    "random_forest": {"n_estimators": 10, "n_jobs": 1},
    "hist_gradient_boosting": {"max_iter": 15},
    "xgboost": {"n_estimators": 15, "n_jobs": 1},
}
REGRESSORS = ["random_forest", "hist_gradient_boosting", "xgboost"]


def regression_table(n: int = 400, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x2[rng.random(n) < 0.05] = np.nan
    color = rng.choice(["red", "blue"], size=n)
    y = 2.0 * x1 + np.where(color == "red", 1.5, 0.0) + 0.1 * rng.normal(size=n)
    return pa.table({"x1": x1, "x2": x2, "color": pa.array(color), "y": y})


def class_table(n: int = 400, seed: int = 0, positive_share: float = 0.5) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    cut = np.quantile(x1 + 0.5 * x2, 1 - positive_share)
    noisy = x1 + 0.5 * x2 + 0.3 * rng.normal(size=n)
    label = np.where(noisy > cut, "yes", "no")
    return pa.table({"x1": x1, "x2": x2, "label": pa.array(label)})


def test_registry_has_four_trainers_with_their_tasks():
    assert set(FAST) <= set(available_trainers())


@pytest.mark.parametrize("trainer", REGRESSORS)
def test_regressors_learn_and_round_trip(trainer, tmp_path):
    table = regression_table()
    model = train(table, "y", trainer=trainer, params=FAST[trainer], device="cpu")
    assert model.task == "regression"
    assert model.spec.classes == []
    pred = model.predict(table)
    truth = table.column("y").to_numpy()
    assert np.corrcoef(pred, truth)[0, 1] > 0.9
    with pytest.raises(TrainingError, match="regressor"):
        model.predict_proba(table)
    artifact = save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["task"] == "regression"
    assert meta["sha256"] == artifact.sha256
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(table), pred, rtol=1e-6)


def test_logistic_regression_refuses_a_regression_target():
    with pytest.raises(TrainingError, match=r"logistic_regression.*classification.*'y'"):
        train(regression_table(), "y", trainer="logistic_regression")
    with pytest.raises(TrainingError, match="logistic_regression"):
        train(class_table(), "label", trainer="logistic_regression", task="regression")


def test_explicit_regression_on_an_integer_target():
    table = regression_table()
    table = table.set_column(3, "y", pa.array(np.round(table.column("y").to_numpy()).astype(int)))
    assert train(table, "y", trainer="xgboost", params=FAST["xgboost"]).task == "classification"
    model = train(table, "y", trainer="xgboost", params=FAST["xgboost"], task="regression")
    assert model.task == "regression"


@pytest.mark.parametrize("trainer", sorted(FAST))
def test_same_data_and_seed_give_the_same_model_bytes(trainer, tmp_path):
    table = class_table(n=300)
    shas = []
    for i in range(2):
        model = train(table, "label", trainer=trainer, params=FAST[trainer], seed=3, device="cpu")
        shas.append(save_model(model, tmp_path / str(i)).sha256)
    assert shas[0] == shas[1]
    data = [
        (tmp_path / str(i) / ("model.ubj" if trainer == "xgboost" else "model.skops"))
        for i in range(2)
    ]
    assert data[0].read_bytes() == data[1].read_bytes()


def test_skops_bytes_are_canonical_and_still_load(tmp_path):
    model = train(
        class_table(),
        "label",
        trainer="hist_gradient_boosting",
        params=FAST["hist_gradient_boosting"],
    )
    save_model(model, tmp_path)
    raw = (tmp_path / "model.skops").read_bytes()
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    assert names[0] == "schema.json"
    assert all(n == "schema.json" or n[:6].isdigit() for n in names)
    assert (
        hashlib.sha256(raw).hexdigest()
        == json.loads((tmp_path / "model.json").read_text())["sha256"]
    )
    np.testing.assert_array_equal(
        load_model(tmp_path).predict_proba(class_table()), model.predict_proba(class_table())
    )


def test_hyper_parameters_reach_the_estimator():
    model = train(
        class_table(),
        "label",
        trainer="hist_gradient_boosting",
        params={"max_iter": 7, "early_stopping": False, "max_leaf_nodes": 5},
    )
    assert model.estimator.n_iter_ == 7
    assert model.estimator.get_params()["max_leaf_nodes"] == 5
    xgb = train(class_table(), "label", params={"n_estimators": 9, "max_depth": 2})
    assert xgb.estimator.get_booster().num_boosted_rounds() == 9
    assert xgb.info["rounds"] == 9


def test_xgboost_early_stopping_on_a_validation_split(tmp_path):
    rng = np.random.default_rng(1)
    n = 600
    x = rng.normal(size=(n, 5))
    label = np.where(x[:, 0] + rng.normal(scale=2.0, size=n) > 0, 1, 0)  # mostly noise
    table = pa.table({**{f"x{i}": x[:, i] for i in range(5)}, "label": label})
    model = train(
        table,
        "label",
        params={"n_estimators": 500, "early_stopping_rounds": 5, "learning_rate": 0.5, "n_jobs": 1},
    )
    info = model.info
    assert info["validation"]["rows"] == 60
    assert info["validation"]["metric"] == "logloss"
    assert info["best_iteration"] < info["rounds"] < 500
    assert info["rounds"] == info["best_iteration"] + 6
    save_model(model, tmp_path)
    np.testing.assert_allclose(
        load_model(tmp_path).predict_proba(table), model.predict_proba(table), rtol=1e-6
    )


def test_xgboost_early_stopping_parameters_are_checked():
    with pytest.raises(TrainingError, match="early_stopping_rounds"):
        train(class_table(), "label", params={"early_stopping_rounds": 0})
    with pytest.raises(TrainingError, match="validation_fraction"):
        train(
            class_table(), "label", params={"early_stopping_rounds": 3, "validation_fraction": 1.5}
        )


def _minority_recall(model, table) -> float:
    truth = np.asarray(table.column("label").to_pylist())
    pred = model.predict(table)
    return float(np.mean(pred[truth == "yes"] == "yes"))


@pytest.mark.parametrize("trainer", ["xgboost", "logistic_regression", "hist_gradient_boosting"])
def test_balanced_class_weights_raise_minority_recall(trainer):
    table = class_table(n=1000, positive_share=0.05, seed=4)
    plain = train(table, "label", trainer=trainer, params=FAST[trainer])
    weighted = train(
        table, "label", trainer=trainer, params={**FAST[trainer], "class_weight": "balanced"}
    )
    assert _minority_recall(weighted, table) > _minority_recall(plain, table) + 0.05


def test_class_weight_mapping_by_label_and_its_errors():
    table = class_table(n=500, positive_share=0.1)
    heavy = train(table, "label", params={**FAST["xgboost"], "class_weight": {"yes": 20}})
    plain = train(table, "label", params=FAST["xgboost"])
    assert _minority_recall(heavy, table) > _minority_recall(plain, table)
    with pytest.raises(TrainingError, match=r"class_weight.*'maybe'.*\['no', 'yes'\]"):
        train(table, "label", params={"class_weight": {"maybe": 2}})
    with pytest.raises(TrainingError, match="class_weight.*regression"):
        train(regression_table(), "y", trainer="random_forest", params={"class_weight": "balanced"})


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (pa.table({"a": [1.0, 2.0]}), {}, r"target column 'label' is missing"),
        (
            pa.table({"a": [1.0, 2.0], "label": [1.5, 1.5]}),
            {"task": "regression"},
            r"'label' is constant",
        ),
        (
            pa.table({"a": [1.0, 2.0], "label": ["x", "x"]}),
            {},
            r"'label' is constant \(single class",
        ),
        (
            pa.table({"a": [1.0, 2.0, 3.0], "label": [0.5, float("nan"), 1.5]}),
            {},
            r"'label' has 1 NaN",
        ),
        (
            pa.table({"a": [b"x", b"y"], "label": [0, 1]}),
            {},
            r"feature column 'a' has unsupported type",
        ),
        (
            pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}),
            {"trainer": "svm"},
            r"trainer 'svm' is unknown",
        ),
        (
            pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}),
            {"params": {"depth": 2}},
            r"\['depth'\]",
        ),
        (pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}), {"device": "tpu"}, r"device 'tpu'"),
        (pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}), {"task": "ranking"}, r"task 'ranking'"),
        (
            pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}),
            {"trainer": "random_forest", "device": "cuda"},
            r"random_forest.*CPU only",
        ),
    ],
)
def test_bad_input_is_refused_before_training(table, kwargs, message):
    with pytest.raises(TrainingError, match=message):
        train(table, "label", **kwargs)


def test_device_cpu_and_auto_are_recorded(caplog, tmp_path):
    table = class_table()
    cpu = train(table, "label", params=FAST["xgboost"], device="cpu")
    assert cpu.device == "cpu" and cpu.info["device_reason"] == "cpu requested"
    with caplog.at_level(logging.WARNING, logger="refit.training"):
        auto = train(table, "label", params=FAST["xgboost"], device="auto")
    has_gpu, why = cuda_status()
    assert auto.device == ("cuda" if has_gpu else "cpu")
    if not has_gpu:
        assert "falling back to the CPU" in caplog.text and why in caplog.text
        np.testing.assert_array_equal(auto.predict_proba(table), cpu.predict_proba(table))
    save_model(auto, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["device"] == auto.device


def test_cuda_demanded_without_a_visible_gpu_fails_before_training(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    cuda_status.cache_clear()
    try:
        with pytest.raises(TrainingError, match=r"device 'cuda'.*no GPU.*CUDA_VISIBLE_DEVICES"):
            train(class_table(), "label", device="cuda")
        fallback = train(class_table(), "label", params=FAST["xgboost"], device="auto")
        assert fallback.device == "cpu"
        assert "CUDA_VISIBLE_DEVICES" in fallback.info["device_reason"]
    finally:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
        cuda_status.cache_clear()


def test_model_card_has_data_hash_features_metrics_device_time_and_cost():
    table = class_table(n=400)
    model = train(table, "label", params=FAST["xgboost"], device="cpu")
    metrics = validation_metrics(model, class_table(n=200, seed=9))
    assert 0.5 < metrics["accuracy"] <= 1.0 and 0.5 < metrics["roc_auc"] <= 1.0
    card = build_model_card(
        model,
        table,
        data_sha256="ab" * 32,
        wall_time_s=1800.0,
        price_per_hour=2.0,
        node_profile="gpu-spot",
        metrics=metrics,
        metrics_source="holdout, 200 rows",
    )
    assert card["cost"] == pytest.approx(1.0)
    assert card["device"] == "cpu"
    assert [f["name"] for f in card["features"]] == ["x1", "x2"]
    assert card["features"][0]["type"] == "double"
    assert card["validation"]["metrics"]["accuracy"] == metrics["accuracy"]
    text = render_model_card(card)
    assert "ab" * 32 in text and "gpu-spot" in text and "| accuracy |" in text
    assert "`n_estimators` | `15`" in text


def test_train_step_writes_card_checkpoints_and_metadata(tmp_path):
    from refit.io.tables import write_parquet

    data = tmp_path / "window.parquet"
    write_parquet(class_table(n=400), str(data))
    out = steps.train_model(
        str(data),
        "label",
        str(tmp_path / "model"),
        str(tmp_path / "holdout.parquet"),
        params={"n_estimators": 30, "n_jobs": 1},
        checkpoint_uri=steps.checkpoint_location(str(tmp_path / "model"), str(tmp_path / "model")),
        checkpoint_every=10,
        price_per_hour=3.6,
        node_profile="cpu",
    )
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["sha256"] == out.sha256
    assert meta["device"] == out.device
    assert meta["resumed_from_round"] == 0
    card = meta["card"]
    assert card["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert card["validation"]["source"].endswith("100 rows")
    assert card["cost"] == pytest.approx(card["wall_time_s"] / 1000, rel=1e-3, abs=1e-6)
    assert "# Model card: xgboost (classification)" in out.card_markdown
    pointer = tmp_path / "model.checkpoints" / "checkpoint.json"
    assert json.loads(pointer.read_text())["round"] == 20
    assert out.audit["sha256"] == out.sha256 and out.audit["params"]["n_estimators"] == 30
    # the same task retried (its output model at the same place: same checkpoints) resumes
    again = steps.train_model(
        str(data),
        "label",
        str(tmp_path / "model2"),
        str(tmp_path / "holdout2.parquet"),
        params={"n_estimators": 30, "n_jobs": 1},
        checkpoint_uri=str(tmp_path / "model.checkpoints"),
        checkpoint_every=10,
    )
    assert again.resumed_from_round == 20
    np.testing.assert_allclose(
        load_model(tmp_path / "model2").predict_proba(class_table(n=400)),
        load_model(tmp_path / "model").predict_proba(class_table(n=400)),
        atol=1e-6,
    )


def test_the_component_puts_checkpoints_beside_its_output_model() -> None:
    # a KFP retry reruns the executor with the same output URIs: the same checkpoint folder
    gcs = steps.checkpoint_location("gs://b/root/run/train-model/model", "/gcs/b/root/run/m")
    assert gcs == "gs://b/root/run/train-model/model.checkpoints"  # in the bucket, durable
    assert steps.checkpoint_location("/tmp/root/model/", "/tmp/root/model/") == (
        "/tmp/root/model.checkpoints"
    )
    # a scheme refit cannot write (minio://): beside the local path
    local = steps.checkpoint_location("minio://mlpipeline/v2/model", "/minio/mlpipeline/v2/model")
    assert local == "/minio/mlpipeline/v2/model.checkpoints"
