"""Old spellings of renamed commands and options work for one release, saying so on stderr.

`refit serve` -> `refit serve-triggers` is held by test_serve_triggers_cli.py; here the options:
``refit train --model`` (the trainer) -> ``--trainer``, ``refit serve-model --host`` and
``refit report serve-metrics --addr`` (the address to listen on) -> ``--listen-host``; the
model's name ``refit serve-model --name``, ``refit labels join --name`` and ``refit backfill
--model-name`` -> ``--model``, as every other command spells it.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from refit.cli import app


def _invoke(argv: list[str]):
    return CliRunner().invoke(app, argv)


def _same_but_deprecated(old: list[str], new: list[str], deprecation: str):
    """Run both spellings: the old one prints the deprecation line first; nothing else differs."""
    then, now = _invoke(old), _invoke(new)
    assert then.exit_code == now.exit_code
    assert then.stdout == now.stdout
    assert then.stderr == f"{deprecation}\n{now.stderr}"
    assert deprecation not in now.stderr
    return now


@pytest.mark.parametrize(
    ("old", "new", "deprecation"),
    [
        (
            ["serve-model", "--store", "{P}", "--model", "m", "--host", "::1", "--fault", "2:x=1"],
            ["serve-model", "--store", "{P}", "--model", "m", "--listen-host", "::1", "--fault",
             "2:x=1"],
            "`refit serve-model --host` is deprecated: use `--listen-host`",
        ),
        (
            ["report", "serve-metrics", "--store", "{P}/none", "--model", "m", "--addr", "::1"],
            ["report", "serve-metrics", "--store", "{P}/none", "--model", "m", "--listen-host",
             "::1"],
            "`refit report serve-metrics --addr` is deprecated: use `--listen-host`",
        ),
    ],
    ids=["serve-model --host", "report serve-metrics --addr"],
)  # fmt: skip
def test_old_listen_address_spellings_still_work(old, new, deprecation, tmp_path):
    result = _same_but_deprecated(
        [a.replace("{P}", str(tmp_path)) for a in old],
        [a.replace("{P}", str(tmp_path)) for a in new],
        deprecation,
    )
    assert result.exit_code == 2  # refused before listening: the same refusal either way


def test_train_model_is_the_old_spelling_of_trainer(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=80)
    data = tmp_path / "d.csv"
    pacsv.write_csv(pa.table({"x": x, "y": (x > 0).astype(int)}), data)
    common = ["train", "--data", str(data), "--label-column", "y", "--quiet"]
    new = _invoke([*common, "--trainer", "logistic_regression", "--output", str(tmp_path / "a")])
    old = _invoke([*common, "--model", "logistic_regression", "--output", str(tmp_path / "b")])
    assert new.exit_code == old.exit_code == 0, new.output + old.output
    assert old.stderr == "`refit train --model` is deprecated: use `--trainer`\n"
    assert "deprecated" not in new.stderr
    summaries = [json.loads(r.stdout) for r in (new, old)]
    for summary in summaries:
        del summary["output"], summary["wall_time_s"]
    assert summaries[0] == summaries[1]
    assert summaries[0]["trainer"] == "logistic_regression"


@pytest.mark.parametrize(
    ("old", "new", "deprecation"),
    [
        (
            ["serve-model", "--store", "{P}", "--name", "m", "--fault", "2:x=1"],
            ["serve-model", "--store", "{P}", "--model", "m", "--fault", "2:x=1"],
            "`refit serve-model --name` is deprecated: use `--model`",
        ),
        (
            ["labels", "join", "--predictions", "{P}/none", "--labels", "{P}/l.csv", "--store",
             "{P}", "--name", "m"],
            ["labels", "join", "--predictions", "{P}/none", "--labels", "{P}/l.csv", "--store",
             "{P}", "--model", "m"],
            "`refit labels join --name` is deprecated: use `--model`",
        ),
        (
            ["backfill", "--data", "{P}/none.csv", "--time-column", "t", "--every", "7d",
             "--store", "{P}", "--model-name", "m"],
            ["backfill", "--data", "{P}/none.csv", "--time-column", "t", "--every", "7d",
             "--store", "{P}", "--model", "m"],
            "`refit backfill --model-name` is deprecated: use `--model`",
        ),
    ],
    ids=["serve-model --name", "labels join --name", "backfill --model-name"],
)  # fmt: skip
def test_old_model_name_spellings_still_work(old, new, deprecation, tmp_path):
    result = _same_but_deprecated(
        [a.replace("{P}", str(tmp_path)) for a in old],
        [a.replace("{P}", str(tmp_path)) for a in new],
        deprecation,
    )
    assert result.exit_code == 2  # refused on its missing input: the same refusal either way


def test_serve_model_without_a_model_names_the_option(tmp_path):
    result = _invoke(["serve-model", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "--model is required" in result.stderr
