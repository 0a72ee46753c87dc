import json
import pickle

import numpy as np
import pyarrow as pa
import pytest

from refit.errors import IntegrityError, TrainingError
from refit.training import (
    SKOPS_TRUSTED_TYPES,
    FeatureSpec,
    available_trainers,
    encode,
    encode_target,
    infer_feature_spec,
    load_model,
    save_model,
    train,
)

TRAINERS = ["logistic_regression", "random_forest", "xgboost"]
FAST_PARAMS = {
    "logistic_regression": {},
    "random_forest": {"n_estimators": 20},
    "xgboost": {"n_estimators": 20, "n_jobs": 1},
}


def make_table(n: int = 400, n_classes: int = 2, seed: int = 0) -> pa.Table:
    """Learnable data: label from x1 + category, with NaNs in x2 and a categorical column."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x2[rng.random(n) < 0.1] = np.nan
    color = rng.choice(["red", "green", "blue"], size=n)
    score = x1 + np.where(color == "red", 1.0, 0.0) + 0.2 * rng.normal(size=n)
    if n_classes == 2:
        labels = np.where(score > 0.3, "yes", "no")
    else:
        labels = np.select([score < -0.3, score < 0.8], ["a", "b"], "c")
    return pa.table(
        {
            "id": np.arange(n),
            "x1": x1,
            "x2": x2,
            "color": pa.array(color),
            "label": pa.array(labels),
        }
    )


# --- features ---------------------------------------------------------------------------------


def test_infer_feature_spec_types_vocabulary_and_classes():
    table = make_table(n_classes=3)
    spec = infer_feature_spec(table, "label", exclude=["id"])
    assert spec.target == "label"
    assert spec.numeric == ["x1", "x2"]
    assert spec.categorical == {"color": ["blue", "green", "red"]}
    assert spec.classes == ["a", "b", "c"]
    assert spec.n_features == 5
    assert spec.feature_names == ["x1", "x2", "color=blue", "color=green", "color=red"]


def test_feature_spec_dict_round_trip_through_json():
    spec = infer_feature_spec(make_table(), "label", exclude=["id"])
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_encode_keeps_nan_and_one_hot_with_unseen_as_zeros():
    spec = FeatureSpec(target="y", numeric=["a"], categorical={"c": ["p", "q"]}, classes=[0, 1])
    table = pa.table(
        {
            "a": pa.array([1.5, None, 3.0], type=pa.float64()),
            "c": pa.array(["q", "zzz", None]),
        }
    )
    X = encode(table, spec)
    assert X.dtype == np.float32
    assert X.shape == (3, 3)
    assert X[0].tolist() == [1.5, 1.0 * 0, 1.0]
    assert np.isnan(X[1, 0])
    assert X[1, 1:].tolist() == [0.0, 0.0]  # unseen category -> all zeros
    assert X[2, 1:].tolist() == [0.0, 0.0]  # missing category -> all zeros


def test_encode_accepts_dictionary_encoded_categoricals():
    spec = FeatureSpec(target="y", numeric=[], categorical={"c": ["p", "q"]}, classes=[0, 1])
    table = pa.table({"c": pa.array(["p", "q", "p"]).dictionary_encode()})
    assert encode(table, spec).tolist() == [[1, 0], [0, 1], [1, 0]]


def test_encode_missing_feature_column_names_it():
    spec = infer_feature_spec(make_table(), "label", exclude=["id"])
    with pytest.raises(TrainingError, match="'x2'"):
        encode(make_table().drop_columns(["x2"]), spec)


def test_encode_target_indices_and_unseen_label():
    spec = FeatureSpec(target="y", numeric=["a"], classes=["no", "yes"])
    table = pa.table({"a": [1.0, 2.0, 3.0], "y": ["yes", "no", "yes"]})
    assert encode_target(table, spec).tolist() == [1, 0, 1]
    bad = pa.table({"a": [1.0], "y": ["maybe"]})
    with pytest.raises(TrainingError, match=r"'y'.*maybe"):
        encode_target(bad, spec)


def test_encode_target_matches_int_labels_after_json_round_trip():
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 1, 0]})
    spec = FeatureSpec.from_dict(json.loads(json.dumps(infer_feature_spec(table, "y").to_dict())))
    assert encode_target(table, spec).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"a": [1.0, 2.0]}), r"target column 'label' is missing"),
        (pa.table({"a": [1.0, 2.0], "label": ["x", "x"]}), r"'label' is constant"),
        (pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", None, "y"]}), r"'label' has 1 null"),
        (pa.table({"a": [1.0, 2.0, 3.0], "label": [0.0, float("nan"), 1.0]}), r"'label' has 1 NaN"),
        (pa.table({"a": [1.0, 2.0, 3.0], "label": [0.1, 0.5, 1.0]}), r"'label' has non-integral"),
        (pa.table({"label": ["x", "y"]}), r"no feature columns"),
    ],
)
def test_bad_training_input_is_refused_naming_the_column(table, message):
    with pytest.raises(TrainingError, match=message):
        infer_feature_spec(table, "label")
    with pytest.raises(TrainingError, match=message):
        train(table, "label", trainer="logistic_regression")


def test_unsupported_feature_type_names_the_column_and_exclude_skips_it():
    table = pa.table(
        {
            "t": pa.array([1, 2, 3, 4], type=pa.timestamp("s")),
            "a": [1.0, 2.0, 3.0, 4.0],
            "label": [0, 1, 0, 1],
        }
    )
    with pytest.raises(TrainingError, match=r"feature column 't'.*exclude"):
        infer_feature_spec(table, "label")
    assert infer_feature_spec(table, "label", exclude=["t"]).numeric == ["a"]
    with pytest.raises(TrainingError, match=r"'nope'"):
        infer_feature_spec(table, "label", exclude=["nope"])


# --- trainers ---------------------------------------------------------------------------------


def test_registry_lists_the_three_trainers():
    assert set(TRAINERS) <= set(available_trainers())


def test_unknown_trainer_lists_available_before_looking_at_data():
    bad_data = pa.table({"label": ["x", "x"]})  # would fail as constant target
    with pytest.raises(TrainingError, match=r"trainer 'svm' is unknown.*xgboost"):
        train(bad_data, "label", trainer="svm")


def test_unknown_parameter_lists_allowed_before_looking_at_data():
    bad_data = pa.table({"label": ["x", "x"]})
    with pytest.raises(TrainingError, match=r"\['depth'\].*allowed parameters:.*max_depth"):
        train(bad_data, "label", trainer="xgboost", params={"depth": 3})


def test_invalid_parameter_value_becomes_training_error():
    with pytest.raises(TrainingError, match="random_forest"):
        train(make_table(), "label", trainer="random_forest", params={"n_estimators": -1})


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_trainers_learn_and_predict_labels(trainer, n_classes):
    table = make_table(n=600, n_classes=n_classes)
    model = train(table, "label", trainer=trainer, params=FAST_PARAMS[trainer], exclude=["id"])
    proba = model.predict_proba(table)
    assert proba.shape == (600, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    predicted = model.predict(table)
    assert set(predicted.tolist()) <= set(model.spec.classes)
    truth = np.asarray(table.column("label").to_pylist())
    assert (predicted == truth).mean() > 0.75
    # resolved params include the defaults and the override
    assert set(FAST_PARAMS[trainer].items()) <= set(model.params.items())
    assert model.trainer == trainer


@pytest.mark.parametrize("trainer", TRAINERS)
def test_same_data_and_seed_give_identical_predictions(trainer):
    table = make_table(n=300, n_classes=3)
    a = train(table, "label", trainer=trainer, params=FAST_PARAMS[trainer], seed=7)
    b = train(table, "label", trainer=trainer, params=FAST_PARAMS[trainer], seed=7)
    np.testing.assert_array_equal(a.predict_proba(table), b.predict_proba(table))


def test_random_forest_seed_changes_the_model():
    table = make_table(n=300)
    a = train(table, "label", trainer="random_forest", params={"n_estimators": 5}, seed=1)
    b = train(table, "label", trainer="random_forest", params={"n_estimators": 5}, seed=2)
    assert not np.array_equal(a.predict_proba(table), b.predict_proba(table))


def test_xgboost_uses_hist_on_cpu():
    model = train(make_table(), "label", trainer="xgboost", params={"n_estimators": 5})
    params = model.estimator.get_params()
    assert params["tree_method"] == "hist"
    assert params["device"] == "cpu"


def test_xgboost_scale_pos_weight_refused_for_multiclass():
    with pytest.raises(TrainingError, match="scale_pos_weight"):
        train(make_table(n_classes=3), "label", trainer="xgboost", params={"scale_pos_weight": 3.0})


def test_negative_seed_refused():
    with pytest.raises(TrainingError, match="seed"):
        train(make_table(), "label", trainer="xgboost", seed=-1)


def test_categorical_unseen_at_predict_time_does_not_crash():
    table = make_table(n=200)
    model = train(table, "label", trainer="logistic_regression", exclude=["id"])
    new = table.set_column(
        table.column_names.index("color"), "color", pa.array(["purple"] * table.num_rows)
    )
    assert model.predict(new).shape == (200,)


# --- artifacts --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    table = make_table(n=300, n_classes=3)
    return table, {
        name: train(table, "label", trainer=name, params=FAST_PARAMS[name], exclude=["id"])
        for name in TRAINERS
    }


@pytest.mark.parametrize("trainer", TRAINERS)
def test_round_trip_gives_identical_predictions(models, trainer, tmp_path):
    table, trained = models
    model = trained[trainer]
    artifact = save_model(model, tmp_path / "m")
    expected_file = "model.ubj" if trainer == "xgboost" else "model.skops"
    assert artifact.file == expected_file
    assert artifact.format == ("xgboost-ubjson" if trainer == "xgboost" else "skops")
    assert artifact.trainer == trainer
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        [expected_file, "model.json"]
    )
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["sha256"] == artifact.sha256
    assert meta["file"] == expected_file
    assert meta["trainer"] == trainer
    assert meta["feature_spec"] == model.spec.to_dict()
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec
    assert loaded.trainer == trainer
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict_proba(table), model.predict_proba(table))
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))


def test_xgboost_file_is_ubjson(models, tmp_path):
    _, trained = models
    artifact = save_model(trained["xgboost"], tmp_path)
    assert (tmp_path / artifact.file).read_bytes()[:1] == b"{"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_tampered_model_file_is_refused(models, trainer, tmp_path):
    _, trained = models
    artifact = save_model(trained[trainer], tmp_path)
    path = tmp_path / artifact.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        load_model(tmp_path)
    message = str(info.value)
    assert artifact.file in message
    assert artifact.sha256 in message
    assert "expected" in message and "actual" in message


def _rewrite_meta(directory, **changes):
    meta_path = directory / "model.json"
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def test_pickle_file_name_is_refused(models, tmp_path):
    _, trained = models
    save_model(trained["random_forest"], tmp_path)
    data = pickle.dumps(trained["random_forest"].estimator)
    (tmp_path / "model.pkl").write_bytes(data)
    import hashlib

    _rewrite_meta(tmp_path, file="model.pkl", sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(IntegrityError, match=r"model\.pkl.*pickle"):
        load_model(tmp_path)


def test_pickle_bytes_under_a_safe_name_are_refused(models, tmp_path):
    _, trained = models
    save_model(trained["random_forest"], tmp_path)
    data = pickle.dumps(trained["random_forest"].estimator, protocol=4)
    (tmp_path / "model.skops").write_bytes(data)
    import hashlib

    _rewrite_meta(tmp_path, sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(IntegrityError, match="pickle"):
        load_model(tmp_path)


def test_directory_with_only_a_pickle_is_refused(tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(IntegrityError, match=r"no model\.json.*model\.pkl"):
        load_model(tmp_path)


def test_skops_file_with_type_outside_allowlist_is_refused(tmp_path):
    import hashlib

    import skops.io as sio
    from sklearn.svm import SVC

    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    estimator = SVC().fit(X, [0, 1, 0, 1])
    data = sio.dumps(estimator)
    (tmp_path / "model.skops").write_bytes(data)
    spec = FeatureSpec(target="y", numeric=["a"], classes=[0, 1])
    meta = {
        "trainer": "logistic_regression",
        "feature_spec": spec.to_dict(),
        "file": "model.skops",
        "format": "skops",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert "sklearn.svm._classes.SVC" not in SKOPS_TRUSTED_TYPES
    with pytest.raises(IntegrityError, match=r"sklearn\.svm\._classes\.SVC"):
        load_model(tmp_path)


def test_model_json_path_traversal_is_refused(models, tmp_path):
    _, trained = models
    save_model(trained["xgboost"], tmp_path / "m")
    _rewrite_meta(tmp_path / "m", file="../model.ubj")
    with pytest.raises(IntegrityError, match="plain file name"):
        load_model(tmp_path / "m")


def test_missing_model_json_is_refused(tmp_path):
    with pytest.raises(IntegrityError, match=r"model\.json"):
        load_model(tmp_path)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_categorical_order_survives_save_and_load(trainer, tmp_path):
    # Two categorical columns in non-alphabetical order: model.json sorts mapping keys, so the
    # one-hot blocks must come back in training order or a reloaded model predicts differently.
    rng = np.random.default_rng(3)
    n = 400
    zone = rng.choice(["north", "south"], n)
    band = rng.choice(["a", "b", "c"], n)
    label = ((zone == "north") ^ (band == "c")).astype(int)
    table = pa.table({"zone": zone, "band": band, "x": rng.normal(size=n), "label": label})
    model = train(table, "label", trainer=trainer, params=FAST_PARAMS[trainer])
    assert list(model.spec.categorical) == ["zone", "band"]
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert list(loaded.spec.categorical) == ["zone", "band"]
    np.testing.assert_allclose(loaded.predict_proba(table), model.predict_proba(table))


def test_feature_spec_categorical_order_must_match_columns():
    spec = FeatureSpec("y", ["x"], {"b": ["1"], "a": ["2"]}, [0, 1]).to_dict()
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec, sort_keys=True))).categorical == {
        "b": ["1"],
        "a": ["2"],
    }
    with pytest.raises(TrainingError, match="categorical_order"):
        FeatureSpec.from_dict({**spec, "categorical_order": ["a"]})
