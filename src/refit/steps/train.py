"""The training step: a challenger on the window, minus a seeded holdout."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError
from refit.io import uri as uri_io
from refit.io.tables import read_table, write_parquet
from refit.privacy import check_pii_handled
from refit.steps.common import dict_param
from refit.training.artifacts import save_model
from refit.training.card import build_model_card, render_model_card, validation_metrics
from refit.training.trainers import get_trainer, train

#: ``checkpoint_uri`` value of the component that puts checkpoints beside the output model
#: (see :func:`checkpoint_location`).
AUTO_CHECKPOINTS = "auto"


@dataclass
class TrainOutput:
    """What ``train_model`` reports.

    Attributes:
        audit: The summary a stateful step records as the ``training`` event
            (``record_results``): trainer, params, sha256, rows, device, resumed round, wall
            time, cost.
    """

    sha256: str
    train_rows: int
    holdout_rows: int
    trainer: str
    device: str = "cpu"
    resumed_from_round: int = 0
    card: dict[str, Any] = field(default_factory=dict)
    card_markdown: str = ""
    audit: dict[str, Any] = field(default_factory=dict)


def checkpoint_location(model_uri: str, model_path: str) -> str:
    """Where a training task's checkpoints live: beside its output model.

    KFP gives a task's outputs the same URIs on each retry of that task (the retry reruns the
    executor with the inputs and outputs its driver resolved once), so a retry after a
    pre-emption finds the checkpoints of the attempt it replaces; the checkpoint's own
    fingerprint guards against other data or parameters. On ``gs://`` they are written to the
    bucket directly (a local copy would be lost with the pod); otherwise beside the model's
    local path (kfp.local, where that path is the artifact itself).

    Args:
        model_uri: URI of the task's output model artifact.
        model_path: Its local path in the task.

    Returns:
        A folder or ``gs://`` prefix: the model's URI or path with ``.checkpoints`` appended.
    """
    base = model_uri if uri_io.is_gcs(model_uri) else model_path
    return base.rstrip("/") + ".checkpoints"


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
    label_column: str,
    model_dir: str,
    holdout_path: str,
    *,
    data_metadata: Mapping[str, Any] | None = None,
    trainer: str = "xgboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    task: str = "auto",
    device: str = "auto",
    checkpoint_uri: str = "",
    checkpoint_every: int = 25,
    price_per_hour: float = 0.0,
    node_profile: str = "",
) -> TrainOutput:
    """Train a challenger on a window, keeping a seeded holdout for its evaluation.

    A function of its inputs alone: no store is read or written. The audit summary comes back
    in :attr:`TrainOutput.audit` for a stateful step to record.

    Args:
        snapshot_path: Parquet file of the training window.
        label_column: Label column.
        model_dir: Folder the model (safe format + ``model.json``) is written to.
        holdout_path: Parquet file the holdout rows are written to.
        data_metadata: Metadata of the window's artifact: its PII marks (``pii``, ``handled``,
            ``sha256``, see :func:`refit.privacy.check_pii_handled`); None: none.
        trainer: Name of a registered trainer.
        params: Trainer hyper-parameters.
        seed: Seed for the split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Time column, excluded from the features.
        task: ``auto``, ``classification`` or ``regression``.
        device: ``auto``, ``cpu`` or ``cuda``.
        checkpoint_uri: Folder or ``gs://`` prefix for boosting checkpoints (a retry with the
            same one resumes); ``""`` turns them off.
        checkpoint_every: Boosting rounds between checkpoints.
        price_per_hour: Price per hour of the node profile, for the model card's cost.
        node_profile: Name of the node profile, for the model card.

    Returns:
        The model file's sha256, the row counts, the device, the resumed round, the card and
        the audit summary.

    Raises:
        SchemaError: ``params`` is not a dict.
        PrivacyError: The data holds a column its artifact marks ``pii`` that no
            ``anonymize_data`` step handled for these bytes (see ``refit.privacy``).
    """
    params = dict_param(params, "params")
    started = time.perf_counter()
    data_sha256 = hashlib.sha256(Path(snapshot_path).read_bytes()).hexdigest()
    table = read_table(snapshot_path)
    check_pii_handled(data_metadata, data_sha256, table.column_names)
    train_rows, holdout_rows = split_holdout(table, holdout_fraction, seed)
    exclude = (time_column,) if time_column else ()
    model = train(
        train_rows,
        label_column,
        trainer=trainer,
        params=params,
        seed=seed,
        exclude=exclude,
        task=task,
        device=device,
        checkpoint_dir=(checkpoint_uri or None) if get_trainer(trainer).fit else None,
        checkpoint_every=checkpoint_every,
    )
    metrics = validation_metrics(model, holdout_rows)
    card = build_model_card(
        model,
        train_rows,
        data_sha256=data_sha256,
        wall_time_s=time.perf_counter() - started,
        price_per_hour=price_per_hour,
        node_profile=node_profile,
        metrics=metrics,
        metrics_source=f"the seeded holdout, {holdout_rows.num_rows} rows",
    )
    artifact = save_model(model, model_dir, card=card)
    write_parquet(holdout_rows, holdout_path)
    return TrainOutput(
        sha256=artifact.sha256,
        train_rows=train_rows.num_rows,
        holdout_rows=holdout_rows.num_rows,
        trainer=trainer,
        device=model.device,
        resumed_from_round=model.resumed_from_round,
        card=card,
        card_markdown=render_model_card(card),
        audit={
            "trainer": trainer,
            "params": params,
            "sha256": artifact.sha256,
            "train_rows": train_rows.num_rows,
            "device": model.device,
            "resumed_from_round": model.resumed_from_round,
            "wall_time_s": card["wall_time_s"],
            "cost": card["cost"],
        },
    )
