"""``refit serve-triggers``: the trigger service (monitoring hooks and a scheduler start runs).

``refit serve``, its old name, stays for one release as a hidden alias that says so on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refit.commands import deprecated_alias, fail
from refit.commands.schedule import kfp_token


def serve_triggers(
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
        raise fail(str(exc)) from exc
    service = TriggerService(service_config, chosen)
    uvicorn.run(
        create_app(service, secret),
        host=listen_host,
        port=port,
        log_level="info",
        access_log=access_log,
    )


def register(app: typer.Typer) -> None:
    """Add ``refit serve-triggers`` (and its deprecated alias ``refit serve``) to ``app``."""
    app.command("serve-triggers")(serve_triggers)
    deprecated_alias(app, "serve", "serve-triggers", serve_triggers)
