"""The training step run distributed: a TrainJob on Kubeflow Trainer, or N local processes.

``train_model`` with a non-empty ``distributed`` parameter lands here. Two executors:

- ``trainjob`` (the cluster): a TrainJob on the ``xgboost-distributed`` runtime
  (:mod:`refit.training.trainjob`), whose workers read the snapshot's URI directly, each its
  own row groups, and write the model, their holdout parts and reports under a staging prefix
  beside the task's model (``MODEL_URI.trainjob/``); the step then copies the model and the
  holdout parts into its outputs. A retry of the task finds a still-running TrainJob of the
  same name and waits for it, or replaces a failed one; the workers resume from the last
  checkpoint.
- ``local``: the same workers as ``workers`` processes on loopback
  (:func:`refit.training.distributed_local.run_local`), writing straight into the outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from refit.errors import TrainingError
from refit.io import uri as uri_io
from refit.privacy import check_pii_handled
from refit.steps.common import dict_param
from refit.steps.train import TrainOutput, windows_from_record
from refit.training.card import render_model_card
from refit.training.distributed_local import run_local
from refit.training.distributed_plan import (
    DistributedConfig,
    plan_shards,
    snapshot_columns,
    snapshot_sha256,
)
from refit.training.trainers import resolve_params
from refit.training.trainjob import TrainJobOutcome, TrainJobRunner
from refit.training.trainjob_spec import TrainJobSettings, build_trainjob, trainjob_name
from refit.training.xgboost_trainer import _check_params

__all__ = ["EXECUTORS", "train_model_distributed"]

#: Where the workers run.
EXECUTORS = ("trainjob", "local")


def _copy_tree(source: str, dest: Path) -> list[str]:
    """Copy every object under a folder or prefix into a local folder (one object at a time)."""
    names = []
    dest.mkdir(parents=True, exist_ok=True)
    for uri in uri_io.list_prefix(source):
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        uri_io.write_file_atomic(dest / name, uri_io.read_bytes(uri))
        names.append(name)
    return names


def train_model_distributed(
    snapshot_uri: str,
    label_column: str,
    model_uri: str,
    model_path: str,
    holdout_path: str,
    *,
    distributed: Mapping[str, Any],
    data_metadata: Mapping[str, Any] | None = None,
    trainer: str = "xgboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    task: str = "auto",
    checkpoint_uri: str = "",
    checkpoint_every: int = 25,
    price_per_hour: float = 0.0,
    node_profile: str = "",
    image: str = "",
    runner: TrainJobRunner | None = None,
    holdout_split: str = "random",
    earlier_metadata: Mapping[str, Any] | None = None,
    warm_start: bool = False,
) -> TrainOutput:
    """Train XGBoost on the window across several workers; see the module docstring.

    Args:
        snapshot_uri: URI of the window's snapshot (a Parquet file or prefix; the workers read
            it).
        label_column: Label column.
        model_uri: URI of the task's model output (the staging prefix goes beside it).
        model_path: Local folder of the model output.
        holdout_path: Local folder the holdout parts are written to (one Parquet per worker;
            ``read_table`` reads the folder as one table).
        distributed: ``executor`` (``trainjob`` or ``local``) and its settings: for
            ``local``, ``workers``; for ``trainjob``, the fields of
            :class:`refit.training.trainjob_spec.TrainJobSettings` (``namespace``,
            ``allowed_namespaces``, ``num_nodes``, ``profile``, ``deadline_s``, ``delete``...).
        data_metadata: The snapshot artifact's metadata (PII marks, sha256).
        trainer: Must be ``xgboost`` (the only trainer with a collective).
        params: XGBoost parameters.
        seed: Seed of the holdout hash and the booster.
        holdout_fraction: Share of rows held out.
        time_column: Event-time column, excluded from the features.
        task: ``auto``, ``classification`` or ``regression``.
        checkpoint_uri: Checkpoint folder or prefix the workers share ("" none).
        checkpoint_every: Rounds between checkpoints.
        price_per_hour: Price of one node per hour (when the settings' profile has none).
        node_profile: Node profile name (when the settings' profile has none).
        image: refit's image for the TrainJob (``refit.images.component_image()``).
        runner: The TrainJob runner (tests pass one bound to their API server).
        holdout_split: Must be ``random`` (the workers hash rows into the holdout; an
            out-of-time split is single-process only, for now).
        earlier_metadata: The training-window task's record; it must pick no earlier windows
            (earlier windows are single-process only, for now).
        warm_start: Must be false (warm start is single-process only, for now).

    Returns:
        What ``train_model`` returns; the card and audit carry the nodes and workers.

    Raises:
        TrainingError: Bad settings; refused before any write (namespace, runtime); the job
            failed or ran past its deadline.
        PrivacyError: PII the window's marks say is unhandled.
    """
    settings_in = dict_param(distributed, "distributed")
    executor = _check_request(settings_in, trainer, holdout_split, earlier_metadata, warm_start)
    params = _checked_params(params)
    data_sha256 = str((data_metadata or {}).get("sha256") or "") or snapshot_sha256(snapshot_uri)
    check_pii_handled(data_metadata, data_sha256, snapshot_columns(snapshot_uri))

    config = DistributedConfig(
        snapshot=snapshot_uri,
        label_column=label_column,
        model_uri=model_path,
        holdout_uri=holdout_path,
        report_uri="",
        params=params,
        seed=seed,
        holdout_fraction=holdout_fraction,
        time_column=time_column,
        task=task,
        checkpoint_uri=checkpoint_uri,
        checkpoint_every=checkpoint_every,
        price_per_hour=price_per_hour,
        node_profile=node_profile,
        data_sha256=data_sha256,
    )
    if executor == "local":
        engine = _run_local(config, settings_in, snapshot_uri, model_path)
    else:
        engine = _run_trainjob(
            config, settings_in, model_uri, model_path, holdout_path, image=image, runner=runner
        )
    return _train_output(model_path, engine, params)


def _check_request(
    settings_in: Mapping[str, Any],
    trainer: str,
    holdout_split: str,
    earlier_metadata: Mapping[str, Any] | None,
    warm_start: bool,
) -> str:
    """Refuse what distributed training does not do; return the executor.

    Raises:
        TrainingError: An option that is single-process only, another trainer than xgboost, or
            an unknown executor.
    """
    unsupported = [
        name
        for name, on in (
            ("holdout_split='time'", holdout_split != "random"),
            ("earlier windows (training_window)", bool(windows_from_record(earlier_metadata)[1])),
            ("warm_start", warm_start),
        )
        if on
    ]
    if unsupported:
        raise TrainingError(
            f"distributed training does not take {', '.join(unsupported)} yet: leave "
            "distributed empty to use them, or drop them to train across workers"
        )
    if trainer != "xgboost":
        raise TrainingError(
            f"distributed training runs the xgboost trainer only, not {trainer!r}: set "
            "trainer to xgboost or leave distributed empty"
        )
    executor = settings_in.get("executor", "trainjob")
    if executor not in EXECUTORS:
        raise TrainingError(f"distributed executor {executor!r} is not one of {list(EXECUTORS)}")
    return str(executor)


def _checked_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The XGBoost parameters as given, checked (early stopping is refused)."""
    params = dict_param(params, "params")
    resolved = resolve_params("xgboost", params)
    _check_params(resolved)
    if resolved.get("early_stopping_rounds") is not None:
        raise TrainingError(
            "distributed training does not take 'early_stopping_rounds' (each worker would "
            "stop on its own validation rows): set n_estimators"
        )
    return params


def _run_local(
    config: DistributedConfig, settings_in: Mapping[str, Any], snapshot_uri: str, model_path: str
) -> dict[str, Any]:
    """Run the workers as local processes writing straight into the outputs."""
    workers = settings_in.get("workers", 2)
    unknown = sorted(set(settings_in) - {"executor", "workers", "timeout_s"})
    if unknown:
        raise TrainingError(f"distributed settings of executor local: unknown {unknown}")
    config.nodes = 1
    config.workers_per_node = 1
    config.report_uri = model_path.rstrip("/") + ".workers"
    plan_shards(snapshot_uri, workers)  # refuse too few row groups before starting
    run_local(config, workers, timeout_s=float(settings_in.get("timeout_s", 3600)))
    return {"executor": "local", "workers": workers}


def _run_trainjob(
    config: DistributedConfig,
    settings_in: Mapping[str, Any],
    model_uri: str,
    model_path: str,
    holdout_path: str,
    *,
    image: str,
    runner: TrainJobRunner | None,
) -> dict[str, Any]:
    """Run (or, on a retry, wait for) the TrainJob, then copy its model and holdout here."""
    settings = TrainJobSettings.from_dict(settings_in)
    # the task's own price and profile name stand in where the settings' profile has none
    fill: dict[str, Any] = {
        key: value
        for key, value in (
            ("price_per_hour", config.price_per_hour),
            ("node_profile", config.node_profile),
        )
        if value and not getattr(settings, key)
    }
    settings = replace(settings, **fill)
    if not image:
        raise TrainingError("distributed executor trainjob needs refit's image")
    plan_shards(config.snapshot, settings.workers)  # refuse too few row groups before any write
    staging = model_uri.rstrip("/") + ".trainjob"
    config.model_uri = uri_io.join(staging, "model")
    config.holdout_uri = uri_io.join(staging, "holdout")
    config.report_uri = uri_io.join(staging, "workers")
    name = trainjob_name("refit-train", hashlib.sha256(model_uri.encode()).hexdigest()[:12])
    runner = runner or TrainJobRunner(settings)
    outcome = _run_or_rejoin(
        runner, name, build_trainjob(name, settings, image=image, config=config), settings
    )
    _copy_tree(config.model_uri, Path(model_path))
    _copy_tree(config.holdout_uri, Path(holdout_path))
    return {
        "executor": "trainjob",
        "trainjob": f"{settings.namespace}/{name}",
        "nodes": settings.num_nodes,
        "workers": settings.workers,
        "conditions": outcome.conditions,
        "deleted": outcome.deleted,
    }


def _run_or_rejoin(
    runner: TrainJobRunner, name: str, body: dict[str, Any], settings: TrainJobSettings
) -> TrainJobOutcome:
    """Start the TrainJob, or wait for the one an earlier attempt of this task started.

    A failed earlier job is replaced (its checkpoints remain).

    Raises:
        TrainingError: The job did not complete.
    """
    existing = runner.get(name)
    if existing is not None:
        conditions = (existing.get("status") or {}).get("conditions") or []
        failed = any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions)
        if failed:  # a failed attempt: replace it; its checkpoints remain
            runner.delete(name, wait=True)
            existing = None
    if existing is None:
        return runner.run(body)
    # a retry of this task: the job it started is still there
    runner.preflight()
    outcome = runner.wait(name)
    if settings.delete:
        outcome.deleted = runner.delete(name)
    if outcome.state != "Complete":
        raise TrainingError(
            f"TrainJob {settings.namespace}/{name} {outcome.state}: {outcome.describe()}"
        )
    return outcome


def _train_output(
    model_path: str, engine: Mapping[str, Any], params: dict[str, Any]
) -> TrainOutput:
    """What ``train_model`` returns, read from the model the workers wrote."""
    model_json = Path(model_path) / "model.json"
    if not model_json.is_file():
        raise TrainingError(f"distributed training wrote no model at {model_path}")
    meta = json.loads(model_json.read_text(encoding="utf-8"))
    card = dict(meta.get("card") or {})
    card.setdefault("distributed", {}).update(
        {k: v for k, v in engine.items() if k != "conditions"}
    )
    dist = card["distributed"]
    rows = dist.get("workers_rows") or []
    train_rows = sum(int(r["train_rows"]) for r in rows)
    holdout_rows = sum(int(r["holdout_rows"]) for r in rows)
    sha256 = str(meta["sha256"])
    return TrainOutput(
        sha256=sha256,
        train_rows=train_rows,
        holdout_rows=holdout_rows,
        trainer="xgboost",
        device=str(card.get("device", "cpu")),
        resumed_from_round=int(card.get("resumed_from_round") or 0),
        card=card,
        card_markdown=render_model_card(card),
        audit={
            "trainer": "xgboost",
            "params": params,
            "sha256": sha256,
            "train_rows": train_rows,
            "device": card.get("device", "cpu"),
            "resumed_from_round": int(card.get("resumed_from_round") or 0),
            "wall_time_s": card.get("wall_time_s"),
            "cost": card.get("cost"),
            "distributed": {k: v for k, v in dist.items() if k != "workers_rows"},
        },
    )
