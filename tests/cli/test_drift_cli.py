"""`refit profile` and `refit drift` through typer's CliRunner, bad input included."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from refit.cli import app

RNG = np.random.default_rng(21)
N = 3000


def _write(path, table):
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def data(tmp_path):
    reference = pa.table(
        {
            "income": RNG.lognormal(3.9, 0.35, N),
            "age": RNG.normal(41, 11, N),
            "channel": RNG.choice(["web", "branch", "partner"], N, p=[0.5, 0.3, 0.2]),
        }
    )
    current = pa.table(
        {
            "income": RNG.lognormal(4.2, 0.35, N),
            "age": RNG.permutation(reference["age"].to_numpy()) + RNG.normal(0, 0.01, N),
            "channel": RNG.choice(["web", "branch", "partner"], N, p=[0.3, 0.3, 0.4]),
        }
    )
    return {
        "dir": tmp_path,
        "ref": _write(tmp_path / "ref.parquet", reference),
        "cur": _write(tmp_path / "cur.parquet", current),
        "reference": reference,
        "current": current,
    }


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def _drift(tmp, reference, current):
    out = tmp / "out"
    result = _run("drift", "--reference", reference, "--current", current, "--output", out)
    return result, out


def test_profile_then_drift_from_the_profile_matches_drift_from_raw(data):
    tmp = data["dir"]
    profile = tmp / "ref.json"
    result = _run("profile", data["ref"], "--output", profile)
    assert result.exit_code == 0, result.output
    assert f"profiled {N} rows x 3 columns" in result.output
    res_p, out_p = _drift(tmp, profile, data["cur"])
    assert res_p.exit_code == 0, res_p.output
    from_profile = json.loads((out_p / "drift.json").read_text())
    assert from_profile["drifted"] is True
    assert from_profile["drift_share"] == pytest.approx(2 / 3)
    assert {n for n, f in from_profile["features"].items() if f["drifted"]} == {
        "income",
        "channel",
    }
    for feature in from_profile["features"].values():
        assert {"test", "statistic", "p_value", "threshold", "drifted"} <= set(feature)
    html = (out_p / "report.html").read_text()
    assert all(name in html for name in ("income", "age", "channel"))
    (out_p / "drift.json").rename(tmp / "from_profile.json")
    res_r, out_r = _drift(tmp, data["ref"], data["cur"])
    assert res_r.exit_code == 0
    assert json.loads((out_r / "drift.json").read_text()) == from_profile


def test_mismatched_columns_are_not_comparable(data):
    tmp = data["dir"]
    current = data["current"].drop_columns(["age"]).append_column("extra", pa.array([1.0] * N))
    res, out = _drift(tmp, data["ref"], _write(tmp / "c.parquet", current))
    assert res.exit_code == 0, res.output
    features = json.loads((out / "drift.json").read_text())["features"]
    assert features["age"]["comparable"] is False
    assert features["age"]["reason"] == "column is missing from the current data"
    assert features["extra"]["reason"] == "column is missing from the reference data"
    assert "not comparable: age: column is missing from the current data" in res.output


def test_changed_type_and_all_null_columns_are_not_comparable(data):
    tmp = data["dir"]
    current = data["current"].set_column(
        1, "age", pa.array([str(v) for v in data["current"]["age"].to_pylist()])
    )
    current = current.set_column(0, "income", pa.nulls(N, pa.float64()))
    res, out = _drift(tmp, data["ref"], _write(tmp / "c.parquet", current))
    assert res.exit_code == 0, res.output
    result = json.loads((out / "drift.json").read_text())
    assert "type changed: numeric (double)" in result["features"]["age"]["reason"]
    income = result["features"]["income"]
    assert income["comparable"] is False and income["statistic"] is None
    assert income["checks"]["missing"]["alert"] is True
    assert result["n_features"] == 1  # only channel could be compared


def test_single_row_and_infinities(data):
    tmp = data["dir"]
    res, out = _drift(tmp, data["ref"], _write(tmp / "one.parquet", data["current"].slice(0, 1)))
    assert res.exit_code == 0, res.output
    one = json.loads((out / "drift.json").read_text())
    assert one["features"]["age"]["n_current"] == 1
    ages = data["current"]["age"].to_numpy().copy()
    ages[:600] = np.inf
    current = data["current"].set_column(1, "age", pa.array(ages))
    res, out = _drift(tmp, data["ref"], _write(tmp / "inf.parquet", current))
    assert res.exit_code == 0, res.output
    age = json.loads((out / "drift.json").read_text())["features"]["age"]
    assert age["checks"]["infinite"]["alert"] is True and age["n_current"] == N - 600
    assert "check alert: age: infinite" in res.output


def test_old_profile_version_and_unreadable_input_are_clear_errors(data):
    tmp = data["dir"]
    profile = tmp / "ref.json"
    _run("profile", data["ref"], "--output", profile)
    stored = json.loads(profile.read_text())
    stored["version"] = 0
    profile.write_text(json.dumps(stored))
    res, _ = _drift(tmp, profile, data["cur"])
    assert res.exit_code == 2
    assert "error: profile" in res.output and "format version 0" in res.output
    res, _ = _drift(tmp, data["ref"], tmp / "absent.parquet")
    assert res.exit_code == 2 and "cannot read data at" in res.output
    nothing = _write(tmp / "other.parquet", pa.table({"zzz": [1.0, 2.0]}))
    res, _ = _drift(tmp, data["ref"], nothing)
    assert res.exit_code == 2 and "no columns could be compared" in res.output
    res = _run(
        "drift",
        "--reference",
        data["ref"],
        "--current",
        data["cur"],
        "--output",
        tmp / "o",
        "--test",
        "age=linf",
    )
    assert res.exit_code == 2 and "'age'" in res.output


def test_a_stored_profile_is_known_by_its_content_not_its_name(data):
    # issue 17: a profile saved as "ref.profile" (or with no suffix) was read as data
    from refit.drift.profile_io import is_profile_file

    tmp = data["dir"]
    profile = tmp / "reference-profile"
    assert _run("profile", data["ref"], "--output", profile).exit_code == 0
    assert is_profile_file(str(profile))
    assert not is_profile_file(data["ref"]) and not is_profile_file(str(tmp))
    assert not is_profile_file(str(tmp / "absent"))
    result, out = _drift(tmp, profile, data["cur"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "drift.json").read_text())["drift_share"] == pytest.approx(2 / 3)
    # a .json that is not a profile is refused as such, not read as a table
    other = tmp / "settings.json"
    other.write_text('{"threshold": 0.3}')
    result, _ = _drift(tmp, other, data["cur"])
    assert result.exit_code == 2
    assert "is not a refit drift profile" in result.stderr


def test_the_drift_reports_verdict_uses_the_policys_threshold(data):
    # issue 17: the report said "no dataset drift (threshold 0.50)" on the window a 0.30
    # policy retrained; one of three features drifting (share 0.33) tells them apart
    from refit.steps.drift import detect_drift

    tmp = data["dir"]
    ref, cur = data["reference"], data["current"]
    one_drifted = cur.set_column(2, "channel", ref.column("channel"))
    one_drifted = one_drifted.set_column(0, "income", ref.column("income"))
    cur_path = _write(tmp / "one.parquet", one_drifted.set_column(1, "age", pa.array(
        ref.column("age").to_numpy() + 25.0)))  # fmt: skip
    default = detect_drift(cur_path, "label", reference_path=data["ref"])
    assert default.drift_share == pytest.approx(1 / 3)
    assert "(dataset threshold 0.30): dataset drift detected" in default.html
    assert default.result["drift_share_threshold"] == 0.3
    strict = detect_drift(
        cur_path, "label", reference_path=data["ref"], policy={"drift_share_threshold": 0.5}
    )
    assert "(dataset threshold 0.50): no dataset drift" in strict.html
    off = detect_drift(
        cur_path, "label", reference_path=data["ref"], policy={"drift_share_threshold": None}
    )
    assert off.result["drift_share_threshold"] == 0.3  # no drift trigger: the default's
    # refit drift without --drift-share-threshold judges as the default policy does
    result, out = _drift(tmp, data["ref"], cur_path)
    assert result.exit_code == 0 and "dataset drift" in result.stdout
    assert "(dataset threshold 0.30)" in (out / "report.html").read_text()


def test_exclude_leaves_a_column_out_of_the_drift_check(data):
    tmp = data["dir"]
    out = tmp / "ex"
    result = _run("drift", "--reference", data["ref"], "--current", data["cur"], "--output", out,
                  "--exclude", "income")  # fmt: skip
    assert result.exit_code == 0, result.output
    features = json.loads((out / "drift.json").read_text())["features"]
    assert set(features) == {"age", "channel"}
    result = _run("drift", "--reference", data["ref"], "--current", data["cur"], "--output", out,
                  "--exclude", "nope")  # fmt: skip
    assert (
        result.exit_code == 2 and "--exclude names column(s) in neither side: nope" in result.stderr
    )
