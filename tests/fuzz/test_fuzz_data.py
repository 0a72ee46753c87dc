"""Data-side corpus of issue 16: bad tables, forged profiles, schemas, statistics and results.

Each case feeds one bad input to ``refit drift``, ``refit train``, ``refit validate`` or
``refit evaluate`` (through Typer's runner) or to the library function that parses the artifact,
and asserts a clear error naming the input and what is wrong, or (where the data is readable
but suspicious) the anomaly in the written report. Then the limits: the categorical cardinality
cap bounds the encoded width and is recorded in the model card, and a stray-string numeric
column is refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from _corpus import assert_clear_cli_error
from tensorflow_metadata.proto.v0 import anomalies_pb2
from typer.testing import CliRunner

from refit.cli import app
from refit.drift.accumulate import profile_table
from refit.drift.profile import Profile, _pack
from refit.drift.profile_io import load_profile, save_profile
from refit.errors import DataError, RefitError, SchemaError
from refit.evaluation.metrics import EvaluationResult
from refit.training import (
    FeatureSpec,
    build_model_card,
    encode,
    infer_feature_spec,
    load_model,
    render_model_card,
    save_model,
    train,
)
from refit.validation.anomalies import anomalies_from_text
from refit.validation.engines import read_statistics
from refit.validation.schema import schema_from_text
from refit.validation.statistics import compute_statistics

N = 400


def _table(seed: int = 0, n: int = N) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, n),
            "c": rng.choice(["x", "y", "z"], n),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fuzz_data")
    rng = np.random.default_rng(16)
    out: dict[str, Path] = {}

    def parquet(name: str, table: pa.Table) -> None:
        out[name] = d / f"{name}.parquet"
        pq.write_table(table, out[name])

    def text(name: str, body: bytes, suffix: str = ".csv") -> None:
        out[name] = d / f"{name}{suffix}"
        out[name].write_bytes(body)

    ref = _table(0)
    parquet("ref", ref)
    parquet("cur", _table(1))
    out["ref_csv"] = d / "ref.csv"
    pacsv.write_csv(ref, out["ref_csv"])
    parquet("renamed", _table(1).rename_columns(["p", "q", "r", "s"]))
    parquet("partial", _table(1).select(["a", "y"]))
    parquet(
        "dup_parquet",
        pa.Table.from_arrays(
            [pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([0, 1])], names=["a", "a", "y"]
        ),
    )
    text("dup_csv", b"a,a,y\n1,2,0\n3,4,1\n5,6,0\n")
    text("empty_csv", b"")
    text("header_csv", b"a,b,c,y\n")
    text("latin1_csv", "a,c,y\n1,caf\xe9,0\n2,na\xefve,1\n3,caf\xe9,0\n".encode("latin-1"))
    strays = [f"{v:.4f}" for v in rng.normal(size=N)]
    strays[3], strays[10], strays[11] = "?", "unknown", "?"
    out["numstr"] = d / "numstr.csv"
    pacsv.write_csv(
        pa.table({"a": strays, "b": rng.normal(size=N), "y": rng.integers(0, 2, N)}),
        out["numstr"],
    )
    parquet(
        "allnull",
        pa.table(
            {"a": pa.nulls(N, pa.float64()), "b": rng.normal(size=N), "y": rng.integers(0, 2, N)}
        ),
    )
    labels = rng.integers(0, 2, N).astype(np.float64)
    labels[5] = np.nan
    parquet("nanlabel", pa.table({"a": rng.normal(size=N), "y": labels}))
    reg = rng.normal(size=N)
    reg[7] = np.inf
    parquet("inflabel", pa.table({"a": rng.normal(size=N), "y": reg}))
    parquet("oneclass", pa.table({"a": rng.normal(size=N), "y": np.ones(N, np.int64)}))
    out["profile"] = d / "ref_profile.json"
    save_profile(profile_table(ref, source="ref"), str(out["profile"]))
    return out


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _drift(tmp_path: Path, reference: Path | str, current: Path | str, *extra: object):
    return _invoke(
        "drift", "--reference", reference, "--current", current, "--output", tmp_path / "o", *extra
    )


def _train(tmp_path: Path, data: Path | str, *extra: object, target: str = "y"):
    return _invoke(
        "train", "--data", data, "--label-column", target, "--output", tmp_path / "m", "--quiet",
        "--trainer", "logistic_regression", *extra,
    )  # fmt: skip


def _validate(tmp_path: Path, data: Path | str, *extra: object):
    return _invoke("validate", data, "--output", tmp_path / "v", *extra)


def _forged(files: dict[str, Path], tmp_path: Path, edit) -> Path:
    data = json.loads(files["profile"].read_text())
    edit(data)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(data))
    return path


# --------------------------------------------------------------------------- refit drift

DRIFT_TABLE_CASES = [
    ("dup_csv", "ref", ["dup_csv", "duplicate column", "'a'"]),
    ("ref", "dup_csv", ["dup_csv", "duplicate column", "'a'"]),
    ("ref", "dup_parquet", ["dup_parquet", "duplicate column", "'a'"]),
    ("empty_csv", "ref", ["empty_csv", "empty"]),
    ("ref", "header_csv", ["header_csv", "no rows"]),
    ("header_csv", "ref", ["header_csv", "no rows"]),
    ("latin1_csv", "latin1_csv", ["latin1_csv", "UTF-8", "'c'"]),
    ("ref", "renamed", ["no columns could be compared", "a: column is missing from the current"]),
]


@pytest.mark.parametrize(("reference", "current", "names"), DRIFT_TABLE_CASES)
def test_drift_bad_tables_are_clear_errors(files, tmp_path, reference, current, names):
    result = _drift(tmp_path, files[reference], files[current])
    assert_clear_cli_error(result, *names)


def test_drift_missing_path_is_a_clear_error(files, tmp_path):
    assert_clear_cli_error(_drift(tmp_path, files["ref"], tmp_path / "nope.parquet"), "nope")


def test_drift_reports_every_reference_feature_missing_from_the_current_data(files, tmp_path):
    result = _drift(tmp_path, files["ref"], files["partial"])
    assert result.exit_code == 0, result.output
    for name in ("b", "c"):
        assert f"{name}: column is missing from the current data" in result.output
    report = json.loads((tmp_path / "o" / "drift.json").read_text())
    assert sorted(report["not_comparable"]) == ["b", "c"]
    assert report["n_features"] == 2  # only a and y were compared, and it says so


def _set_rows(value):
    def edit(d):
        d["rows"] = value

    return edit


def _feature(name, **fields):
    def edit(d):
        d["features"][name]["summary"].update(fields)

    return edit


def _category(label, value):
    def edit(d):
        counts = d["features"]["c"]["summary"]["counts"]
        counts[label] = value

    return edit


def _numeric_counts(scale):
    def edit(d):
        s = d["features"]["a"]["summary"]
        p = Profile.from_dict(json.loads(json.dumps(d)))  # the untouched profile parses
        counts = p.features["a"].summary.counts * scale
        s["counts"] = _pack(counts, "<i8")

    return edit


def _reverse_points(d):
    s = d["features"]["a"]["summary"]
    p = Profile.from_dict(json.loads(json.dumps(d)))
    s["points"] = _pack(p.features["a"].summary.points[::-1], "<f8")


def _drop(field):
    def edit(d):
        del d["features"]["b"]["summary"][field]

    return edit


def _type(value):
    def edit(d):
        d["features"]["b"]["type"] = value

    return edit


FORGED_PROFILES = [
    ("rows_1e30", _set_rows(1e30), ["rows", "integer"]),
    ("rows_10_30", _set_rows(10**30), ["rows", "between 0 and"]),
    ("rows_negative", _set_rows(-5), ["rows", "-5"]),
    ("rows_bool", _set_rows(True), ["rows", "True"]),
    ("category_negative", _category("x", -5), ["feature 'c'", "-5"]),
    ("category_inflated", _category("x", 10**9), ["feature 'c'", "rows"]),
    ("numeric_count_mismatch", _feature("a", count=N + 100), ["feature 'a'", "rows"]),
    ("numeric_missing_negative", _feature("b", missing=-1), ["feature 'b'", "missing"]),
    ("min_above_max", _feature("a", min=5.0, max=-5.0), ["feature 'a'", "min"]),
    ("min_infinite", _feature("a", min=float("-inf")), ["feature 'a'", "min"]),
    ("m2_negative", _feature("a", m2=-1.0), ["feature 'a'", "m2"]),
    ("sum_off_range", _feature("a", sum=1e12), ["feature 'a'", "mean"]),
    ("histogram_sum", _numeric_counts(3), ["feature 'a'", "histogram counts sum"]),
    ("histogram_zero", _numeric_counts(0), ["feature 'a'", "positive"]),
    ("points_unsorted", _reverse_points, ["feature 'a'", "increasing"]),
    ("field_missing", _drop("m2"), ["feature 'b'", "m2"]),
    ("type_unknown", _type("tensor"), ["feature 'b'", "tensor"]),
]


@pytest.mark.parametrize(
    ("case", "edit", "names"), FORGED_PROFILES, ids=[c[0] for c in FORGED_PROFILES]
)
def test_forged_profile_is_refused_by_name(files, tmp_path, case, edit, names):
    forged = _forged(files, tmp_path, edit)
    result = _drift(tmp_path, forged, files["cur"])
    assert_clear_cli_error(result, "forged.json", *names)
    with pytest.raises(SchemaError, match="forged.json"):
        load_profile(str(forged))


def test_the_untouched_profile_is_accepted(files, tmp_path):
    assert _drift(tmp_path, files["profile"], files["cur"]).exit_code == 0


def test_profile_that_is_not_json_is_a_clear_error(files, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{rows")
    assert_clear_cli_error(_drift(tmp_path, bad, files["cur"]), "bad.json", "not valid JSON")


TFDV_SCHEMAS = [
    (
        'feature { name: "a" type: FLOAT drift_comparator { jensen_shannon_divergence '
        "{ threshold: -0.1 } } }",
        ["feature 'a'", "threshold"],
    ),
    ('feature { name: "a" type: FLOAT } feature { name: "a" type: INT }', ["'a'", "twice"]),
]


@pytest.mark.parametrize(("text", "names"), TFDV_SCHEMAS, ids=["threshold_negative", "twice"])
def test_drift_with_an_inconsistent_tfdv_schema_is_refused(files, tmp_path, text, names):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(text)
    result = _drift(tmp_path, files["ref"], files["cur"], "--tfdv-schema", schema)
    assert_clear_cli_error(result, "schema.pbtxt", *names)


# --------------------------------------------------------------------------- refit train

TRAIN_CASES = [
    ("dup_csv", "y", [], ["dup_csv", "duplicate column", "'a'"]),
    ("dup_parquet", "y", [], ["dup_parquet", "duplicate column"]),
    ("empty_csv", "y", [], ["empty_csv", "empty"]),
    ("header_csv", "y", [], ["no rows"]),
    ("latin1_csv", "y", [], ["latin1_csv", "UTF-8", "'c'"]),
    ("ref", "label", [], ["'label'", "missing"]),
    ("allnull", "y", [], ["'a'", "no values"]),
    ("nanlabel", "y", [], ["'y'", "NaN"]),
    ("inflabel", "y", ["--task", "regression", "--model", "xgboost"], ["'y'", "infinite"]),
    ("oneclass", "y", [], ["'y'", "single class"]),
    ("numstr", "y", [], ["'a'", "looks numeric", "'?'", "'unknown'"]),
    ("ref", "c", ["--task", "regression", "--model", "xgboost"], ["'c'", "must be numeric"]),
    ("ref", "y", ["--exclude", "ghost"], ["ghost", "exclude"]),
    ("ref", "y", ["--max-categories", "0"], ["max-categories"]),
    ("ref", "y", ["--max-categories", "nope"], ["max-categories"]),
]


@pytest.mark.parametrize(("data", "target", "extra", "names"), TRAIN_CASES)
def test_train_bad_input_is_a_clear_error(files, tmp_path, data, target, extra, names):
    result = _train(tmp_path, files[data], *extra, target=target)
    assert_clear_cli_error(result, *names)
    assert not (tmp_path / "m" / "model.json").exists()


# --------------------------------------------------------------------------- refit validate


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ("dup_csv", ["duplicate column", "'a'"]),
        ("dup_parquet", ["duplicate column"]),
        ("latin1_csv", ["UTF-8", "'c'"]),
        ("empty_csv", ["empty"]),
    ],
)
def test_validate_unreadable_tables_are_clear_errors(files, tmp_path, data, names):
    assert_clear_cli_error(_validate(tmp_path, files[data]), files[data].name, *names)


def test_validate_reports_a_numeric_column_with_stray_strings(files, tmp_path):
    result = _validate(tmp_path, files["numstr"])
    assert result.exit_code == 0, result.output
    anomalies = anomalies_from_text((tmp_path / "v" / "anomalies.pbtxt").read_text())
    (reason,) = anomalies.anomaly_info["a"].reason
    assert anomalies_pb2.AnomalyInfo.Type.Name(reason.type) == "FLOAT_TYPE_STRING_NOT_FLOAT"
    for name in ("'a'", "'?'", "'unknown'", "3 non-numeric"):
        assert name in reason.description, reason.description
    assert "numeric" in result.output.lower() or "anomal" in result.output.lower()


SCHEMAS = [
    ('feature { name: "a" type: FLOAT presence { min_fraction: 2.0 } }', ["min_fraction"]),
    ('feature { name: "a" type: FLOAT float_domain { min: 3 max: 1 } }', ["float_domain"]),
    ('feature { name: "b" type: INT int_domain { min: 9 max: 1 } }', ["int_domain"]),
    ('feature { name: "a" type: FLOAT value_count { min: 3 max: 1 } }', ["value_count"]),
    ('feature { name: "c" type: BYTES domain: "ghost" }', ["'ghost'", "does not define"]),
    (
        'feature { name: "c" type: BYTES domain: "c" } string_domain { name: "c" value: "x" '
        'value: "x" }',
        ["repeats"],
    ),
]


@pytest.mark.parametrize(
    ("text", "names"),
    SCHEMAS,
    ids=["min_fraction", "float_domain", "int_domain", "value_count", "no_domain", "repeats"],
)
def test_validate_with_an_inconsistent_schema_is_refused(files, tmp_path, text, names):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(text)
    result = _validate(tmp_path, files["ref"], "--schema", schema)
    assert_clear_cli_error(result, "schema.pbtxt", *names)
    with pytest.raises(SchemaError):
        schema_from_text(text)


def _stats_file(tmp_path: Path, edit) -> str:
    stats = compute_statistics(_table(0), name="forged")
    edit(stats.datasets[0])
    path = tmp_path / "statistics.pb"
    path.write_bytes(stats.SerializeToString())
    return str(path)


def _num(name):
    def get(dataset):
        return next(f for f in dataset.features if f.path.step[-1] == name).num_stats

    return get


def _rows_1e18(dataset):
    dataset.num_examples = 10**18


def _min_above_max(dataset):
    s = _num("a")(dataset)
    s.min, s.max = 5.0, -5.0


def _bucket_inflated(dataset):
    s = _num("a")(dataset)
    s.histograms[0].buckets[0].sample_count = 1e12


def _missing_inflated(dataset):
    _num("a")(dataset).common_stats.num_missing = 10**9


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (_rows_1e18, ["num_examples"]),
        (_min_above_max, ["feature 'a'", "min"]),
        (_bucket_inflated, ["feature 'a'", "histogram"]),
        (_missing_inflated, ["feature 'a'", "num_missing"]),
    ],
)
def test_forged_statistics_are_refused(tmp_path, edit, names):
    path = _stats_file(tmp_path, edit)
    with pytest.raises(DataError) as info:
        read_statistics(path)
    for name in ("statistics.pb", *names):
        assert name.lower() in str(info.value).lower(), str(info.value)


def test_honest_statistics_are_read(tmp_path):
    assert read_statistics(_stats_file(tmp_path, lambda d: None)).datasets[0].num_examples == N


# --------------------------------------------------------------------------- refit evaluate


@pytest.fixture(scope="module")
def model_dir(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    save_model(train(_table(0), "y", trainer="logistic_regression"), out)
    return out


@pytest.mark.parametrize(
    ("data", "target", "names"),
    [
        ("dup_csv", "y", ["duplicate column"]),
        ("latin1_csv", "y", ["UTF-8"]),
        ("ref", "label", ["'label'"]),
        ("partial", "y", ["'b'", "missing"]),
        ("header_csv", "y", ["no rows"]),
    ],
)
def test_evaluate_bad_holdout_is_a_clear_error(files, model_dir, tmp_path, data, target, names):
    result = _invoke(
        "evaluate", "--challenger", model_dir, "--data", files[data], "--label-column", target,
        "--output", tmp_path / "e",
    )  # fmt: skip
    assert_clear_cli_error(result, *names)


def _result(**changes):
    base = EvaluationResult(
        accuracy=0.75, f1=0.7, roc_auc=0.8, n_rows=8, labels=[0, 1],
        confusion_matrix=[[3, 1], [1, 3]], roc_curve={"fpr": [0, 1], "tpr": [0, 1],
                                                      "thresholds": [1, 0]},
    ).to_dict()  # fmt: skip
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"accuracy": 1.5}, ["accuracy", "[0, 1]"]),
        ({"f1": float("nan")}, ["f1"]),
        ({"n_rows": -1}, ["n_rows"]),
        ({"n_rows": 9}, ["confusion_matrix", "n_rows"]),
        ({"confusion_matrix": [[3, 1], [1, 3], [0, 0]]}, ["confusion_matrix", "2 x 2"]),
        ({"confusion_matrix": [[5, -1], [1, 3]]}, ["confusion_matrix", "-1"]),
        ({"accuracy": 0.25}, ["accuracy", "does not match"]),
        ({"roc_curve": {"fpr": [0, 2], "tpr": [0, 1], "thresholds": [1, 0]}}, ["fpr"]),
        ({"roc_curve": {"fpr": [0], "tpr": [0, 1], "thresholds": [1, 0]}}, ["length"]),
    ],
)
def test_inconsistent_evaluation_result_is_refused(changes, names):
    with pytest.raises(DataError) as info:
        EvaluationResult.from_dict(_result(**changes))
    for name in names:
        assert name.lower() in str(info.value).lower(), str(info.value)


def test_evaluation_result_round_trips():
    assert EvaluationResult.from_dict(_result()).to_dict() == _result()


def test_feature_spec_with_a_stray_other_column_is_refused():
    spec = {"target": "y", "numeric": ["a"], "categorical": {}, "categorical_other": ["c"]}
    with pytest.raises(RefitError, match="categorical_other"):
        FeatureSpec.from_dict(spec)


# --------------------------------------------------------------------------- limits


def _high_cardinality(n: int, distinct: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, distinct, n)
    # A few frequent values so that the kept top-K is meaningful, the rest a long tail.
    ids[: n // 2] = rng.integers(0, 5, n // 2)
    return pa.table(
        {
            "x": rng.normal(size=n),
            "user": pa.array([f"u{i}" for i in ids]),
            "y": (ids % 2 == 0).astype(np.int64),
        }
    )


def test_cardinality_cap_bounds_the_encoded_width_and_is_in_the_card(tmp_path):
    table = _high_cardinality(20_000, 15_000)
    spec = infer_feature_spec(table, "y", max_categories=50)
    assert spec.other == ["user"]
    assert len(spec.categorical["user"]) == 50
    assert spec.n_features == 1 + 50 + 1
    assert spec.feature_names[-1] == "user=(other)"
    assert {f"u{i}" for i in range(5)} <= set(spec.categorical["user"])
    matrix = encode(table, spec)
    assert matrix.shape == (20_000, 52)
    # every present value lands in exactly one column of its block
    assert np.all(matrix[:, 1:].sum(axis=1) == 1)

    model = train(table, "y", trainer="logistic_regression", max_categories=50)
    card = build_model_card(model, table, data_sha256="0" * 64, wall_time_s=1.0)
    assert card["max_categories"] == 50
    user = next(f for f in card["features"] if f["name"] == "user")
    assert user == {
        "name": "user", "kind": "categorical", "type": "string", "categories": 50, "other": True
    }  # fmt: skip
    assert "capped at max_categories=50" in render_model_card(card)
    save_model(model, tmp_path / "m", card=card)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["feature_spec"]["categorical_other"] == ["user"]
    loaded = load_model(tmp_path / "m")
    assert loaded.spec.other == ["user"] and loaded.spec.n_features == 52
    unseen = pa.table({"x": [0.0], "user": ["never-seen"], "y": [0]})
    assert encode(unseen, loaded.spec)[0, -1] == 1.0
    assert np.array_equal(loaded.predict(table.slice(0, 50)), model.predict(table.slice(0, 50)))


def test_default_cap_leaves_low_cardinality_columns_alone(tmp_path):
    table = _table(0)
    spec = infer_feature_spec(table, "y")
    assert spec.other == [] and spec.categorical["c"] == ["x", "y", "z"]
    assert "categorical_other" not in spec.to_dict()  # model.json unchanged for such models
    assert encode(pa.table({"a": [0.0], "b": [1], "c": ["w"], "y": [0]}), spec)[0, 2:].sum() == 0


def test_high_cardinality_column_costs_bounded_memory():
    # 100k distinct strings over 100k rows: uncapped that is a 100k x 100k float32 matrix
    # (37 GiB); capped at the default it is 100k x 102.
    table = _high_cardinality(100_000, 10**9, seed=5)
    spec = infer_feature_spec(table, "y")
    assert spec.n_features == 1 + 100 + 1
    assert encode(table, spec).nbytes == 100_000 * 102 * 4


def test_max_categories_out_of_range_is_refused():
    with pytest.raises(RefitError, match="max_categories"):
        infer_feature_spec(_table(0), "y", max_categories=0)
    with pytest.raises(RefitError, match="max_categories"):
        train(_table(0), "y", trainer="logistic_regression", max_categories=True)


def test_honest_profiles_of_extreme_data_pass_the_checks():
    # The checks must not refuse what refit itself writes: overflowing sums, subnormals,
    # infinities, constant columns, profiles merged from shards.
    rng = np.random.default_rng(16)
    for _ in range(25):
        n = int(rng.integers(1, 5000))
        table = pa.table(
            {
                "normal": rng.normal(size=n),
                "tails": rng.standard_cauchy(n) * 1e6,
                "edges": rng.choice([0.0, -0.0, 1e-310, 5e307, -5e307, np.nan, np.inf], n),
                "big": 1e16 + rng.integers(0, 3, n).astype(np.float64),
                "constant": np.full(n, 3.3),
                "ints": rng.integers(-5, 2**40, n),
                "labels": rng.choice(["a", "b", None], n),
            }
        )
        cut = int(rng.integers(0, n + 1))
        parts = [profile_table(table.slice(0, cut)), profile_table(table.slice(cut))]
        for profile in [*parts, parts[0].merge(parts[1]), profile_table(table)]:
            again = Profile.from_json(profile.to_json())
            assert again.rows == n or again.rows in (cut, n - cut)


def test_statistics_of_constant_and_narrow_columns_never_crash():
    # issue 17: one timestamp per week (a constant int64 of ~1.7e18 ns) crashed numpy's
    # histogram ("Too many bins for data range"); any magnitude, any width, any count
    from refit.validation.statistics import compute_statistics

    rng = np.random.default_rng(17)
    for _ in range(40):
        n = int(rng.integers(1, 6000))
        magnitude = 10.0 ** float(rng.uniform(-150, 150)) * rng.choice([-1.0, 1.0])
        ulps = rng.integers(0, 4, n).astype(np.float64)
        narrow = magnitude + ulps * np.spacing(magnitude)  # a few float steps wide
        stamp = int(rng.integers(0, 2**62))
        table = pa.table(
            {
                "constant": np.full(n, magnitude),
                "narrow": narrow,
                "stamp": pa.array(np.full(n, stamp), pa.int64()).cast(pa.timestamp("ns")),
                "week": pa.array(np.full(n, int(rng.integers(-(2**62), 2**62))), pa.int64()),
            }
        )
        for feature in compute_statistics(table).datasets[0].features:
            num = feature.num_stats
            counts = [b.sample_count for b in num.histograms[0].buckets]
            assert sum(counts) == n, feature.path.step[0]
            assert num.min <= num.median <= num.max
