"""`refit schedule ...` (KFP recurring runs), `refit serve` (trigger service), `refit backfill`."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.defaults import DEFAULT_GATE, DEFAULT_POLICY, DEFAULT_SEED, DEFAULT_TRAINER

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


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return value


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
            params=_json_object(params, "--params"),
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
        _fail(exc)
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
        _fail(exc)
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
        _fail(exc)
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


def serve(
    config: Annotated[Path, typer.Option(help="Service config (JSON or YAML): models, policy.")],
    launcher: Annotated[
        str, typer.Option(help="kfp (cluster), local (kfp.local), log (record only).")
    ] = "log",
    listen_host: Annotated[
        str, typer.Option("--listen-host", help="Address the service listens on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port the service listens on.")
    ] = 8080,
    kfp_host: Annotated[
        str | None,
        typer.Option(
            "--kfp-host",
            envvar="KFP_HOST",
            help="KFP API endpoint runs are submitted to (--launcher kfp; default: KFP_HOST).",
        ),
    ] = None,
    kfp_token_given: Annotated[
        str | None,
        typer.Option("--kfp-token", hidden=True, help="Refused: see --kfp-token-file."),
    ] = None,
    kfp_token_file: Annotated[
        Path | None,
        typer.Option(
            "--kfp-token-file",
            envvar="KFP_TOKEN_FILE",
            help="File holding the KFP API's bearer token (--launcher kfp; a mounted Secret; "
            "default: KFP_TOKEN_FILE, else the token in KFP_TOKEN). Never on the command line.",
        ),
    ] = None,
    pipeline_root: Annotated[
        Path, typer.Option(help="Artifacts of local runs (--launcher local).")
    ] = Path("refit-triggers/pipeline_root"),
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
) -> None:
    """Run the trigger service: monitoring hooks and an embedded scheduler start retraining.

    The hook secret comes from REFIT_HOOK_TOKEN or the file named by REFIT_HOOK_TOKEN_FILE; the
    KFP token from KFP_TOKEN or --kfp-token-file, never from the command line.

    The config's run parameters are checked against the pipeline's inputs before it starts.
    Launched runs use the images of REFIT_IMAGE_REPOSITORY, tagged with refit's version.
    """
    import uvicorn

    from refit.triggers.app import create_app
    from refit.triggers.auth import load_secret
    from refit.triggers.config import ServiceConfig, TriggerConfigError
    from refit.triggers.launchers import make_launcher
    from refit.triggers.service import TriggerService

    token = kfp_token(kfp_token_given, kfp_token_file, "--kfp-token", "--kfp-token-file")
    try:
        secret = load_secret()
        service_config = ServiceConfig.load(config)
        chosen = make_launcher(
            launcher,
            host=kfp_host,
            token=token,
            pipeline=service_config.pipeline,
            pipeline_root=str(pipeline_root),
        )
    except (TriggerConfigError, ValueError) as exc:
        _fail(exc)
    service = TriggerService(service_config, chosen)
    uvicorn.run(
        create_app(service, secret),
        host=listen_host,
        port=port,
        log_level="info",
        access_log=access_log,
    )


def backfill(
    data: Annotated[str, typer.Option(help="CSV or Parquet of history (local path or gs://).")],
    time_column: Annotated[
        str,
        typer.Option(
            help="Event-time column: with --every it splits the windows; always excluded from "
            "features."
        ),
    ] = "",
    every: Annotated[
        str | None, typer.Option(help="Window length with --time-column: 1d, 7d, 1w, 12h.")
    ] = None,
    window_column: Annotated[
        str,
        typer.Option(
            help="Period column instead of --every (a week number, a month): one window per "
            "distinct value, in sorted order; excluded from features."
        ),
    ] = "",
    from_: Annotated[
        str | None, typer.Option("--from", help="First time included (ISO 8601).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Time where replay stops (exclusive).")] = None,
    target: Annotated[str, typer.Option("--label-column", help="Label column.")] = "label",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="Column that is not a feature (an id, an index); repeatable."
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(help=f"Retrain policy as JSON. Default: {json.dumps(DEFAULT_POLICY)}."),
    ] = None,
    gate: Annotated[
        str | None,
        typer.Option(
            help=f"Promotion gate of --retrain as JSON. Default: {json.dumps(DEFAULT_GATE)}."
        ),
    ] = None,
    model_name: Annotated[str, typer.Option(help="Model name in the store.")] = "model",
    store: Annotated[
        str | None,
        typer.Option(help="Store with a champion to score (metric decay), policy-only mode."),
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Run the whole pipeline over each window.")
    ] = False,
    workdir: Annotated[
        Path, typer.Option(help="Working folder of --retrain (store, pipeline root).")
    ] = Path("refit-backfill"),
    trainer: Annotated[str, typer.Option(help="Trainer for --retrain.")] = DEFAULT_TRAINER,
    params: Annotated[
        str | None,
        typer.Option(help='Trainer hyper-parameters of --retrain as JSON, e.g. {"max_depth": 4}.'),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of --retrain's holdout split and training.")
    ] = DEFAULT_SEED,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the timeline as JSON here.")
    ] = None,
) -> None:
    """Replay the retrain policy (or, with --retrain, the pipeline) over historical windows.

    Windows come from --time-column with --every, or from --window-column. Each window's row
    names its drifted features, the gate's verdict (--retrain) and the live version.
    """
    from refit.schedule.backfill import BackfillConfig, render_timeline, run_backfill

    try:
        cfg = BackfillConfig(
            data=data,
            time_column=time_column,
            every=every,
            start=from_,
            end=to,
            target=target,
            policy=_json_object(policy, "--policy") if policy else None,
            model_name=model_name,
            store_uri=store,
            retrain=retrain,
            workdir=workdir,
            trainer=trainer,
            window_column=window_column,
            exclude=tuple(exclude or ()),
            gate=_json_object(gate, "--gate") if gate else None,
            params=_json_object(params, "--params") if params else None,
            seed=seed,
        )
        typer.echo(render_timeline([]))  # the header; each window prints when decided
        rows = run_backfill(cfg, on_row=lambda r: typer.echo(render_timeline([r], header=False)))
    except ValueError as exc:
        _fail(exc)
    counts = {d: sum(r.decision == d for r in rows) for d in ("retrain", "skip", "blocked")}
    typer.echo(", ".join(f"{n} {d}" for d, n in counts.items() if n) + f" over {len(rows)} windows")
    if json_out:
        json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(schedule_app, name="schedule")
    app.command("serve")(serve)
    app.command("backfill")(backfill)
