"""`refit labels join` and `refit serve-model --prediction-log`: bad inputs end in clear errors."""

from __future__ import annotations

import json

import pytest
from _corpus import assert_clear_cli_error
from typer.testing import CliRunner

from refit.cli import app

GOOD = {"id": "a", "time": "2026-12-01T00:00:00Z", "prediction": 1, "proba": {"0": 0.3, "1": 0.7}}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "l.csv").write_text("id,label\na,1\n")
    return tmp_path


CASES = [
    ("missing log", ["--predictions", "{d}/none.jsonl"], ["none.jsonl", "does not exist"]),
    ("bad log line", ["--predictions", "{d}/bad.jsonl"], ["bad.jsonl:1", "prediction is missing"]),
    ("missing labels", ["--labels", "{d}/none.csv"], ["none.csv", "does not exist"]),
    ("labels no column", ["--labels", "{d}/nolabel.csv"], ["no column(s) label"]),
    ("bad window", ["--window", "fortnight"], ["window 'fortnight' is not a duration"]),
    ("bad metric", ["--metric", "f1"], ["metric must be one of accuracy, mae"]),
    ("bad coverage", ["--min-coverage", "1.5"], ["min_coverage must be in (0, 1]"]),
    ("store without model", ["--store", "{d}/store"], ["--store and --model"]),
]


@pytest.mark.parametrize(("args", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_join_inputs_are_clear_errors(files, args, names):
    (files / "bad.jsonl").write_text(json.dumps({"id": "a", "time": GOOD["time"]}) + "\n")
    (files / "nolabel.csv").write_text("id,truth\na,1\n")
    base = {"--predictions": f"{files}/p.jsonl", "--labels": f"{files}/l.csv"}
    given = dict(zip(args[::2], [a.format(d=files) for a in args[1::2]], strict=True))
    argv = ["labels", "join"] + [x for k, v in {**base, **given}.items() for x in (k, v)]
    result = CliRunner().invoke(app, argv)
    assert_clear_cli_error(result, *names)


def test_a_good_join_prints_the_window_table_and_writes_the_report(files):
    argv = ["labels", "join", "--predictions", f"{files}/p.jsonl", "--labels", f"{files}/l.csv"]
    result = CliRunner().invoke(app, [*argv, "--out", str(files / "out")])
    assert result.exit_code == 0, result.output
    assert "| 2026-12-01T00:00:00Z | 1 | 1 | 100.0% | complete | 1.000 |" in result.output
    data = json.loads((files / "out" / "labels-join.json").read_text())
    assert data["windows"][0]["realised"] == 1.0 and data["unlabelled_windows"] == []


def test_serve_model_refuses_a_prediction_log_that_is_a_file(files):
    (files / "store").mkdir()
    result = CliRunner().invoke(
        app,
        ["serve-model", "--store", str(files / "store"), "--model", "m"]
        + ["--prediction-log", str(files / "l.csv")],
    )
    assert_clear_cli_error(result, "--prediction-log", "is a file")
