"""``refit schedule``: KFP recurring runs of refit's pipelines; the KFP API token rules."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.commands import fail, json_object

schedule_app = typer.Typer(
    help="KFP recurring runs: cron done right, no pile-ups, no catch-up storms.",
    no_args_is_help=True,
)

Host = Annotated[
    str | None,
    typer.Option("--host", envvar="KFP_HOST", help="KFP API endpoint (default: KFP_HOST)."),
]
#: Where the KFP API's bearer token comes from: never the command line, where every user of
#: the machine sees it (``ps``, ``/proc/PID/cmdline``).
TOKEN_ENV = "KFP_TOKEN"
Token = Annotated[
    str | None,
    typer.Option("--token", hidden=True, help="Refused: see --token-file and KFP_TOKEN."),
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="KFP_TOKEN_FILE",
        help="File holding the KFP API's bearer token (a mounted Secret; default: "
        "KFP_TOKEN_FILE, else the token in KFP_TOKEN).",
    ),
]


def kfp_token(given: str | None, token_file: Path | None, flag: str, file_flag: str) -> str | None:
    """The KFP API token, from a file or ``KFP_TOKEN``; never from the command line.

    Args:
        given: The value of the refused command-line flag (None when not given).
        token_file: The token file given, if any.
        flag: The refused flag's name, for the message.
        file_flag: The file flag's name, for the message.

    Raises:
        typer.BadParameter: The token was given on the command line, or the file is
            unreadable or empty.
    """
    import os

    if given is not None:
        raise typer.BadParameter(
            "a token on the command line is visible to every user of the machine (ps, "
            f"/proc/PID/cmdline): put it in the {TOKEN_ENV} environment variable, or in a file "
            f"named by {file_flag} (a mounted Kubernetes Secret)",
            param_hint=flag,
        )
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise typer.BadParameter(
                f"cannot read the token file {token_file}: {reason}", param_hint=file_flag
            ) from None
        if not token:
            raise typer.BadParameter(f"token file {token_file} is empty", param_hint=file_flag)
        return token
    return os.environ.get(TOKEN_ENV) or None


def _connect(host: str | None, token: str | None, token_file: Path | None = None) -> Any:
    from refit.schedule import kfp as kfp_schedule

    secret = kfp_token(token, token_file, "--token", "--token-file")
    with contextlib.redirect_stdout(sys.stderr):
        return kfp_schedule.connect(host, existing_token=secret)


@schedule_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Recurring run name (the key: re-running updates).")],
    cron: Annotated[
        str | None,
        typer.Option(help="Cron: 5 fields (MIN HOUR DOM MON DOW), KFP's 6 (0 first) or @daily."),
    ] = None,
    interval: Annotated[str | None, typer.Option(help="Interval instead: 30m, 6h, 1d.")] = None,
    pipeline: Annotated[
        str, typer.Option(help="Pipeline name (retraining) or compiled YAML path.")
    ] = "retraining",
    params: Annotated[str, typer.Option(help="Pipeline parameters as a JSON object.")] = "{}",
    experiment: Annotated[str, typer.Option(help="Experiment name.")] = "refit",
    max_concurrency: Annotated[int, typer.Option(help="Runs at once (1-10).")] = 1,
    catchup: Annotated[
        bool, typer.Option("--catchup/--no-catchup", help="Run each missed interval after a pause.")
    ] = False,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    description: Annotated[str, typer.Option(help="Shown in the KFP UI.")] = "",
    pipeline_root: Annotated[str | None, typer.Option(help="Root of the runs' artifacts.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request body as JSON; touch no server.")
    ] = False,
    host: Host = None,
    token: Token = None,
    token_file: TokenFile = None,
) -> None:
    """Create or update a KFP recurring run of a refit pipeline."""
    from refit.schedule import kfp as kfp_schedule
    from refit.schedule.cron import ScheduleError, parse_schedule

    try:
        spec = kfp_schedule.RecurringRunSpec(
            name=name,
            schedule=parse_schedule(cron=cron, interval=interval),
            pipeline=pipeline,
            params=json_object(params, "--params"),
            experiment=experiment,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            enabled=not paused,
            description=description,
            pipeline_root=pipeline_root,
        )
        if dry_run:
            if spec.pipeline not in kfp_schedule.PIPELINES and not Path(spec.pipeline).is_file():
                raise ScheduleError(
                    f"unknown pipeline {spec.pipeline!r}: give one of "
                    f"{', '.join(sorted(kfp_schedule.PIPELINES))} or a compiled pipeline YAML"
                )
            typer.echo(json.dumps(kfp_schedule.recurring_run_body(spec), indent=2, sort_keys=True))
            return
        with contextlib.redirect_stdout(sys.stderr):  # kfp.Client prints links
            client = _connect(host, token, token_file)
            result = kfp_schedule.apply_recurring_run(client, spec)
    except ScheduleError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))


@schedule_app.command("list")
def list_(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    host: Host = None,
    token: Token = None,
    token_file: TokenFile = None,
) -> None:
    """List recurring runs as JSON lines."""
    from refit.schedule import kfp as kfp_schedule
    from refit.schedule.cron import ScheduleError

    try:
        client = _connect(host, token, token_file)
        rows = kfp_schedule.list_runs(client, experiment)
    except ScheduleError as exc:
        raise fail(str(exc)) from exc
    for row in rows:
        typer.echo(json.dumps(row, sort_keys=True, default=str))


def _by_name(
    action: str, name: str, host: str | None, token: str | None, token_file: Path | None
) -> None:
    from refit.schedule import kfp as kfp_schedule
    from refit.schedule.cron import ScheduleError

    try:
        client = _connect(host, token, token_file)
        if action == "delete":
            ids = kfp_schedule.delete(client, name)
        else:
            ids = kfp_schedule.set_enabled(client, name, action == "resume")
    except ScheduleError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps({"action": action, "name": name, "ids": ids}))


@schedule_app.command("pause")
def pause(name: str, host: Host = None, token: Token = None, token_file: TokenFile = None) -> None:
    """Pause (disable) the recurring run named NAME."""
    _by_name("pause", name, host, token, token_file)


@schedule_app.command("resume")
def resume(name: str, host: Host = None, token: Token = None, token_file: TokenFile = None) -> None:
    """Resume (enable) the recurring run named NAME."""
    _by_name("resume", name, host, token, token_file)


@schedule_app.command("delete")
def delete(name: str, host: Host = None, token: Token = None, token_file: TokenFile = None) -> None:
    """Delete the recurring run named NAME."""
    _by_name("delete", name, host, token, token_file)


def register(app: typer.Typer) -> None:
    """Add ``refit schedule`` to ``app``."""
    app.add_typer(schedule_app, name="schedule")
