"""`refit validate` with the native engine, engine selection, and bad schema/statistics files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from typer.testing import CliRunner

from refit.cli import app
from refit.demo.data import DemoScenario, make_windows
from refit.errors import DataError, SchemaError
from refit.tfdv.client import TfdvUnavailableError, run_tfdv
from refit.validation.engines import (
    anomaly_kinds,
    drift_measurements,
    ignored_schema_fields,
    read_schema,
    read_statistics,
    resolve_engine,
    run_validation,
)


@pytest.fixture(scope="module")
def vc_windows() -> list[pa.Table]:
    return make_windows(DemoScenario(windows=5, rows=1500))


@pytest.fixture()
def files(tmp_path: Path, vc_windows: list[pa.Table]) -> dict[str, Path]:
    out = {}
    for i in (0, 1, 3, 4):
        out[f"w{i}"] = tmp_path / f"w{i}.parquet"
        pq.write_table(vc_windows[i], out[f"w{i}"])
    return out


def _run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _read_outputs(
    folder: Path,
) -> tuple[statistics_pb2.DatasetFeatureStatisticsList, schema_pb2.Schema, anomalies_pb2.Anomalies]:
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (folder / "statistics.pb").read_bytes()
    )
    schema = text_format.Parse((folder / "schema.pbtxt").read_text(), schema_pb2.Schema())
    anomalies = text_format.Parse(
        (folder / "anomalies.pbtxt").read_text(), anomalies_pb2.Anomalies()
    )
    return stats, schema, anomalies


def test_validate_writes_tfdv_files_and_records_engine(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    code, out, err = _run(
        "validate",
        files["w4"],
        "--reference",
        files["w0"],
        "--engine",
        "auto",
        "-o",
        tmp_path / "o",
    )
    assert code == 0, err
    stats, schema, anomalies = _read_outputs(tmp_path / "o")
    assert stats.datasets[0].num_examples == 1500
    assert [f.name for f in schema.feature][:3] == ["event_time", "income", "age"]
    kinds = anomaly_kinds(anomalies)
    assert ("credit_score", "SCHEMA_MISSING_COLUMN") in kinds
    assert ("creditScore", "SCHEMA_NEW_COLUMN") in kinds
    metadata = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert metadata == {"engine": "native", "engine_requested": "auto", "ignored_schema_fields": []}
    assert out.startswith("native engine: ") and "credit_score SCHEMA_MISSING_COLUMN" in out


def test_validate_clean_window_against_its_inferred_schema(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    code, _, err = _run("validate", files["w0"], "-o", tmp_path / "a")
    assert code == 0, err
    code, out, err = _run(
        "validate", files["w1"], "--schema", tmp_path / "a" / "schema.pbtxt", "-o", tmp_path / "b"
    )
    assert code == 0, err
    assert "0 anomalies" in out
    assert _read_outputs(tmp_path / "b")[2].anomaly_info == {}


def test_drift_comparators_in_schema_run_natively(tmp_path: Path, files: dict[str, Path]) -> None:
    _run("validate", files["w0"], "-o", tmp_path / "a")
    schema = read_schema(str(tmp_path / "a" / "schema.pbtxt"))
    for feature in schema.feature:
        if feature.name == "channel":
            feature.drift_comparator.infinity_norm.threshold = 0.1
        if feature.name == "region":
            feature.drift_comparator.infinity_norm.threshold = 0.1
        if feature.name == "credit_score":
            feature.drift_comparator.jensen_shannon_divergence.threshold = 0.02
    path = tmp_path / "drift.pbtxt"
    path.write_text(text_format.MessageToString(schema))
    code, _, err = _run(
        "validate", files["w3"], "--reference", files["w0"], "--schema", path, "-o", tmp_path / "o"
    )
    assert code == 0, err
    anomalies = _read_outputs(tmp_path / "o")[2]
    measured = drift_measurements(anomalies)
    # window 3 moves the channel mix from (0.5, 0.35, 0.15) to (0.35, 0.25, 0.40): L-inf ~0.25
    assert measured["channel"][0] == "L_INFTY" and measured["channel"][1] == pytest.approx(
        0.25, abs=0.05
    )
    assert measured["region"][1] < 0.1
    assert measured["credit_score"][0] == "JENSEN_SHANNON_DIVERGENCE"
    kinds = anomaly_kinds(anomalies)
    assert ("channel", "COMPARATOR_L_INFTY_HIGH") in kinds
    assert ("region", "COMPARATOR_L_INFTY_HIGH") not in kinds
    assert ("credit_score", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH") in kinds


def test_unhonoured_schema_fields_are_reported(tmp_path: Path, files: dict[str, Path]) -> None:
    _run("validate", files["w0"], "-o", tmp_path / "a")
    schema = read_schema(str(tmp_path / "a" / "schema.pbtxt"))
    schema.feature[1].skew_comparator.infinity_norm.threshold = 0.1
    schema.feature[2].distribution_constraints.min_domain_mass = 0.9
    schema.feature[2].int_domain.is_categorical = True
    schema.default_environment.append("SERVING")
    assert ignored_schema_fields(schema) == [
        "default_environment",
        "feature 'income'.skew_comparator",
        "feature 'age'.int_domain.is_categorical",
        "feature 'age'.distribution_constraints",
    ]
    path = tmp_path / "s.pbtxt"
    path.write_text(text_format.MessageToString(schema))
    code, _, err = _run("validate", files["w1"], "--schema", path, "-o", tmp_path / "o")
    assert code == 0
    assert "ignored schema field (native engine): feature 'income'.skew_comparator" in err
    metadata = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert "default_environment" in metadata["ignored_schema_fields"]


def test_schema_from_newer_tfdv_is_refused_by_name(tmp_path: Path, files: dict[str, Path]) -> None:
    path = tmp_path / "newer.pbtxt"
    path.write_text('feature {\n  name: "age"\n  type: INT\n  shiny_new_constraint { x: 1 }\n}\n')
    with pytest.raises(SchemaError, match=r"shiny_new_constraint.*newer TFDV"):
        read_schema(str(path))
    code, _, err = _run("validate", files["w0"], "--schema", path, "-o", tmp_path / "o")
    assert code == 2 and "newer TFDV" in err and "newer.pbtxt" in err


def test_binary_file_as_schema_is_refused(tmp_path: Path, files: dict[str, Path]) -> None:
    _run("validate", files["w0"], "-o", tmp_path / "a")
    with pytest.raises(SchemaError, match="binary, not a text Schema"):
        read_schema(str(tmp_path / "a" / "statistics.pb"))


def test_statistics_of_the_wrong_proto_type_are_refused(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    _run("validate", files["w4"], "--reference", files["w0"], "-o", tmp_path / "a")
    stats = read_statistics(str(tmp_path / "a" / "statistics.pb"))
    assert stats.datasets[0].num_examples == 1500
    schema = read_schema(str(tmp_path / "a" / "schema.pbtxt"))
    binary_schema = tmp_path / "schema.pb"
    binary_schema.write_bytes(schema.SerializeToString())
    with pytest.raises(
        DataError, match="not a binary DatasetFeatureStatisticsList.*Schema or Anomalies"
    ):
        read_statistics(str(binary_schema))
    with pytest.raises(DataError, match="looks like a text proto"):
        read_statistics(str(tmp_path / "a" / "schema.pbtxt"))
    with pytest.raises(DataError, match="not a binary DatasetFeatureStatisticsList"):
        read_statistics(str(tmp_path / "a" / "anomalies.pbtxt"))
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="holds no dataset"):
        read_statistics(str(empty))


def test_engine_names_and_missing_tfdv_environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: dict[str, Path],
    vc_windows: list[pa.Table],
) -> None:
    assert resolve_engine("auto") == "native" and resolve_engine("tfdv") == "tfdv"
    with pytest.raises(SchemaError, match="unknown validation engine 'spark'"):
        resolve_engine("spark")
    monkeypatch.delenv("REFIT_TFDV_PYTHON", raising=False)
    with pytest.raises(
        TfdvUnavailableError, match=r"REFIT_TFDV_PYTHON is not set.*scripts/tfdv-env.sh"
    ):
        run_validation(vc_windows[0], engine="tfdv")
    code, _, err = _run("validate", files["w0"], "--engine", "tfdv", "-o", tmp_path / "o")
    assert code == 2 and "scripts/tfdv-env.sh" in err
    monkeypatch.setenv("REFIT_TFDV_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(TfdvUnavailableError, match="is not an executable file"):
        run_tfdv(vc_windows[0])


def test_tfdv_interpreter_that_fails_is_reported(
    tmp_path: Path, vc_windows: list[pa.Table]
) -> None:
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\necho 'ModuleNotFoundError: tensorflow_data_validation' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(
        TfdvUnavailableError, match=r"(?s)failed \(exit 1\).*tensorflow_data_validation"
    ):
        run_tfdv(vc_windows[0], python=str(fake))


def test_tfdv_worker_imports_only_stdlib_pyarrow_and_tfdv() -> None:
    import ast
    import sys

    from refit.tfdv.client import WORKER_SCRIPT

    tree = ast.parse(WORKER_SCRIPT.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    allowed = {"tensorflow_data_validation", "tensorflow_metadata", "apache_beam", "pyarrow"}
    allowed |= {"numpy", "pandas", "__future__"}
    assert roots - allowed <= set(sys.stdlib_module_names)
    assert "refit" not in roots and {"tensorflow_data_validation", "pyarrow"} <= roots


def test_validate_a_constant_timestamp_column_and_agree_with_the_pipeline(tmp_path: Path) -> None:
    # issue 17: each week stamped with one timestamp crashed `refit validate` ("Too many bins"),
    # and the CLI (range tolerance 0) and the pipeline (1.0) disagreed on the same window
    import numpy as np

    from refit.steps.data import validate_data

    def week(k: int, shift: float) -> Path:
        rng = np.random.default_rng(k)
        stamp = datetime(2024, 1, 1, tzinfo=UTC) + k * timedelta(weeks=1)
        path = tmp_path / f"week{k}.parquet"
        table = pa.table(
            {
                "ts": pa.array([stamp] * 400, pa.timestamp("ns", tz="UTC")),
                "week": pa.array([k] * 400, pa.int64()),
                "x": rng.uniform(0, 10, 400) + shift,
                "label": rng.integers(0, 2, 400),
            }
        )
        pq.write_table(table, path)
        pq.write_table(table.drop_columns(["week"]), tmp_path / f"bare{k}.parquet")
        return path

    ref, cur = week(0, 0.0), week(1, 1.0)  # x reaches 11: past [0, 10], inside tolerance 1.0
    code, out, err = _run(
        "validate", cur, "--reference", ref, "--exclude", "week", "-o", tmp_path / "o"
    )
    assert code == 0, err
    assert out.startswith("native engine: 0 anomalies")
    # the pipeline's step on the same window (its data without the excluded column) agrees
    bare = {k: str(tmp_path / f"bare{k}.parquet") for k in (0, 1)}
    step = validate_data(bare[1], "label", reference_path=bare[0])
    assert step.passed, step.anomalies
    # "week" moves out of range every window unless excluded; a strict tolerance flags x too
    code, out, err = _run(
        "validate", cur, "--reference", ref, "--range-tolerance", "0", "-o", tmp_path / "p"
    )
    assert code == 0, err
    assert "week INT_TYPE_BIG_INT" in out and "x FLOAT_TYPE_BIG_FLOAT" in out
    code, _, err = _run("validate", cur, "--exclude", "nope", "-o", tmp_path / "q")
    assert code == 2 and "--exclude names column(s) not in DATA: nope" in err
