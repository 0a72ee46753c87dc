"""``refit serve-triggers`` (and its deprecated spelling ``refit serve``) before it listens."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from refit.cli import app

SECRET = "0123456789abcdef-secret"
#: The retraining pipeline's required inputs (model_name and run_label are the service's).
PARAMS = {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"}
DEPRECATION = "`refit serve` is deprecated: use `refit serve-triggers`"


@pytest.mark.parametrize("command", ["serve-triggers", "serve"])
def test_serve_refuses_to_start_without_a_secret(command, tmp_path, monkeypatch):
    monkeypatch.delenv("REFIT_HOOK_TOKEN", raising=False)
    monkeypatch.delenv("REFIT_HOOK_TOKEN_FILE", raising=False)
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"models": {"m": {"params": PARAMS}}}))
    result = CliRunner().invoke(app, [command, "--config", str(config)])
    assert result.exit_code == 2
    assert "set REFIT_HOOK_TOKEN, or REFIT_HOOK_TOKEN_FILE" in result.stderr
    monkeypatch.setenv("REFIT_HOOK_TOKEN", SECRET)
    result = CliRunner().invoke(app, [command, "--config", str(config), "--launcher", "nope"])
    assert result.exit_code == 2
    assert "unknown launcher 'nope'; known: kfp, local, log" in result.stderr


@pytest.mark.parametrize("command", ["serve-triggers", "serve"])
def test_only_the_old_spelling_says_it_is_deprecated(command, tmp_path, monkeypatch):
    monkeypatch.setenv("REFIT_HOOK_TOKEN", SECRET)
    result = CliRunner().invoke(app, [command, "--config", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    # the same error either way; the old spelling adds exactly one line before it
    assert lines[-1].startswith("error: ") and "missing.json" in lines[-1]
    assert lines[:-1] == ([DEPRECATION] if command == "serve" else [])
    assert result.stdout == ""
