"""The training step: a challenger on the window, minus a seeded holdout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.io.tables import read_table, write_parquet
from refit.registry import ModelRegistry
from refit.training.artifacts import save_model
from refit.training.trainers import train


@dataclass
class TrainOutput:
    """What ``train_model`` reports."""

    sha256: str
    train_rows: int
    holdout_rows: int
    trainer: str


def split_holdout(table: pa.Table, fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Split a table into train and holdout rows, seeded.

    Args:
        table: Rows to split.
        fraction: Share of rows held out, in (0, 1).
        seed: Seed of the permutation.

    Returns:
        The training rows and the holdout rows.

    Raises:
        DataError: The fraction is out of range or leaves either side empty.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout_fraction must be in (0, 1), got {fraction}")
    n_holdout = int(round(table.num_rows * fraction))
    if n_holdout < 1 or n_holdout >= table.num_rows:
        raise DataError(
            f"holdout_fraction {fraction} of {table.num_rows} rows leaves an empty side"
        )
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return table.take(np.sort(order[n_holdout:])), table.take(np.sort(order[:n_holdout]))


def train_model(
    snapshot_path: str,
    target: str,
    model_dir: str,
    holdout_path: str,
    *,
    store_uri: str,
    model_name: str,
    trainer: str = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    run_label: str = "",
) -> TrainOutput:
    """Train a challenger on a window, keeping a seeded holdout for its evaluation.

    Args:
        snapshot_path: Parquet file of the training window.
        target: Label column.
        model_dir: Folder the model (safe format + ``model.json``) is written to.
        holdout_path: Parquet file the holdout rows are written to.
        store_uri: Root of refit's store.
        model_name: Model the challenger is for.
        trainer: Name of a registered trainer.
        params: Trainer hyper-parameters.
        seed: Seed for the split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Time column, excluded from the features.
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The model file's sha256 and the row counts.
    """
    table = read_table(snapshot_path)
    train_rows, holdout_rows = split_holdout(table, holdout_fraction, seed)
    exclude = (time_column,) if time_column else ()
    model = train(train_rows, target, trainer=trainer, params=params, seed=seed, exclude=exclude)
    artifact = save_model(model, model_dir)
    write_parquet(holdout_rows, holdout_path)
    ModelRegistry(store_uri, model_name).audit.append(
        "training",
        {
            "run_label": run_label,
            "trainer": trainer,
            "params": params or {},
            "sha256": artifact.sha256,
            "train_rows": train_rows.num_rows,
        },
    )
    return TrainOutput(
        sha256=artifact.sha256,
        train_rows=train_rows.num_rows,
        holdout_rows=holdout_rows.num_rows,
        trainer=trainer,
    )
