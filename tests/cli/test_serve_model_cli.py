"""``refit serve-model`` refuses bad options before it listens."""

from __future__ import annotations

from typer.testing import CliRunner

from refit.cli import app

NAME = "credit"


def test_serve_model_command_refuses_bad_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["serve-model", "--store", str(tmp_path), "--model", NAME, "--fault", "2:oops=1"]
    )
    assert result.exit_code == 2
    assert "unknown setting 'oops'" in result.output
    result = runner.invoke(app, ["serve-model", "--store", str(tmp_path), "--model", "bad name!"])
    assert result.exit_code == 2
    assert "bad name!" in result.output
    assert "--fault" in runner.invoke(app, ["serve-model", "--help"]).output
