"""``refit backfill``: the retrain policy (or the whole pipeline) replayed over history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from refit.commands import fail, json_object, renamed_option
from refit.defaults import DEFAULT_GATE, DEFAULT_POLICY, DEFAULT_SEED, DEFAULT_TRAINER


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
    model: Annotated[str, typer.Option("--model", help="Model name in the store.")] = "model",
    model_name: Annotated[
        str | None, typer.Option("--model-name", hidden=True)
    ] = None,  # old spelling of --model
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
            policy=json_object(policy, "--policy") if policy else None,
            model_name=renamed_option("backfill", "--model-name", "--model", model_name, model),
            store_uri=store,
            retrain=retrain,
            workdir=workdir,
            trainer=trainer,
            window_column=window_column,
            exclude=tuple(exclude or ()),
            gate=json_object(gate, "--gate") if gate else None,
            params=json_object(params, "--params") if params else None,
            seed=seed,
        )
        typer.echo(render_timeline([]))  # the header; each window prints when decided
        rows = run_backfill(cfg, on_row=lambda r: typer.echo(render_timeline([r], header=False)))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    counts = {d: sum(r.decision == d for r in rows) for d in ("retrain", "skip", "blocked")}
    typer.echo(", ".join(f"{n} {d}" for d, n in counts.items() if n) + f" over {len(rows)} windows")
    if json_out:
        json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2))


def register(app: typer.Typer) -> None:
    """Add ``refit backfill`` to ``app``."""
    app.command("backfill")(backfill)
