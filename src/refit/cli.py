"""The ``refit`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from refit.commands import (
    audit,
    backfill,
    compile,
    drift,
    evaluate,
    labels,
    profile,
    registry,
    report,
    rollout,
    schedule,
    serve_model,
    serve_triggers,
    train,
    validate,
)
from refit.errors import RefitError


def _os_error_text(exc: OSError) -> str:
    """``PATH: reason`` of an OS error, as a person reads it."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    return f"{exc.filename}{target}: {reason}"


class RefitGroup(TyperGroup):
    """The ``refit`` command group: refit's own errors end as one line on stderr, not a traceback.

    Commands raise `refit.errors.RefitError` (every message names the input and what is wrong
    with it) or let an `OSError` through (a missing file, a directory where a file is expected,
    a path that cannot be written: its message names the path); either ends the command with
    ``error: ...`` on stderr and exit status 2, the status of a bad argument. Anything else is a
    bug and keeps its traceback.
    """

    # Any: older typer releases pass click's Context, typer 0.29 (the lock's) its vendored copy
    # (typer._click), so no one public type names it across the versions pyproject allows.
    def invoke(self, ctx: Any) -> object:
        """Run the command, turning refit's errors into a clear message and exit status 2."""
        try:
            return super().invoke(ctx)
        except RefitError as exc:
            message = str(exc)
        except OSError as exc:
            message = _os_error_text(exc)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)


app = typer.Typer(
    cls=RefitGroup, help="refit: keep production models from drifting.", no_args_is_help=True
)


@app.command()
def version() -> None:
    """Print refit's version."""
    from refit import __version__

    typer.echo(__version__)


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option(help="Working folder: store, pipeline root, data, summary.")
    ] = Path("refit-demo"),
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Also write the timeline as JSON here.")
    ] = None,
    windows: Annotated[int, typer.Option(min=8, help="Weekly windows to replay.")] = 10,
    rows: Annotated[int, typer.Option(min=200, help="Rows per window.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the built-in dataset.")] = 7,
    runner: Annotated[
        str,
        typer.Option(
            help="How each task runs: 'subprocess' (this Python) or 'docker' (in refit's image, "
            "through Docker or podman's API at DOCKER_HOST; build the images with `make images`)."
        ),
    ] = "subprocess",
    engine: Annotated[
        str,
        typer.Option(
            help="Statistics engine of validation and drift: 'native' or 'tfdv' (with "
            "--runner docker: those tasks run in the refit-tfdv image)."
        ),
    ] = "native",
) -> None:
    """Replay a built-in dataset through the whole retraining loop with kfp.local.

    Shows a quiet window, a retrain caused by drift, a promoted challenger, a bad window blocked
    by validation, and a retrain caused by accuracy decay after a concept change.
    """
    from refit.demo.data import DemoScenario
    from refit.pipelines.demo import run_demo
    from refit.pipelines.local import RUNNERS

    if runner not in RUNNERS:
        raise typer.BadParameter(f"{runner!r} is not one of {list(RUNNERS)}", param_hint="--runner")
    if engine not in ("native", "tfdv"):
        raise typer.BadParameter(
            f"{engine!r} is not one of ['native', 'tfdv']", param_hint="--engine"
        )
    try:
        run_demo(
            output,
            DemoScenario(windows=windows, rows=rows, seed=seed),
            summary_json=summary_json,
            runner=runner,
            engine=engine,
        )
    except RuntimeError as exc:  # a container or engine failure, named by the runner
        typer.echo(f"refit demo --runner {runner}: {exc}", err=True)
        raise typer.Exit(1) from exc


# In this order in `refit --help`: commands first, then groups, each in the order added.
for _module in (
    profile,
    drift,
    evaluate,
    registry,
    audit,
    compile,
    train,
    schedule,
    serve_triggers,
    backfill,
    validate,
    serve_model,
    report,
    rollout,
    labels,
):
    _module.register(app)
