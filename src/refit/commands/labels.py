"""``refit labels join``: late labels joined to the prediction log, realised performance."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from refit.commands import renamed_option


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    labels = typer.Typer(help="Labels that arrive late, joined to the prediction log.")
    app.add_typer(labels, name="labels")

    @labels.command("join")
    def join(
        predictions: Annotated[
            str,
            typer.Option(
                help="Prediction log: a *.jsonl file or a folder of them (`refit serve-model "
                "--prediction-log`, or your own in the same format)."
            ),
        ],
        labels_paths: Annotated[
            list[str],
            typer.Option(
                "--labels",
                help="Labels landed so far (repeatable): CSV, Parquet or JSON Lines with "
                "id, label and optionally time.",
            ),
        ],
        window: Annotated[
            str, typer.Option(help="Window length of prediction time: 1h, 1d, 7d...")
        ] = "1d",
        metric: Annotated[str, typer.Option(help="accuracy (classes) or mae (values).")] = (
            "accuracy"
        ),
        min_coverage: Annotated[
            float,
            typer.Option(help="Share of a window's predictions labelled for it to be complete."),
        ] = 0.9,
        store: Annotated[
            str | None,
            typer.Option(help="refit's store: record complete windows in the model's audit log."),
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", help="Model name in the store.")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", hidden=True)] = None,  # old --model
        out: Annotated[
            str | None,
            typer.Option(help="Folder for labels-join.json and labels-join.md."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        seed: Annotated[int, typer.Option(help="Seed of the estimate's interval.")] = 0,
    ) -> None:
        """Join the labels landed so far to the prediction log; realised vs estimated per window.

        Run it again whenever labels land: each window is complete once --min-coverage of its
        predictions are labelled; the others are listed as still waiting. With --store and
        --model each complete window's realised and estimated performance is recorded once in
        the model's audit log (event performance_realised).
        """
        from refit.errors import DataError
        from refit.monitoring.labels import (
            join_labels,
            markdown,
            read_labels,
            record_join,
            write_report,
        )
        from refit.monitoring.predictions import read_predictions

        name = renamed_option("labels join", "--name", "--model", name, model)
        if (store is None) != (name is None):
            raise typer.BadParameter(
                "give both --store and --model, or neither", param_hint="--store"
            )
        if not labels_paths:
            raise DataError("--labels: give at least one labels file")
        records = read_predictions(predictions)
        result = join_labels(
            records,
            [read_labels(p) for p in labels_paths],
            window=window,
            metric=metric,
            min_coverage=min_coverage,
            seed=seed,
        )
        recorded = [] if store is None or name is None else record_join(result, store, name)
        if out is not None:
            json_path, md_path = write_report(result, out)
            typer.echo(f"wrote {json_path} and {md_path}", err=True)
        if store is not None:
            typer.echo(f"recorded {len(recorded)} window(s) in {name}'s audit log", err=True)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            typer.echo(markdown(result), nl=False)
