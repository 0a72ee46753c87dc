"""``refit serve-model``: the local model server (KServe V2 protocol) for registry versions."""

from __future__ import annotations

from typing import Annotated

import typer

from refit.commands import ListenHost, renamed_option


def serve_model(
    store: Annotated[str, typer.Option(help="refit's store (local folder or gs:// URI).")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model name in the store. [required]")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", hidden=True)] = None,  # old --model
    listen_host: ListenHost = "127.0.0.1",
    host: Annotated[str | None, typer.Option("--host", hidden=True)] = None,  # old --listen-host
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    seed: Annotated[int, typer.Option(help="Seed of the traffic split and faults.")] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="Fault injection for canary drills (repeatable), off by default: "
            "VERSION:error_rate=P (answer 500 with probability P) or "
            "VERSION:latency_ms=MS (wait MS before answering).",
        ),
    ] = None,
    state_refresh: Annotated[
        float,
        typer.Option(
            "--state-refresh", min=0.0, help="Seconds between re-reads of the rollout state."
        ),
    ] = 0.5,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-body-bytes",
            min=1,
            help="Largest infer request body in bytes, 413 above it [default: 8 MiB].",
        ),
    ] = None,
    max_elements: Annotated[
        int | None,
        typer.Option(
            "--max-elements",
            min=1,
            help="Most tensor elements (rows x features) in one request, 413 above it "
            "[default: 1000000].",
        ),
    ] = None,
    max_depth: Annotated[
        int | None,
        typer.Option(
            "--max-depth",
            min=1,
            help="Most dimensions / nesting levels of a request tensor, 413 above it [default: 8].",
        ),
    ] = None,
    prediction_log: Annotated[
        str | None,
        typer.Option(
            "--prediction-log",
            help="Folder where each answered prediction is logged with its id, for "
            "`refit labels join` (JSON Lines segments of 64 MiB, 100 kept) [default: off].",
        ),
    ] = None,
    log_features: Annotated[
        bool,
        typer.Option("--log-features", help="Also log each row's features (--prediction-log)."),
    ] = False,
    feedback_file: Annotated[
        str | None,
        typer.Option(
            "--feedback-file",
            help="JSON Lines file that POST /v2/models/NAME/feedback appends A/B feedback "
            "events to (an A/B plan's feedback_path); off by default. Needs the secret "
            "feedback requests carry as a bearer token in REFIT_FEEDBACK_TOKEN or the file "
            "REFIT_FEEDBACK_TOKEN_FILE names.",
        ),
    ] = None,
) -> None:
    """Serve a model's registry versions over KServe's V2 protocol, with a canary split.

    Unpinned requests go to the champion alias, and to the canary named by the registry's
    "canary" state with its percent. Prometheus metrics per revision at /metrics.
    """
    import uvicorn

    from refit.errors import DataError, DeployError, RegistryError
    from refit.monitoring.predictions import PredictionLog
    from refit.serving import RequestLimits, create_app, parse_faults
    from refit.serving.feedback import load_feedback_token

    host = renamed_option("serve-model", "--host", "--listen-host", host, listen_host)
    name = renamed_option("serve-model", "--name", "--model", name, model)
    if name is None:
        raise typer.BadParameter("--model is required: the model's name in the store")
    given = {
        "max_body_bytes": max_body_bytes,
        "max_elements": max_elements,
        "max_depth": max_depth,
    }
    limits = {key: value for key, value in given.items() if value is not None}
    try:
        faults = parse_faults(fault or [])
    except DeployError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from exc
    predictions = None
    if prediction_log is not None:
        try:
            predictions = PredictionLog(prediction_log, log_features=log_features)
        except (DataError, OSError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--prediction-log") from exc
    feedback_token = None
    if feedback_file is not None:
        try:
            feedback_token = load_feedback_token()
        except DataError as exc:
            raise typer.BadParameter(str(exc), param_hint="--feedback-file") from exc
    try:
        app = create_app(
            store,
            name,
            seed=seed,
            faults=faults,
            state_refresh_seconds=state_refresh,
            limits=RequestLimits(**limits),
            prediction_log=predictions,
            feedback_path=feedback_file,
            feedback_token=feedback_token,
        )
    except RegistryError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store/--model") from exc
    for version, settings in sorted(faults.items()):
        typer.echo(
            f"FAULT INJECTION (canary drill): version {version} {settings.to_dict()}",
            err=True,
        )
    typer.echo(
        f"serving model {name!r} from {store} at http://{host}:{port}/v2/models/{name} "
        f"(metrics at /metrics)"
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)


def register(app: typer.Typer) -> None:
    """Add ``refit serve-model`` to ``app``."""
    app.command("serve-model")(serve_model)
