"""``refit train``: train a model on a table, in one process or distributed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.commands import renamed_option


def parse_param(text: str) -> tuple[str, Any]:
    """Parse one ``KEY=VALUE`` trainer parameter; the value is JSON when it parses as JSON.

    ``max_depth=3`` gives 3, ``class_weight=balanced`` gives ``"balanced"``,
    ``class_weight={"yes": 3}`` a mapping, ``max_depth=null`` None.

    Raises:
        typer.BadParameter: If there is no ``=`` or the key is empty.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise typer.BadParameter(f"--param {text!r} must look like KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def train_command(
    data: Annotated[str, typer.Option(help="CSV or Parquet data (local path or gs:// URI).")],
    target: Annotated[
        str, typer.Option("--label-column", help="Label column (what the model predicts).")
    ],
    output: Annotated[Path, typer.Option(help="Model folder to write (model file + model.json).")],
    trainer: Annotated[
        str,
        typer.Option(
            "--trainer", help="Trainer: xgboost, hist_gradient_boosting, random_forest, ..."
        ),
    ] = "xgboost",
    model: Annotated[
        str | None,
        typer.Option("--model", hidden=True, help="Deprecated spelling of --trainer."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    checkpoint_dir: Annotated[
        str | None,
        typer.Option(help="Folder or gs:// prefix for checkpoints; a rerun resumes."),
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Boosting rounds between checkpoints.")
    ] = 10,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Trainer parameter KEY=VALUE (repeatable)."),
    ] = None,
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Column that is not a feature.")
    ] = None,
    holdout_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.9, help="Share of rows held out for the card's metrics (0: none)."
        ),
    ] = 0.0,
    price_per_hour: Annotated[
        float, typer.Option(min=0.0, help="Node price per hour, for the card's cost.")
    ] = 0.0,
    max_categories: Annotated[
        int,
        typer.Option(
            min=1,
            max=10_000,
            help="Cardinality cap: a categorical column keeps its N most frequent values "
            "and one shared (other) column.",
        ),
    ] = 100,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="Distributed XGBoost as N local worker processes (each reads only its "
            "row groups of a Parquet --data); 0: one process.",
        ),
    ] = 0,
    distributed: Annotated[
        Path | None,
        typer.Option(
            help="YAML or JSON file of distributed settings: executor trainjob (a Kubeflow "
            "Trainer TrainJob on the xgboost-distributed runtime: namespace, "
            "allowed_namespaces, num_nodes, profile, deadline_s, delete...) or local.",
        ),
    ] = None,
) -> None:
    """Train a model on a table and save it in a safe format with its model card."""
    import hashlib
    import time

    from refit.errors import RefitError

    trainer = renamed_option("train", "--model", "--trainer", model, trainer)
    if workers or distributed is not None:
        _train_distributed(
            data, target, output, trainer, params=dict(parse_param(p) for p in (param or [])),
            seed=seed, task=task, exclude=exclude or [], holdout_fraction=holdout_fraction,
            checkpoint_dir=checkpoint_dir or "", checkpoint_every=checkpoint_every,
            price_per_hour=price_per_hour, workers=workers, settings_file=distributed,
        )  # fmt: skip
        return
    from refit.io.tables import canonical_parquet_bytes, read_table
    from refit.training import (
        build_model_card,
        save_model,
        train,
        validation_metrics,
    )

    params = dict(parse_param(p) for p in (param or []))
    started = time.perf_counter()
    try:
        table = read_table(data)
        data_sha256 = hashlib.sha256(canonical_parquet_bytes(table)).hexdigest()
        holdout = None
        if holdout_fraction > 0:
            from refit.steps.train import split_holdout  # imports every step: only if asked

            table, holdout = split_holdout(table, holdout_fraction, seed)
        with _progress(quiet) as on_round:
            trained = train(
                table,
                target,
                trainer=trainer,
                params=params,
                seed=seed,
                exclude=exclude or (),
                task=task,
                device=device,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                on_round=on_round,
                max_categories=max_categories,
            )
        metrics = validation_metrics(trained, holdout) if holdout is not None else None
        card = build_model_card(
            trained,
            table,
            data_sha256=data_sha256,
            wall_time_s=time.perf_counter() - started,
            price_per_hour=price_per_hour,
            metrics=metrics,
            metrics_source=f"a seeded holdout, {holdout.num_rows} rows" if holdout else "",
        )
        artifact = save_model(trained, output, card=card)
    except RefitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    summary = {
        "output": str(output),
        "sha256": artifact.sha256,
        "trainer": trainer,
        "task": trained.task,
        "device": trained.device,
        "rounds": trained.info.get("rounds"),
        "resumed_from_round": trained.resumed_from_round,
        "wall_time_s": card["wall_time_s"],
    }
    typer.echo(json.dumps(summary))


def _train_distributed(
    data: str,
    target: str,
    output: Path,
    trainer: str,
    *,
    params: dict[str, Any],
    seed: int,
    task: str,
    exclude: list[str],
    holdout_fraction: float,
    checkpoint_dir: str,
    checkpoint_every: int,
    price_per_hour: float,
    workers: int,
    settings_file: Path | None,
) -> None:
    """``refit train --workers N`` / ``--distributed FILE``: see ``train_model_distributed``."""
    from refit.errors import RefitError
    from refit.images import component_image
    from refit.steps.train_distributed import train_model_distributed

    if workers and settings_file is not None:
        raise typer.BadParameter(
            "give --workers or --distributed, not both", param_hint="--workers"
        )
    if not 0 < holdout_fraction < 1:
        raise typer.BadParameter(
            "distributed training holds rows out by a seeded hash: give a --holdout-fraction "
            "above 0",
            param_hint="--holdout-fraction",
        )
    if len(exclude) > 1:
        raise typer.BadParameter(
            "distributed training excludes one column (the time column)", param_hint="--exclude"
        )
    if settings_file is not None:
        try:
            text = settings_file.read_text(encoding="utf-8")
            if settings_file.suffix.lower() == ".json":
                settings = json.loads(text)
            else:
                import yaml

                settings = yaml.safe_load(text)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(
                f"cannot read {settings_file}: {exc}", param_hint="--distributed"
            ) from exc
        except Exception as exc:  # yaml.YAMLError is not a ValueError
            raise typer.BadParameter(
                f"{settings_file} is not valid YAML: {exc}", param_hint="--distributed"
            ) from exc
    else:
        settings = {"executor": "local", "workers": workers}
    holdout = output.parent / f"{output.name}.holdout"
    try:
        out = train_model_distributed(
            data,
            target,
            str(output),
            str(output),
            str(holdout),
            distributed=settings,
            trainer=trainer,
            params=params,
            seed=seed,
            holdout_fraction=holdout_fraction,
            time_column=exclude[0] if exclude else "",
            task=task,
            checkpoint_uri=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            price_per_hour=price_per_hour,
            image=component_image(),
        )
    except RefitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    summary = {
        "output": str(output),
        "holdout": str(holdout),
        "sha256": out.sha256,
        "trainer": trainer,
        "device": out.device,
        "rounds": out.card.get("rounds"),
        "resumed_from_round": out.resumed_from_round,
        "wall_time_s": out.card.get("wall_time_s"),
        "distributed": out.audit["distributed"],
    }
    typer.echo(json.dumps(summary))


class _progress:
    """A rich progress bar over boosting rounds, as a context manager giving ``on_round``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("boosting rounds"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._bar.start()

        def on_round(done: int, total: int) -> None:
            if self._task is None:
                self._task = self._bar.add_task("train", total=total, completed=0)
            self._bar.update(self._task, completed=done, total=total)

        return on_round

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def register(app: typer.Typer) -> None:
    """Add ``refit train`` to ``app``."""
    app.command("train")(train_command)
