"""The local model server: V2 protocol, traffic split, metrics and fault injection."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from refit.errors import DataError, DeployError
from refit.registry import ModelRegistry
from refit.serving import (
    CANARY_STATE_KEY,
    Fault,
    RolloutState,
    TrafficRouter,
    check_faults,
    choose_version,
    create_app,
    model_metadata,
    parse_canary_state,
    parse_fault,
    parse_faults,
    parse_infer_request,
    predict_outputs,
    read_rollout_state,
    request_to_table,
)
from refit.training import FeatureSpec, save_model, train

NAME = "credit"
TARGET = "default"
EXCLUDE = ["event_time"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dirs(windows, tmp_path_factory) -> dict[int, Path]:
    """Two saved models: v1 a logistic regression (skops), v2 an XGBoost model (UBJSON)."""
    root = tmp_path_factory.mktemp("models")
    m1 = train(windows[0], TARGET, trainer="logistic_regression", exclude=EXCLUDE, device="cpu")
    m2 = train(
        windows[1],
        TARGET,
        trainer="xgboost",
        params={"n_estimators": 15, "n_jobs": 1},
        exclude=EXCLUDE,
        device="cpu",
    )
    save_model(m1, root / "v1")
    save_model(m2, root / "v2")
    return {1: root / "v1", 2: root / "v2"}


@pytest.fixture
def reg(tmp_path, model_dirs) -> ModelRegistry:
    """A registry with versions 1 and 2 and no champion yet."""
    registry = ModelRegistry(str(tmp_path / "store"), NAME)
    for version, directory in model_dirs.items():
        registry.register(
            directory,
            metrics={"accuracy": 0.8},
            snapshot_sha256=f"{version}" * 64,
            parent_version=None if version == 1 else 1,
            run_label=f"run-{version}",
        )
    return registry


@pytest.fixture
def rows(windows) -> pa.Table:
    return windows[2].slice(0, 5)


def client_for(reg: ModelRegistry, **kw) -> TestClient:
    kw.setdefault("state_refresh_seconds", 0)
    return TestClient(create_app(reg.store_uri, NAME, **kw))


def column_inputs(table: pa.Table, spec: FeatureSpec) -> list[dict]:
    return [
        {
            "name": f,
            "shape": [table.num_rows],
            "datatype": "BYTES" if f in spec.categorical else "FP64",
            "data": table.column(f).to_pylist(),
        }
        for f in spec.feature_columns
    ]


def matrix_input(table: pa.Table, spec: FeatureSpec) -> dict:
    cols = [table.column(f).to_pylist() for f in spec.feature_columns]
    return {
        "name": "input-0",
        "shape": [table.num_rows, len(cols)],
        "datatype": "BYTES",
        "data": [list(row) for row in zip(*cols, strict=True)],  # nested rows
    }


def spec_of(reg: ModelRegistry, version: int = 1) -> FeatureSpec:
    return reg.load_model(version).spec


def samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def requests_count(m: dict, revision: str, code: str) -> float:
    key = ("refit_model_requests_total", (("code", code), ("model", NAME), ("revision", revision)))
    return m.get(key, 0.0)


def duration(m: dict, revision: str, suffix: str, le: str | None = None) -> float:
    labels = [("model", NAME), ("revision", revision)]
    if le is not None:
        labels.append(("le", le))
    return m.get((f"refit_model_request_duration_seconds{suffix}", tuple(sorted(labels))), 0.0)


def traffic(m: dict, revision: str) -> float | None:
    key = ("refit_model_traffic_percent", (("model", NAME), ("revision", revision)))
    return m.get(key)


# --------------------------------------------------------------------------- protocol (pure)


def test_column_and_matrix_requests_decode_to_the_same_table(reg, rows):
    spec = spec_of(reg)
    by_column = request_to_table(parse_infer_request({"inputs": column_inputs(rows, spec)}), spec)
    by_matrix = request_to_table(parse_infer_request({"inputs": [matrix_input(rows, spec)]}), spec)
    assert by_column.column_names == spec.feature_columns
    assert by_column.equals(by_matrix)
    for f in spec.numeric:
        assert by_column.column(f).type == pa.float64()
        np.testing.assert_allclose(
            by_column.column(f).to_numpy(), rows.column(f).cast(pa.float64()).to_numpy()
        )
    for f in spec.categorical:
        assert by_column.column(f).to_pylist() == rows.column(f).to_pylist()


def test_nulls_are_missing_values_and_numbers_may_come_as_strings():
    spec = FeatureSpec(target="y", numeric=["x"], categorical={"c": ["a", "b"]})
    request = parse_infer_request(
        {
            "inputs": [
                {"name": "x", "shape": [3], "datatype": "BYTES", "data": ["1.5", None, 2]},
                {"name": "c", "shape": [3, 1], "datatype": "BYTES", "data": [["a"], [None], ["z"]]},
            ],
            "id": "r1",
            "outputs": [{"name": "predict"}],
        }
    )
    assert (request.id, request.outputs) == ("r1", ["predict"])
    table = request_to_table(request, spec)
    assert table.column("x").to_pylist() == [1.5, None, 2.0]
    assert table.column("c").to_pylist() == ["a", None, "z"]
    ints = parse_infer_request(
        {
            "inputs": [
                {"name": "x", "shape": [2], "datatype": "INT32", "data": [3, 4.0]},
                {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            ]
        }
    )
    assert request_to_table(ints, spec).column("x").to_pylist() == [3.0, 4.0]
    bools = parse_infer_request(
        {"inputs": [{"name": "m", "shape": [1, 1], "datatype": "BOOL", "data": [True]}]}
    )
    assert request_to_table(bools, FeatureSpec(target="y", numeric=["b"])).column(
        "b"
    ).to_pylist() == [1.0]


SPEC = FeatureSpec(target="y", numeric=["x", "z"], categorical={"c": ["a", "b"]})


def x(data, datatype="FP64", shape=None, name="x"):
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}


def good(n=2):
    return [x([1.0] * n), x([2.0] * n, name="z"), x(["a"] * n, "BYTES", name="c")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], r"body must be a JSON object, got list"),
        ({"inputs": []}, r"non-empty 'inputs'"),
        ({"inputs": [{"name": "x", "shape": [1], "data": [1]}]}, r"input 'x' lacks .*datatype"),
        ({"inputs": [{"shape": [1]}]}, r"inputs\[0\] needs a non-empty string 'name'"),
        ({"inputs": [x([1.0], shape=[-1])]}, r"input 'x': 'shape' must be .*non-negative"),
        ({"inputs": [x([1.0], "FLOAT")]}, r"input 'x': datatype 'FLOAT' is not supported"),
        ({"inputs": [x([1.0, 2.0], shape=[3])]}, r"input 'x': shape \[3\] holds 3 .* has 2"),
        ({"inputs": [x([1.0]), x([2.0])]}, r"input 'x' appears more than once"),
        ({"inputs": good(), "id": 7}, r"'id' must be a string"),
        ({"inputs": good(), "outputs": [{"name": "proba"}]}, r"outputs\[0\] names .*'proba'"),
    ],
)
def test_malformed_requests_are_refused_naming_the_input(body, message):
    with pytest.raises(DataError, match=message):
        parse_infer_request(body)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [x([1.0]), x([1.0], name="zz"), x(["a"], "BYTES", name="c")],
            r"input\(s\) \['zz'\] are not features of model m v1; it takes \['x', 'z', 'c'\]",
        ),
        ([x([1.0]), x(["a"], "BYTES", name="c")], r"feature\(s\) \['z'\] of model m v1 are miss"),
        ([x([1.0, 2.0]), x([2.0], name="z"), x(["a"], "BYTES", name="c")], r"'z' has 1 row"),
        (
            [x([1.0, "abc"]), *good()[1:]],
            r"input 'x' element 1 is 'abc', not a number \(datatype FP64",
        ),
        ([x([1.0, True]), *good()[1:]], r"input 'x' element 1 is True, not a number"),
        ([x([1.5, 2.0], "INT64"), *good()[1:]], r"input 'x' element 0 is 1.5, not an integer"),
        ([x([-1, 2], "UINT8"), *good()[1:]], r"input 'x' element 0 is -1, negative"),
        ([x(["1", "x"], "BYTES"), *good()[1:]], r"input 'x' element 1 is 'x', not a number: fea"),
        ([*good()[:2], x([1.0, 2.0], name="c")], r"input 'c' has datatype FP64; feature 'c' is c"),
        ([*good()[:2], x(["a", 3], "BYTES", name="c")], r"input 'c' element 1 is 3: feature 'c'"),
        ([x([1.0] * 4, shape=[2, 2]), *good()[1:]], r"input 'x' has shape \[2, 2\]; a feature"),
        (
            [x([1.0] * 6, "BYTES", [2, 3], "input-0")],
            r"column 2 \(c\) element 0 is 1.0: feature 'c' is ca",
        ),
        ([x([1.0] * 4, "BYTES", [2, 2], "input-0")], r"'input-0' has shape \[2, 2\]; .*\[N, 3\]"),
        ([x([1.0] * 6, "FP64", [2, 3], "input-0")], r"datatype FP64 but feature\(s\) \['c'\]"),
        (
            [x([1.0, 2.0, "a", 1.0, "q", 3], "BYTES", [2, 3], "input-0")],
            r"input 'input-0' column 1 \(z\) element 1 is 'q', not a number",
        ),
    ],
)
def test_requests_that_do_not_fit_the_features_are_refused(inputs, message):
    request = parse_infer_request({"inputs": inputs})
    with pytest.raises(DataError, match=message):
        request_to_table(request, SPEC, model="m v1")


def test_outputs_and_metadata_follow_the_model_kind():
    rng = np.random.default_rng(0)
    n = 120
    x1 = rng.normal(size=n)
    table = pa.table(
        {
            "x1": x1,
            "color": pa.array(rng.choice(["red", "blue"], n)),
            "label": pa.array(np.where(x1 > 0, "yes", "no")),
            "y": 2 * x1 + 0.1 * rng.normal(size=n),
        }
    )
    clf = train(table, "label", trainer="logistic_regression", exclude=["y"], device="cpu")
    out = predict_outputs(clf, table.slice(0, 4))
    assert [o["name"] for o in out] == ["predict", "predict_proba"]
    assert out[0]["datatype"] == "BYTES" and out[0]["shape"] == [4]
    assert out[0]["data"] == clf.predict(table.slice(0, 4)).tolist()
    assert out[1]["shape"] == [4, 2] and len(out[1]["data"]) == 8
    np.testing.assert_allclose(
        np.reshape(out[1]["data"], (4, 2)), clf.predict_proba(table.slice(0, 4))
    )
    only = predict_outputs(clf, table.slice(0, 2), ["predict_proba"])
    assert [o["name"] for o in only] == ["predict_proba"]
    empty = predict_outputs(clf, table.slice(0, 0))
    assert [(o["shape"], o["data"]) for o in empty] == [([0], []), ([0, 2], [])]

    meta = model_metadata("m", 3, clf, [1, 2, 3])
    assert meta["platform"] == "sklearn" and meta["versions"] == ["1", "2", "3"]
    assert meta["inputs"] == [
        {"name": "x1", "datatype": "FP64", "shape": [-1]},
        {"name": "color", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"][0]["datatype"] == "BYTES"
    assert meta["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}
    assert meta["refit"]["classes"] == ["no", "yes"]

    reg_model = train(
        table,
        "y",
        trainer="random_forest",
        params={"n_estimators": 5, "n_jobs": 1},
        exclude=["label"],
        device="cpu",
    )
    out = predict_outputs(reg_model, table.slice(0, 3))
    assert [(o["name"], o["datatype"], o["shape"]) for o in out] == [("predict", "FP64", [3])]
    np.testing.assert_allclose(out[0]["data"], reg_model.predict(table.slice(0, 3)))
    with pytest.raises(DataError, match="'predict_proba' is not available.*regressor of 'y'"):
        predict_outputs(reg_model, table.slice(0, 3), ["predict_proba"])
    meta = model_metadata("m", 1, reg_model, [1])
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


# --------------------------------------------------------------------------- routing (pure)


def test_choose_version_splits_by_the_canary_percent():
    split = RolloutState(primary=1, canary=2, canary_percent=10)
    assert choose_version(split, 0.0999) == 2
    assert choose_version(split, 0.1) == 1
    assert choose_version(RolloutState(primary=1), 0.0) == 1
    assert choose_version(RolloutState(primary=None, canary=2, canary_percent=10), 0.99) == 2
    assert choose_version(RolloutState(primary=None), 0.5) is None
    assert choose_version(RolloutState(primary=1, canary=2, canary_percent=0), 0.0) == 1
    assert choose_version(RolloutState(primary=1, canary=2, canary_percent=100), 0.9999) == 2
    assert split.split() == {1: 90.0, 2: 10.0}
    assert RolloutState(primary=None, canary=2, canary_percent=5).split() == {2: 100.0}
    assert RolloutState(primary=2, canary=2, canary_percent=5).split() == {2: 100.0}
    assert RolloutState(primary=None).split() == {}


@pytest.mark.parametrize("data", [None, {}, {"version": None}, {"version": None, "percent": 5}])
def test_no_canary_state(data):
    assert parse_canary_state(data) == (None, 0.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([4, 10], r"canary state must be a JSON object"),
        ({"version": "4", "percent": 10}, r"'version' must be a positive integer, got '4'"),
        ({"version": 0, "percent": 10}, r"'version' must be a positive integer, got 0"),
        ({"version": 4}, r"'percent' must be a number from 0 to 100, got None \(canary vers"),
        ({"version": 4, "percent": 101}, r"'percent' must be a number from 0 to 100, got 101"),
        ({"version": 4, "percent": True}, r"'percent' must be a number"),
    ],
)
def test_bad_canary_states_are_refused(data, message):
    with pytest.raises(DeployError, match=message):
        parse_canary_state(data)


def test_rollout_state_comes_from_the_champion_alias_and_the_canary_state(reg):
    assert read_rollout_state(reg) == RolloutState(primary=None)
    reg.set_alias("champion", 1)
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 25, "step": 1})
    assert read_rollout_state(reg) == RolloutState(primary=1, canary=2, canary_percent=25.0)
    reg.write_state(CANARY_STATE_KEY, {"version": 9, "percent": 25})
    state = read_rollout_state(reg)
    assert (state.primary, state.canary, state.split()) == (1, None, {1: 100.0})
    assert "version 9, which model 'credit' does not have" in state.problem


def test_router_rereads_the_state_only_when_it_is_stale_and_is_seeded(reg):
    reg.set_alias("champion", 1)
    now = [100.0]
    changes: list[RolloutState] = []
    router = TrafficRouter(
        reg, seed=3, refresh_seconds=0.5, clock=lambda: now[0], on_change=changes.append
    )
    assert [router.route()[0] for _ in range(5)] == [1] * 5
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 100})
    now[0] += 0.4
    assert router.route()[0] == 1  # read 0.4 s ago: not re-read yet
    now[0] += 0.1
    assert router.route()[0] == 2
    assert [c.split() for c in changes] == [{1: 100.0}, {1: 0.0, 2: 100.0}]

    def picks(seed: int, percent: float, n: int = 1000) -> list[int]:
        reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": percent})
        r = TrafficRouter(reg, seed=seed, refresh_seconds=3600)
        return [r.route()[0] for _ in range(n)]

    assert picks(0, 30) == picks(0, 30)
    assert picks(0, 30) != picks(1, 30)
    assert set(picks(0, 0)) == {1} and set(picks(0, 100)) == {2}
    for percent in (5, 10, 50):
        canary = picks(7, percent).count(2)
        p = percent / 100
        assert abs(canary - 1000 * p) <= 4 * math.sqrt(1000 * p * (1 - p)), (percent, canary)
    with pytest.raises(DeployError, match="state_refresh_seconds must be >= 0"):
        TrafficRouter(reg, refresh_seconds=-1)


# --------------------------------------------------------------------------- faults (pure)


def test_fault_options_parse_and_merge():
    assert parse_fault("2:error_rate=0.5") == (2, "error_rate", 0.5)
    assert parse_faults(["2:error_rate=0.5", "2:latency_ms=300", "3:latency_ms=10"]) == {
        2: Fault(error_rate=0.5, latency_ms=300.0),
        3: Fault(latency_ms=10.0),
    }
    assert parse_faults([]) == {}
    assert check_faults({"2": {"error_rate": 1}, 3: Fault(latency_ms=5)}) == {
        2: Fault(error_rate=1),
        3: Fault(latency_ms=5),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2-error_rate=0.5", r"fault '2-error_rate=0.5' must look like VERSION:KEY=VALUE"),
        ("x:error_rate=0.5", r"fault 'x:error_rate=0.5': version must be a positive integer"),
        ("0:error_rate=0.5", r"version must be a positive integer, got '0'"),
        ("2:errors=0.5", r"fault '2:errors=0.5': unknown setting 'errors'"),
        ("2:error_rate=lots", r"fault '2:error_rate=lots': error_rate must be a number, got 'l"),
        ("2:error_rate=1.5", r"fault '2:error_rate=1.5': fault error_rate must be .* 0 to 1"),
        ("2:latency_ms=-3", r"fault '2:latency_ms=-3': fault latency_ms must be .* >= 0"),
        ("2:latency_ms=inf", r"latency_ms must be a finite number"),
    ],
)
def test_bad_fault_options_are_refused(text, message):
    with pytest.raises(DeployError, match=message):
        parse_faults([text])


def test_bad_fault_mappings_are_refused():
    with pytest.raises(DeployError, match=r"faults\[2\]: unknown setting\(s\) \['rate'\]"):
        check_faults({2: {"rate": 0.1}})
    with pytest.raises(DeployError, match=r"faults\['v2'\]: version must be a positive"):
        check_faults({"v2": {"error_rate": 0.1}})
    with pytest.raises(DeployError, match=r"faults\[2\] must be a Fault or a mapping"):
        check_faults({2: 0.5})


# --------------------------------------------------------------------------- the app


def test_no_champion_is_not_ready_and_answers_503_not_a_crash(reg, rows):
    client = client_for(reg)
    assert client.get("/v2/health/live").json() == {"live": True}
    for path in ("/v2/health/ready", f"/v2/models/{NAME}/ready"):
        r = client.get(path)
        assert r.status_code == 503, path
        assert r.json()["ready"] is False
        assert "has no champion" in r.json()["error"]
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    r = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert r.status_code == 503
    assert r.json()["error"].startswith(f"model {NAME!r} has no champion in store")
    assert f"/v2/models/{NAME}/versions/{{version}}/infer" in r.json()["error"]
    r = client.get(f"/v2/models/{NAME}")
    assert r.status_code == 503 and "no champion" in r.json()["error"]
    # a pinned version still answers, and its own readiness is fine
    r = client.post(f"/v2/models/{NAME}/versions/2/infer", json=body)
    assert (r.status_code, r.json()["model_version"]) == (200, "2")
    assert client.get(f"/v2/models/{NAME}/versions/2/ready").json() == {
        "name": NAME,
        "ready": True,
    }
    m = samples(client)
    assert requests_count(m, "none", "503") == 1
    assert requests_count(m, "v2", "200") == 1
    # the champion arrives: ready without a restart
    reg.set_alias("champion", 1)
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"] == "1"


def test_v2_infer_answers_what_the_registered_model_predicts(reg, rows):
    reg.set_alias("champion", 1)
    client = client_for(reg)
    model = reg.load_model(1)
    body = {"id": "req-1", "inputs": column_inputs(rows, model.spec)}
    r = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (NAME, "1", "req-1")
    predict, proba = answer["outputs"]
    assert (predict["name"], predict["datatype"], predict["shape"]) == ("predict", "INT64", [5])
    assert predict["data"] == model.predict(rows).tolist()
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP64", [5, 2])
    np.testing.assert_allclose(np.reshape(proba["data"], (5, 2)), model.predict_proba(rows))

    matrix = client.post(
        f"/v2/models/{NAME}/infer", json={"inputs": [matrix_input(rows, model.spec)]}
    )
    assert matrix.status_code == 200
    assert matrix.json()["outputs"] == answer["outputs"]
    assert isinstance(matrix.json()["id"], str) and matrix.json()["id"]

    only = client.post(
        f"/v2/models/{NAME}/infer", json={**body, "outputs": [{"name": "predict"}]}
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["predict"]

    pinned = client.post(f"/v2/models/{NAME}/versions/2/infer", json=body).json()
    assert pinned["model_version"] == "2"
    assert pinned["outputs"][0]["data"] == reg.load_model(2).predict(rows).tolist()


def test_metadata_endpoints(reg):
    reg.set_alias("champion", 1)
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 10})
    client = client_for(reg)
    server = client.get("/v2").json()
    assert server["name"] == "refit-model-server" and server["extensions"] == []
    assert isinstance(server["version"], str) and server["version"]

    meta = client.get(f"/v2/models/{NAME}").json()
    spec = spec_of(reg)
    assert meta["name"] == NAME and meta["versions"] == ["1", "2"]
    assert meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == spec.feature_columns
    assert {i["datatype"] for i in meta["inputs"] if i["name"] in spec.categorical} == {"BYTES"}
    assert {i["datatype"] for i in meta["inputs"] if i["name"] in spec.numeric} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert meta["refit"]["version"] == 1
    assert meta["refit"]["traffic"]["split"] == {"v1": 90.0, "v2": 10.0}

    v2 = client.get(f"/v2/models/{NAME}/versions/2").json()
    assert (v2["platform"], v2["refit"]["trainer"], v2["refit"]["revision"]) == (
        "xgboost",
        "xgboost",
        "v2",
    )


def test_unknown_models_versions_and_bad_bodies(reg, rows):
    reg.set_alias("champion", 1)
    client = client_for(reg)
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    for method, path in [
        ("post", "/v2/models/other/infer"),
        ("post", "/v2/models/other/versions/1/infer"),
        ("get", "/v2/models/other"),
        ("get", "/v2/models/other/ready"),
    ]:
        r = client.request(method.upper(), path, json=body)
        assert r.status_code == 404, path
        assert r.json() == {
            "error": f"model 'other' is not served here; this server serves {NAME!r}"
        }
    r = client.post(f"/v2/models/{NAME}/versions/7/infer", json=body)
    assert r.status_code == 404
    assert r.json()["error"] == f"model {NAME!r} has no version 7 (versions: [1, 2])"
    assert client.get(f"/v2/models/{NAME}/versions/7").status_code == 404
    r = client.post(f"/v2/models/{NAME}/versions/latest/infer", json=body)
    assert r.status_code == 400
    assert r.json()["error"] == f"version 'latest' of model {NAME!r} must be a positive integer"

    r = client.post(f"/v2/models/{NAME}/infer", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"].startswith("body is not JSON")
    missing = {"inputs": [i for i in body["inputs"] if i["name"] != "region"]}
    r = client.post(f"/v2/models/{NAME}/infer", json=missing)
    assert r.status_code == 400
    assert r.json() == {
        "error": f"feature(s) ['region'] of model {NAME!r} version 1 are missing from the "
        "request's inputs"
    }
    wrong = [dict(i) for i in body["inputs"]]
    wrong[0]["data"] = ["high"] + wrong[0]["data"][1:]
    r = client.post(f"/v2/models/{NAME}/infer", json={"inputs": wrong})
    assert r.status_code == 400
    assert f"input {wrong[0]['name']!r} element 0 is 'high', not a number" in r.json()["error"]

    m = samples(client)
    assert requests_count(m, "v1", "400") == 3  # counted on the revision that answered
    assert not [k for k in m if k[0] == "refit_model_requests_total" and ("code", "404") in k[1]]


def test_split_follows_the_seed_and_the_rollout_and_is_counted_per_revision(reg, windows):
    reg.set_alias("champion", 1)
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 10})
    client = client_for(reg, seed=0)
    spec = spec_of(reg)
    body = {"inputs": column_inputs(windows[3].slice(0, 1), spec)}
    codes: Counter = Counter()
    served: Counter = Counter()
    for _ in range(1000):
        r = client.post(f"/v2/models/{NAME}/infer", json=body)
        codes[r.status_code] += 1
        served[r.json()["model_version"]] += 1
    assert codes == {200: 1000}
    # Binomial(1000, 0.1): mean 100, sd 9.5; +-3.5 sd
    assert 67 <= served["2"] <= 133, served
    # the same seed routes the same way
    again = client_for(reg, seed=0)
    first = [
        again.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"] for _ in range(60)
    ]
    replay = client_for(reg, seed=0)
    assert [
        replay.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"]
        for _ in range(60)
    ] == first

    m = samples(client)
    assert requests_count(m, "v1", "200") == served["1"]
    assert requests_count(m, "v2", "200") == served["2"]
    assert duration(m, "v1", "_count") == served["1"]
    assert duration(m, "v2", "_count") == served["2"]
    assert duration(m, "v2", "_bucket", "10.0") == served["2"]
    assert (traffic(m, "v1"), traffic(m, "v2")) == (90.0, 10.0)

    # the rollout moves on: the next reads follow it (refresh 0 s here)
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 100})
    assert {
        client.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"]
        for _ in range(30)
    } == {"2"}
    reg.update_aliases({"champion": 2})
    reg.write_state(CANARY_STATE_KEY, {"version": None})
    m = samples(client)
    assert (traffic(m, "v1"), traffic(m, "v2")) == (0.0, 100.0)


def test_state_is_cached_for_the_refresh_interval(reg, rows):
    reg.set_alias("champion", 1)
    now = [0.0]
    client = client_for(reg, state_refresh_seconds=0.5, clock=lambda: now[0])
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    assert client.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"] == "1"
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 100})
    now[0] = 0.49
    assert client.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"] == "1"
    now[0] = 0.5
    assert client.post(f"/v2/models/{NAME}/infer", json=body).json()["model_version"] == "2"


def test_injected_errors_hit_only_the_faulted_version(reg, rows):
    reg.set_alias("champion", 1)
    client = client_for(reg, seed=4, faults={2: {"error_rate": 0.5}})
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    results = [client.post(f"/v2/models/{NAME}/versions/2/infer", json=body) for _ in range(200)]
    failed = [r for r in results if r.status_code == 500]
    assert {r.status_code for r in results} == {200, 500}
    # Binomial(200, 0.5): mean 100, sd 7.1; +-4 sd
    assert 72 <= len(failed) <= 128, len(failed)
    assert failed[0].json() == {
        "error": f"injected fault: model {NAME!r} version 2 fails 50% of requests "
        "(fault-injection drill)"
    }
    healthy = [client.post(f"/v2/models/{NAME}/versions/1/infer", json=body) for _ in range(30)]
    assert {r.status_code for r in healthy} == {200}
    m = samples(client)
    assert requests_count(m, "v2", "500") == len(failed)
    assert requests_count(m, "v2", "200") == 200 - len(failed)
    assert requests_count(m, "v1", "500") == 0 and requests_count(m, "v1", "200") == 30


def test_injected_latency_shows_in_the_duration_histogram(reg, rows):
    reg.set_alias("champion", 1)
    client = client_for(reg, faults={2: Fault(latency_ms=30)})
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    for _ in range(5):
        assert client.post(f"/v2/models/{NAME}/versions/2/infer", json=body).status_code == 200
    m = samples(client)
    assert duration(m, "v2", "_count") == 5
    assert duration(m, "v2", "_bucket", "0.025") == 0  # every request waited >= 30 ms
    assert duration(m, "v2", "_sum") >= 5 * 0.030


def test_versions_load_once_and_a_tampered_file_is_refused(reg, rows, monkeypatch):
    reg.set_alias("champion", 1)
    reg.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 50})
    model_file = Path(reg.get(2).model_uri) / reg.get(2).file
    model_file.write_bytes(model_file.read_bytes() + b" ")
    body = {"inputs": column_inputs(rows, spec_of(reg))}
    loads: list[int] = []
    original = ModelRegistry.load_model

    def counting(self, version):
        loads.append(version)
        return original(self, version)

    monkeypatch.setattr(ModelRegistry, "load_model", counting)
    with client_for(reg) as client:  # startup loads the split's versions
        assert loads.count(1) == 1
        for _ in range(5):
            assert client.post(f"/v2/models/{NAME}/versions/1/infer", json=body).status_code == 200
        assert loads.count(1) == 1
        r = client.post(f"/v2/models/{NAME}/versions/2/infer", json=body)
        assert r.status_code == 500
        assert r.json()["error"].startswith(f"model {NAME!r} version 2 cannot be loaded")
        assert "sha256" in r.json()["error"]
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and "sha256" in ready.json()["error"]
        assert client.get(f"/v2/models/{NAME}/versions/1/ready").status_code == 200
        assert requests_count(samples(client), "v2", "500") == 1


def test_create_app_refuses_bad_options(reg):
    with pytest.raises(DeployError, match="fault error_rate must be"):
        create_app(reg.store_uri, NAME, faults={2: {"error_rate": 2}})
    with pytest.raises(DeployError, match="state_refresh_seconds must be >= 0"):
        create_app(reg.store_uri, NAME, state_refresh_seconds=-1)


def test_seeded_fault_draws_repeat(reg, rows):
    def statuses(seed: int) -> list[int]:
        client = client_for(reg, seed=seed, faults={1: {"error_rate": 0.3}})
        body = {"inputs": column_inputs(rows, spec_of(reg))}
        return [
            client.post(f"/v2/models/{NAME}/versions/1/infer", json=body).status_code
            for _ in range(40)
        ]

    assert statuses(5) == statuses(5)
    assert statuses(5) != statuses(6)


def test_an_unexpected_failure_is_a_counted_v2_error(reg, rows, monkeypatch):
    reg.set_alias("champion", 1)
    client = client_for(reg)
    body = {"inputs": column_inputs(rows, spec_of(reg))}

    def broken(*args, **kwargs):
        raise RuntimeError("estimator exploded")

    monkeypatch.setattr("refit.serving.server.predict_outputs", broken)
    r = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert r.status_code == 500
    assert r.json() == {
        "error": f"model {NAME!r} version 1 failed to predict: RuntimeError('estimator exploded')"
    }
    assert requests_count(samples(client), "v1", "500") == 1
