"""Fuzz corpus: the ``refit`` command against bad arguments, URIs, files and configurations.

Each case must end with a non-zero exit and a message naming the input and what is wrong, with
no traceback (`assert_clear_cli_error`). Commands that would serve never get to listen.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from _corpus import assert_clear_cli_error
from typer.testing import CliRunner

from refit.cli import app
from refit.registry import ModelRegistry
from refit.training import save_model, train

HOOK = {"REFIT_HOOK_TOKEN": "fuzz-hook-secret-0123456789"}


@pytest.fixture(scope="module")
def files(windows, tmp_path_factory) -> Path:
    """A store with a champion, a CSV, and bad files of every kind."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    pacsv.write_csv(windows[0], root / "data.csv")
    model = train(windows[0], "default", trainer="logistic_regression", exclude=["event_time"])
    save_model(model, root / "m1")
    reg = ModelRegistry(str(root / "store"), "credit")
    reg.register(
        root / "m1", metrics={}, snapshot_sha256="0" * 64, parent_version=None, run_label="r"
    )
    reg.set_alias("champion", 1)
    (root / "bad.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "bad.yaml").write_text("a: [1, 2\n  b: {")
    (root / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    (root / "deep.yaml").write_text("[" * 100_000)
    (root / "deep.json").write_text("[" * 100_000)
    (root / "empty").write_text("")
    (root / "empty-token").write_text("\n")
    (root / "dir").mkdir()
    return root


# (id, arguments with {P} for the files folder, strings the error must name)
CASES = [
    # refit serve-model
    ("serve-model store gs://", "serve-model --store gs:// --model credit", ["gs://"]),
    ("serve-model store s3", "serve-model --store s3://x --model credit", ["s3://x", "scheme"]),
    (
        "serve-model store missing",
        "serve-model --store {P}/missing --model credit",
        ["missing", "not a folder"],
    ),  # fmt: skip
    (
        "serve-model store file:// missing",
        "serve-model --store file:///nonexistent/x --model c",
        ["file:///nonexistent/x", "folder"],
    ),  # fmt: skip
    (
        "serve-model store is a file",
        "serve-model --store {P}/data.csv --model credit",
        ["data.csv", "not a folder"],
    ),  # fmt: skip
    (
        "serve-model port 99999",
        "serve-model --store {P}/store --model credit --port 99999",
        ["--port", "65535"],
    ),  # fmt: skip
    (
        "serve-model port -1",
        "serve-model --store {P}/store --model credit --port -1",
        ["--port", "greater than"],
    ),  # fmt: skip
    ("serve-model fault", "serve-model --store {P}/store --model credit --fault x", ["--fault"]),
    (
        "serve-model max-body 0",
        "serve-model --store {P}/store --model c --max-body-bytes 0",
        ["--max-body-bytes"],
    ),  # fmt: skip
    (
        "serve-model name empty",
        ["serve-model", "--store", "{P}/store", "--model", ""],
        ["invalid"],
    ),  # fmt: skip
    (
        "serve-model max-elements",
        "serve-model --store {P}/store --model c --max-elements -5",
        ["--max-elements"],
    ),  # fmt: skip
    # refit serve-triggers (trigger service)
    ("serve-triggers config missing", "serve-triggers --config {P}/missing.json", ["missing.json"]),
    (
        "serve-triggers config bad json",
        "serve-triggers --config {P}/bad.json",
        ["bad.json", "not valid"],
    ),  # fmt: skip
    (
        "serve-triggers config bad yaml",
        "serve-triggers --config {P}/bad.yaml",
        ["bad.yaml", "not valid"],
    ),  # fmt: skip
    ("serve-triggers config binary", "serve-triggers --config {P}/bin.yaml", ["bin.yaml", "utf-8"]),
    (
        "serve-triggers config deep",
        "serve-triggers --config {P}/deep.json",
        ["deep.json", "recursion"],
    ),  # fmt: skip
    (
        "serve-triggers config list",
        "serve-triggers --config {P}/list.json",
        ["trigger config", "mapping"],
    ),  # fmt: skip
    ("serve-triggers config dir", "serve-triggers --config {P}/dir", ["dir", "directory"]),
    ("serve-triggers config empty", "serve-triggers --config {P}/empty", ["empty", "not valid"]),
    (
        "serve-triggers kfp token argument",
        "serve-triggers --config {P}/bad.json --kfp-token abc",
        ["--kfp-token", "KFP_TOKEN", "--kfp-token-file", "ps"],
    ),  # fmt: skip
    (
        "serve-triggers kfp token file missing",
        "serve-triggers --config {P}/bad.json --kfp-token-file {P}/missing",
        ["--kfp-token-file", "missing"],
    ),  # fmt: skip
    (
        "serve-triggers kfp token file dir",
        "serve-triggers --config {P}/bad.json --kfp-token-file {P}/dir",
        ["--kfp-token-file", "dir"],
    ),  # fmt: skip
    (
        "serve-triggers kfp token file empty",
        "serve-triggers --config {P}/bad.json --kfp-token-file {P}/empty-token",
        ["empty-token", "empty"],
    ),  # fmt: skip
    (
        "serve-triggers port 0",
        "serve-triggers --config {P}/bad.json --port 0",
        ["--port", "greater than"],
    ),  # fmt: skip
    # refit schedule
    ("schedule cron words", "schedule create x --cron 'bad cron' --dry-run", ["bad cron"]),
    (
        "schedule cron minute 99",
        "schedule create x --cron '99 * * * *' --dry-run",
        ["99", "out of range"],
    ),  # fmt: skip
    ("schedule cron 7 fields", "schedule create x --cron '* * * * * * *' --dry-run", ["7"]),
    ("schedule interval", "schedule create x --interval 5q --dry-run", ["5q"]),
    ("schedule neither", "schedule create x --dry-run", ["cron", "interval"]),
    (
        "schedule params list",
        "schedule create x --cron @daily --params '[1]' --dry-run",
        ["--params", "object"],
    ),  # fmt: skip
    (
        "schedule params bad",
        "schedule create x --cron @daily --params '{bad' --dry-run",
        ["--params", "not JSON"],
    ),  # fmt: skip
    (
        "schedule pipeline dir",
        "schedule create x --cron @daily --pipeline {P}/dir --dry-run",
        ["dir", "unknown pipeline"],
    ),  # fmt: skip
    (
        "schedule concurrency 99",
        "schedule create x --cron @daily --max-concurrency 99 --dry-run",
        ["max_concurrency", "99"],
    ),  # fmt: skip
    ("schedule host not a URL", "schedule list --host notaurl", ["notaurl", "http://"]),
    ("schedule host ftp", "schedule list --host ftp://x", ["ftp://x", "http://"]),
    ("schedule token argument", "schedule list --token abc", ["--token", "KFP_TOKEN"]),
    (
        "schedule token file empty",
        "schedule pause x --host http://h --token-file {P}/empty-token",
        ["--token-file", "empty"],
    ),  # fmt: skip
    # refit rollout
    ("rollout version 0", "rollout 0 --store {P}/store --model credit", ["positive integer"]),
    ("rollout version 99", "rollout 99 --store {P}/store --model credit", ["no version 99"]),
    ("rollout store gs://", "rollout 1 --store gs:// --model credit", ["gs:"]),
    ("rollout store s3", "rollout 1 --store s3://x --model credit", ["s3://x"]),
    (
        "rollout plan bad yaml",
        "rollout 1 --store {P}/store --model credit --plan {P}/bad.yaml",
        ["bad.yaml", "parse"],
    ),  # fmt: skip
    (
        "rollout plan binary",
        "rollout 1 --store {P}/store --model credit --plan {P}/bin.yaml",
        ["bin.yaml", "cannot be read"],
    ),  # fmt: skip
    (
        "rollout plan deep",
        "rollout 1 --store {P}/store --model credit --plan {P}/deep.json",
        ["deep.json", "nested too deeply"],
    ),  # fmt: skip
    (
        "rollout plan list",
        "rollout 1 --store {P}/store --model credit --plan {P}/list.json",
        ["list.json", "mapping"],
    ),  # fmt: skip
    (
        "rollout plan missing",
        "rollout 1 --store {P}/store --model credit --plan {P}/no.yaml",
        ["no.yaml", "no such file"],
    ),  # fmt: skip
    (
        "rollout options",
        "rollout 1 --store {P}/store --model credit --options '{bad'",
        ["options", "JSON"],
    ),  # fmt: skip
    (
        "rollout target",
        "rollout 1 --store {P}/store --model credit --deploy-target nope",
        ["'nope'"],
    ),  # fmt: skip
    (
        "rollout prometheus",
        "rollout 1 --store {P}/store --model credit --prometheus-url x",
        ["prometheus_url", "'x'"],
    ),  # fmt: skip
    # refit report
    ("report store gs://", "report --store gs:// --model credit", ["gs:"]),
    ("report store s3", "report --store s3://x --model credit", ["s3://x"]),
    ("report model missing", "report --store {P}/store --model nope", ["'nope'"]),
    ("compile node profile", "compile --output {P}/o.yaml --node-profile nope", ["nope"]),
    # refit backfill
    (
        "backfill data missing",
        "backfill --data {P}/no.csv --time-column t --every 1d",
        ["no.csv"],
    ),  # fmt: skip
    ("backfill data gs://", "backfill --data gs:// --time-column t --every 1d", ["gs://"]),
    (
        "backfill every",
        "backfill --data {P}/data.csv --time-column event_time --every 5q",
        ["5q"],
    ),  # fmt: skip
    (
        "backfill from",
        "backfill --data {P}/data.csv --time-column event_time --every 1d --from notadate",
        ["--from", "notadate"],
    ),  # fmt: skip
    (
        "backfill policy",
        "backfill --data {P}/data.csv --time-column event_time --every 1d --policy '{bad'",
        ["--policy"],
    ),  # fmt: skip
    (
        "backfill store missing",
        "backfill --data {P}/data.csv --time-column event_time "
        "--every 1d --store {P}/missing --model credit --label-column default",
        ["missing", "no champion"],
    ),  # fmt: skip
    (
        "backfill json dir",
        "backfill --data {P}/data.csv --time-column event_time --every 1d --json {P}/dir",
        ["dir", "is a directory"],
    ),  # fmt: skip
    (
        "backfill no split",
        "backfill --data {P}/data.csv --label-column default",
        ["--every", "--window-column"],
    ),  # fmt: skip
    (
        "backfill window column float",
        "backfill --data {P}/data.csv --window-column income",
        ["income", "integers, text"],
    ),  # fmt: skip
    (
        "backfill exclude unknown",
        "backfill --data {P}/data.csv --time-column event_time --every 1d --exclude nope",
        ["--exclude", "nope"],
    ),  # fmt: skip
    (
        "backfill gate",
        "backfill --data {P}/data.csv --time-column event_time --every 1d --gate '[1]'",
        ["--gate", "JSON object"],
    ),  # fmt: skip
    (
        "drift reference bad json",
        "drift --reference {P}/bad.json --current {P}/data.csv -o {P}/o",
        ["bad.json", "not valid JSON"],
    ),  # fmt: skip
    (
        "validate range tolerance",
        "validate {P}/data.csv -o {P}/o --range-tolerance -1",
        ["--range-tolerance", "greater than or equal to 0"],
    ),  # fmt: skip
    # refit profile / demo
    ("profile s3", "profile s3://x -o {P}/p.json", ["s3://x"]),
    ("profile output dir", "profile {P}/data.csv -o {P}/dir", ["dir", "directory"]),
    ("demo runner", "demo --runner nope", ["--runner", "nope"]),
    ("demo output file", "demo --output {P}/data.csv --windows 8", ["data.csv", "not a directory"]),
]


@pytest.mark.parametrize(("args", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_a_clear_error(files, args, names, monkeypatch):
    import shlex

    def serve(*args, **kwargs):  # a command that got this far accepted its bad input
        raise AssertionError("the command started serving instead of refusing its input")

    monkeypatch.setattr("uvicorn.run", serve)

    argv = [
        a.replace("{P}", str(files)) for a in (shlex.split(args) if isinstance(args, str) else args)
    ]
    result = CliRunner(env={**HOOK, "KFP_TOKEN": ""}).invoke(app, argv)
    assert_clear_cli_error(result, *[n.replace("{P}", str(files)) for n in names])
