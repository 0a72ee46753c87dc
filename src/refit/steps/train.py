"""The training step: a challenger on the window, minus a seeded holdout."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, SchemaError
from refit.io import uri as uri_io
from refit.io.tables import read_table, write_parquet
from refit.privacy import check_pii_handled
from refit.steps.common import dict_param
from refit.training.artifacts import load_model, read_metadata, save_model
from refit.training.card import build_model_card, render_model_card, validation_metrics
from refit.training.trainers import TrainedModel, get_trainer, train
from refit.training.window import (
    TrainingWindow,
    WindowPart,
    combine_windows,
    load_earlier_windows,
)

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


#: How the training step holds rows out for evaluation (its ``holdout_split``).
HOLDOUT_SPLITS = ("random", "time")


def split_holdout_by_time(
    table: pa.Table, fraction: float, time_column: str
) -> tuple[pa.Table, pa.Table]:
    """Hold out the window's latest rows (out-of-time), the rest for training.

    Rows are ordered by ``time_column`` (a stable sort: rows with equal times keep their
    order), and the last ``fraction`` of them are held out: the model is then judged on data
    later than any it trained on, as it will be used.

    Args:
        table: Rows to split.
        fraction: Share of rows held out, in (0, 1).
        time_column: The column ordering the rows.

    Returns:
        The training rows and the holdout rows, each in time order.

    Raises:
        DataError: The fraction is out of range or leaves a side empty, or the time column
            is missing, unordered or has missing values.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout_fraction must be in (0, 1), got {fraction}")
    if time_column not in table.column_names:
        raise DataError(
            f"holdout_split 'time' needs time column {time_column!r}, which is not in the "
            f"window (columns: {table.column_names})"
        )
    column = table.column(time_column)
    if column.null_count:
        raise DataError(
            f"holdout_split 'time': time column {time_column!r} has {column.null_count} "
            "missing value(s), which have no place in time"
        )
    n_holdout = int(round(table.num_rows * fraction))
    if n_holdout < 1 or n_holdout >= table.num_rows:
        raise DataError(
            f"holdout_fraction {fraction} of {table.num_rows} rows leaves an empty side"
        )
    try:
        order = pc.sort_indices(table, sort_keys=[(time_column, "ascending")])
    except pa.ArrowNotImplementedError as exc:
        raise DataError(
            f"holdout_split 'time': time column {time_column!r} has type {column.type}, "
            "which has no order"
        ) from exc
    cut = table.num_rows - n_holdout
    return table.take(order[:cut]), table.take(order[cut:])


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
    holdout_split: str = "random",
    earlier_path: str | None = None,
    earlier_metadata: Mapping[str, Any] | None = None,
    warm_start: bool = False,
    baseline_model_dir: str | None = None,
) -> TrainOutput:
    """Train a challenger on a window, keeping a seeded holdout for its evaluation.

    A function of its inputs alone: no store is read or written. The audit summary comes back
    in :attr:`TrainOutput.audit` for a stateful step to record.

    Args:
        snapshot_path: The training window's snapshot (a Parquet file).
        label_column: Label column.
        model_dir: Folder the model (safe format + ``model.json``) is written to.
        holdout_path: Parquet file the holdout rows are written to.
        data_metadata: Metadata of the snapshot's artifact: its PII marks (``pii``, ``handled``,
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
        holdout_split: ``random`` (a seeded random ``holdout_fraction`` of the window) or
            ``time`` (out-of-time: the window's latest ``holdout_fraction`` of rows by
            ``time_column``, see :func:`split_holdout_by_time`).
        earlier_path: Parquet file of the earlier windows' rows that the training-window
            policy picked (:func:`select_training_windows`), or None: the current window only.
            They train the model beside the current window's training rows; the holdout
            always comes from the current window.
        earlier_metadata: That file's metadata (:meth:`TrainingWindowsOutput.record`: the
            policy and the windows), which gives each row its recency weight.
        warm_start: Continue boosting from the champion (``baseline_model_dir``) instead of
            starting afresh (XGBoost only; refused when its features or classes differ from
            the data's). Without a champion (the first run) the model trains from scratch and
            the card says so.
        baseline_model_dir: The champion's model folder, or None.

    Returns:
        The model file's sha256, the row counts, the device, the resumed round, the card and
        the audit summary.

    Raises:
        SchemaError: ``params`` is not a dict.
        PrivacyError: The data holds a column its artifact marks ``pii`` that no
            ``anonymize_data`` step handled for these bytes (see ``refit.privacy``).
    """
    params = dict_param(params, "params")
    policy, earlier = windows_from_record(earlier_metadata)
    if holdout_split not in HOLDOUT_SPLITS:
        raise SchemaError(f"holdout_split {holdout_split!r} is not one of {list(HOLDOUT_SPLITS)}")
    if holdout_split == "time" and not time_column:
        raise SchemaError("holdout_split 'time' needs a time_column")
    started = time.perf_counter()
    data_sha256 = hashlib.sha256(Path(snapshot_path).read_bytes()).hexdigest()
    table = read_table(snapshot_path)
    check_pii_handled(data_metadata, data_sha256, table.column_names)
    if holdout_split == "time":
        train_rows, holdout_rows = split_holdout_by_time(table, holdout_fraction, time_column)
    else:
        train_rows, holdout_rows = split_holdout(table, holdout_fraction, seed)
    earlier_rows = read_table(earlier_path) if earlier_path and earlier else None
    parts, train_rows, weights = combine_windows(
        policy, earlier, earlier_rows, train_rows, data_sha256
    )
    champion = champion_sha256 = None
    if warm_start and baseline_model_dir:
        champion = load_model(baseline_model_dir)  # checks the file's sha256
        champion_sha256 = str(read_metadata(baseline_model_dir)["sha256"])
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
        sample_weight=weights,
        init_model=champion,
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
        metrics_source=(
            f"the out-of-time holdout (the latest {holdout_rows.num_rows} rows by {time_column})"
            if holdout_split == "time"
            else f"the seeded holdout, {holdout_rows.num_rows} rows"
        ),
    )
    card["training_data"] = training_data_record(
        policy, parts, holdout_split, holdout_rows, time_column, warm_start, champion_sha256, model
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
            "training_data": card["training_data"],
        },
    )


@dataclass
class TrainingWindowsOutput:
    """What ``select_training_windows`` reports.

    Attributes:
        policy: The training-window policy it applied.
        windows: The earlier windows it picked, oldest first.
        rows: Their rows in all.
    """

    policy: TrainingWindow
    windows: list[WindowPart]
    rows: int

    def record(self) -> dict[str, Any]:
        """The metadata of its KFP artifact: ``policy`` and ``windows`` (JSON text), ``rows``."""
        return {
            "policy": json.dumps(self.policy.to_dict(), sort_keys=True),
            "windows": json.dumps([w.to_dict() for w in self.windows], sort_keys=True),
            "rows": self.rows,
        }


def windows_from_record(
    metadata: Mapping[str, Any] | None,
) -> tuple[TrainingWindow, list[WindowPart]]:
    """Read :meth:`TrainingWindowsOutput.record` back (None: the current window only).

    Raises:
        SchemaError: The policy is invalid. DataError: a window record is.
    """
    if not metadata or "policy" not in metadata:
        return TrainingWindow(), []

    def loaded(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    policy = TrainingWindow.from_dict(loaded(metadata["policy"]))
    windows = [WindowPart.from_dict(w) for w in loaded(metadata.get("windows")) or []]
    return policy, windows


def select_training_windows(
    window_path: str,
    output_path: str,
    *,
    store_uri: str,
    model_name: str,
    training_window: Mapping[str, Any] | None = None,
    data_metadata: Mapping[str, Any] | None = None,
) -> TrainingWindowsOutput:
    """Pick the earlier windows a challenger trains on, and write their rows for training.

    The training-window policy (:class:`refit.training.window.TrainingWindow`) reads back
    through the model's stored snapshots (the ones its runs trained from, in the audit log's
    order, before the current window's first run): each is loaded by its content address
    (sha256 checked), checked for unhandled PII and given the current window's columns and
    types. Stateful (it reads the store), so KFP must not cache it; the training step stays
    pure and gets the rows as an input artifact.

    Args:
        window_path: The current window's snapshot (a Parquet file).
        output_path: Where the earlier windows' rows are written (Parquet, oldest first; no
            rows when the policy reads none).
        store_uri: Root of refit's store.
        model_name: The model whose windows are read.
        training_window: The policy as a dict (``windows``, ``since``,
            ``recency_half_life``); None or ``{}``: the current window only.
        data_metadata: The current window's artifact metadata (its ``pii`` marks apply to
            the earlier windows too).

    Returns:
        The policy, the windows picked and their row count.

    Raises:
        SchemaError: The policy is invalid. DataError: an earlier window does not fit the
            current one. PrivacyError: it holds PII its anonymization left unhandled.
    """
    policy = TrainingWindow.from_dict(dict_param(training_window, "training_window"))
    data = uri_io.read_bytes(window_path)
    current = read_table(window_path)
    parts, rows = load_earlier_windows(
        policy,
        hashlib.sha256(data).hexdigest(),
        current.schema,
        store_uri=store_uri,
        model_name=model_name,
        current_pii=list((data_metadata or {}).get("pii") or []),
    )
    write_parquet(rows, output_path)
    return TrainingWindowsOutput(policy=policy, windows=parts, rows=rows.num_rows)


def training_data_record(
    policy: TrainingWindow,
    parts: list[WindowPart],
    holdout_split: str,
    holdout_rows: pa.Table,
    time_column: str,
    warm_start: bool,
    champion_sha256: str | None,
    model: TrainedModel,
) -> dict[str, Any]:
    """What the model trained on, for its card, the audit log and the registry's lineage.

    Returns:
        ``policy`` (the training-window policy), ``windows`` (each window's snapshot sha256,
        rows, age, weight, time and run, oldest first), ``holdout`` (split, rows, and for a
        time split its column and first held-out time) and ``warm_start`` (requested, and
        from what: the champion's sha256 and boosting rounds, or why not).
    """
    holdout: dict[str, Any] = {"split": holdout_split, "rows": holdout_rows.num_rows}
    if holdout_split == "time" and holdout_rows.num_rows:
        first = holdout_rows.column(time_column)[0].as_py()
        holdout.update({"time_column": time_column, "from": str(first)})
    warm: dict[str, Any] = {"requested": warm_start}
    if warm_start and champion_sha256 is None:
        warm["note"] = "no champion yet: trained from scratch"
    elif champion_sha256 is not None:
        warm.update({"from_sha256": champion_sha256, **model.info.get("warm_start", {})})
    return {
        "policy": policy.to_dict(),
        "windows": [p.to_dict() for p in parts],
        "holdout": holdout,
        "warm_start": warm,
    }
