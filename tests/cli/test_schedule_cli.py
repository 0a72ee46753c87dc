"""`refit schedule create --dry-run`: the exact request body, no server touched."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from refit.cli import app
from refit.schedule.cron import ScheduleError, parse_cron
from refit.schedule.kfp import RecurringRunSpec, recurring_run_body

# A port nothing listens on: a dry run that tried to connect would fail.
NOWHERE = "http://127.0.0.1:9"


def test_dry_run_prints_the_body_with_safe_defaults():
    params = {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"}
    result = CliRunner().invoke(
        app,
        ["schedule", "create", "nightly", "--cron", "0 2 * * *", "--params", json.dumps(params),
         "--dry-run", "--host", NOWHERE],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == "nightly"
    assert body["runtime_config"] == {"parameters": params}
    assert set(body["pipeline_version_reference"]) == {"pipeline_id", "pipeline_version_id"}


def test_dry_run_interval_catchup_paused():
    result = CliRunner().invoke(
        app,
        ["schedule", "create", "x", "--interval", "1d", "--catchup", "--paused",
         "--max-concurrency", "3", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["trigger"] == {"periodic_schedule": {"interval_second": 86400}}
    assert (body["no_catchup"], body["mode"], body["max_concurrency"]) == (False, "DISABLE", 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 2 * *"], "has 4 field(s)"),
        (["--cron", "30 0 2 * * *"], "seconds field is '30'"),
        ([], "give exactly one of a cron expression or an interval"),
        (["--cron", "@daily", "--interval", "1h"], "give exactly one"),
        (["--cron", "@daily", "--pipeline", "nope"], "unknown pipeline 'nope'"),
        (["--cron", "@daily", "--max-concurrency", "11"], "max_concurrency must be in 1-10"),
        (["--cron", "@daily", "--params", "[1]"], "--params must be a JSON object"),
    ],
)
def test_bad_input_is_refused(args, message):
    result = CliRunner().invoke(app, ["schedule", "create", "x", *args, "--dry-run"])
    assert result.exit_code == 2
    assert message in result.output


def test_spec_validation():
    with pytest.raises(ScheduleError, match="name must be a non-empty string"):
        RecurringRunSpec(name=" ", schedule=parse_cron("@daily"))
    with pytest.raises(ScheduleError, match="schedule must come from parse_cron"):
        RecurringRunSpec(name="x", schedule="0 2 * * *")  # type: ignore[arg-type]
    spec = RecurringRunSpec(name="x", schedule=parse_cron("@hourly"), pipeline="my/pipe.yaml")
    assert spec.pipeline_name == "refit-pipe"
    body = recurring_run_body(spec, experiment_id="e", pipeline_id="p", version_id="v")
    assert body["experiment_id"] == "e"
    assert body["pipeline_version_reference"] == {"pipeline_id": "p", "pipeline_version_id": "v"}
