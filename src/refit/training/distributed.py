"""Distributed XGBoost: the worker a Kubeflow Trainer TrainJob runs, one per node or GPU.

The ``xgboost-distributed`` ClusterTrainingRuntime starts ``numNodes`` pods and injects
``DMLC_TRACKER_URI``, ``DMLC_TRACKER_PORT``, ``DMLC_TASK_ID`` and ``DMLC_NUM_WORKER`` into each
(`refit.training.distributed_plan.RESERVED_ENV`). Every worker here:

1. plans the shards from the snapshot's Parquet footers alone (`plan_shards`: whole row groups,
   contiguous, balanced by rows) and reads only its own (`read_shard`), never the whole snapshot;
2. joins XGBoost's collective (``xgboost.collective.CommunicatorContext``); worker 0 first
   starts ``xgboost.tracker.RabitTracker`` on the tracker port;
3. agrees with the others on one feature encoding (classes and categorical vocabularies merged
   over all shards, `refit.training.distributed_spec.merge_summaries`) and on the holdout
   rule, a seeded hash of the global row number (`holdout_mask`), so every row lands on the same
   side whichever worker reads it;
4. trains the ``hist`` booster collectively (histograms are all-reduced: the model is one
   model, the same on every worker), checkpointing every few rounds from worker 0 into
   ``checkpoint_uri`` (:class:`refit.training.checkpoint.CheckpointStore`); a rerun after a
   pre-empted worker resumes from the last checkpoint, which worker 0 reads and broadcasts;
5. writes its holdout rows to ``holdout_uri/part-RANK.parquet``; worker 0 writes the model in
   refit's safe format with its card (nodes, workers, rows per worker, wall time, cost).

Shards, the holdout rule and the config are in `refit.training.distributed_plan`. The same
protocol runs as N local processes on loopback (`refit.training.distributed_local.run_local`),
which is how it is tested and benchmarked, and how a GPU node runs one worker per GPU. Peers
exchange only JSON text and model bytes through the collective.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError, TrainingError
from refit.io import uri as uri_io
from refit.io.tables import write_parquet
from refit.training.distributed_plan import (
    DistributedConfig,
    DmlcEnv,
    holdout_mask,
    plan_shards,
    read_shard,
)
from refit.training.distributed_spec import local_summary, merge_summaries

__all__ = ["WorkerResult", "main", "run_worker"]

logger = logging.getLogger("refit.training")


@dataclass
class WorkerResult:
    """What one worker did (``report_uri/worker-RANK.json``; worker 0's also in the card).

    Attributes:
        rank: The worker.
        world: Number of workers.
        units: Its row groups, as ``[source, row_group, first_row, rows]``.
        rows_read: Rows it read.
        train_rows: Rows it trained on.
        holdout_rows: Rows it held out.
        resumed_from_round: Rounds taken from a checkpoint.
        rounds: Rounds the model holds.
        sha256: Model file's sha256 (worker 0), else "".
        wall_time_s: Seconds from start to model written.
        peak_rss_mb: Peak resident memory of the worker process (VmHWM), in MiB.
    """

    rank: int
    world: int
    units: list[list[Any]]
    rows_read: int
    train_rows: int
    holdout_rows: int
    resumed_from_round: int
    rounds: int
    sha256: str = ""
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _allgather_text(text: str, world: int) -> list[str]:
    """Every worker's string, in rank order (one broadcast per rank)."""
    from xgboost import collective

    rank = collective.get_rank()
    return [str(collective.broadcast(text if r == rank else None, r)) for r in range(world)]


# --------------------------------------------------------------------------- the worker


def _start_tracker(env: DmlcEnv, timeout_s: int) -> Any:
    from xgboost.tracker import RabitTracker

    try:
        host = socket.gethostbyname(env.tracker_uri)
    except OSError as exc:
        raise TrainingError(
            f"worker 0 cannot resolve DMLC_TRACKER_URI {env.tracker_uri!r}: {exc}"
        ) from exc
    tracker = RabitTracker(
        n_workers=env.num_worker,
        host_ip=host,
        port=env.tracker_port,
        sortby="task",
        timeout=timeout_s,
    )
    tracker.start()
    return tracker


def _write_json(uri: str, data: Mapping[str, Any]) -> None:
    uri_io.write_bytes(uri, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


def _save_model_to(model: Any, model_uri: str, card: dict[str, Any]) -> Any:
    from refit.training.artifacts import save_model

    if not uri_io.is_gcs(model_uri):
        return save_model(model, str(uri_io.local_path(model_uri)), card=card)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = save_model(model, tmp, card=card)
        for path in sorted(Path(tmp).iterdir()):
            uri_io.write_bytes(uri_io.join(model_uri, path.name), path.read_bytes())
    return artifact


def run_worker(config: DistributedConfig, env: DmlcEnv) -> WorkerResult:
    """Run one worker of a distributed training (see the module docstring).

    Args:
        config: The training.
        env: This worker's ``DMLC_*`` variables.

    Returns:
        What this worker did.

    Raises:
        TrainingError, DataError: Bad input or a failed peer; the message names which.
    """
    from xgboost import collective

    from refit.training.features import encode, encode_target

    started = time.perf_counter()
    config.check()
    # Worker 0 starts the tracker first: the others retry their connection with back-off.
    tracker = _start_tracker(env, config.timeout_s) if env.task_id == 0 else None
    params = _worker_params(config)
    shard = plan_shards(config.snapshot, env.num_worker)[env.task_id]
    table = read_shard(shard)
    held = holdout_mask(shard.global_rows(), float(config.holdout_fraction), config.seed)
    train_rows = table.filter(pa.array(~held))
    holdout_rows = table.filter(pa.array(held))

    with collective.CommunicatorContext(**_communicator(config, env)):
        world, rank = _check_rank(env)
        summaries = [
            json.loads(s)
            for s in _allgather_text(json.dumps(local_summary(train_rows, config)), world)
        ]
        spec = merge_summaries(summaries, config.label_column, task=config.task)
        X = encode(train_rows, spec)
        y = encode_target(train_rows, spec)
        fit = _fit_collectively(config, params, spec, X, y, rank, world)
        counts = {
            "rank": rank,
            "train_rows": int(X.shape[0]),
            "holdout_rows": holdout_rows.num_rows,
            "rows_read": table.num_rows,
        }
        results = [json.loads(s) for s in _allgather_text(json.dumps(counts), world)]

    write_parquet(holdout_rows, uri_io.join(config.holdout_uri, f"part-{rank:05d}.parquet"))
    sha256 = ""
    if rank == 0:
        if tracker is not None:
            tracker.wait_for(config.timeout_s)
        sha256 = _save_worker0_model(config, fit, train_rows, holdout_rows, results, started)
    result = WorkerResult(
        rank=rank,
        world=world,
        units=[[u.source, u.row_group, u.first_row, u.rows] for u in shard.units],
        rows_read=table.num_rows,
        train_rows=int(X.shape[0]),
        holdout_rows=holdout_rows.num_rows,
        resumed_from_round=fit.resumed,
        rounds=fit.rounds,
        sha256=sha256,
        wall_time_s=round(time.perf_counter() - started, 3),
        peak_rss_mb=_peak_rss_mb(),
    )
    if config.report_uri:
        _write_json(uri_io.join(config.report_uri, f"worker-{rank:05d}.json"), asdict(result))
    return result


def _worker_params(config: DistributedConfig) -> dict[str, Any]:
    """The xgboost trainer's parameters, checked; early stopping is refused."""
    from refit.training.trainers import resolve_params
    from refit.training.xgboost_trainer import _check_params

    params = resolve_params("xgboost", config.params)
    _check_params(params)
    if params.get("early_stopping_rounds") is not None:
        raise TrainingError(
            "distributed training does not take 'early_stopping_rounds': set n_estimators"
        )
    return params


def _communicator(config: DistributedConfig, env: DmlcEnv) -> dict[str, Any]:
    """The arguments of XGBoost's ``CommunicatorContext`` for this worker."""
    return {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": env.tracker_uri,
        "dmlc_tracker_port": env.tracker_port,
        "dmlc_task_id": str(env.task_id),
        "dmlc_retry": 30,
        "dmlc_timeout": config.timeout_s,
    }


def _check_rank(env: DmlcEnv) -> tuple[int, int]:
    """The collective's world size and this worker's rank, which must be the env's."""
    from xgboost import collective

    world = collective.get_world_size()
    rank = collective.get_rank()
    if world != env.num_worker or rank != env.task_id:
        raise TrainingError(
            f"collective gave rank {rank} of {world}, expected {env.task_id} of "
            f"{env.num_worker}: another training uses the same tracker port?"
        )
    return world, rank


@dataclass
class _Fit:
    """The collectively trained booster and how it came about (worker 0 writes it)."""

    estimator: Any
    spec: Any
    params: dict[str, Any]
    total: int
    resumed: int
    rounds: int
    written: list[int]


def _fit_collectively(
    config: DistributedConfig,
    params: dict[str, Any],
    spec: Any,
    X: Any,
    y: np.ndarray,
    rank: int,
    world: int,
) -> _Fit:
    """Train the booster with the others, resuming from worker 0's checkpoint when one fits.

    Raises:
        TrainingError: XGBoost failed (a peer that went away included).
    """
    from refit.training.checkpoint import CheckpointStore, training_fingerprint
    from refit.training.xgboost_trainer import build_xgboost

    weights = _class_weight_vector(params, spec, y)
    total = int(params["n_estimators"])
    fingerprints = _allgather_text(
        training_fingerprint(
            X, y, trainer="xgboost", task=spec.task, params=params, seed=config.seed
        ),
        world,
    )
    fingerprint = hashlib.sha256("".join(fingerprints).encode()).hexdigest()
    store = CheckpointStore(config.checkpoint_uri, fingerprint) if config.checkpoint_uri else None
    resumed, booster = _resume(store if rank == 0 else None, rank, total)
    written: list[int] = []
    estimator = build_xgboost(
        {**params, "n_estimators": total - resumed}, config.seed, spec.n_classes, config.device
    )
    saver = store if rank == 0 else None
    estimator.set_params(callbacks=[_checkpoints(saver, config.checkpoint_every, total, written)])
    fit_kwargs: dict[str, Any] = {"verbose": False}
    if booster is not None:
        fit_kwargs["xgb_model"] = booster
    if weights is not None:
        fit_kwargs["sample_weight"] = weights
    try:
        estimator.fit(X, y, **fit_kwargs)
    except ValueError as exc:  # XGBoostError, including a peer that went away
        raise TrainingError(f"worker {rank}: distributed training failed: {exc}") from exc
    estimator.set_params(callbacks=None, device="cpu", n_estimators=total)
    rounds = int(estimator.get_booster().num_boosted_rounds())
    return _Fit(estimator, spec, params, total, resumed, rounds, written)


def _class_weight_vector(params: Mapping[str, Any], spec: Any, y: np.ndarray) -> Any:
    """Per-row weights from ``class_weight`` ("balanced": from the counts over all workers)."""
    if params.get("class_weight") is None:
        return None
    from xgboost import collective

    from refit.training.trainers import _class_weights

    cw = _class_weights(params["class_weight"], spec, "xgboost")
    if cw == "balanced":
        counts = np.bincount(y.astype(np.int64), minlength=spec.n_classes)
        counts = collective.allreduce(counts.astype(np.float64), collective.Op.SUM)
        cw = {i: float(counts.sum() / (spec.n_classes * c)) for i, c in enumerate(counts) if c}
    assert isinstance(cw, dict)  # class_weight is set, and "balanced" became a dict
    return np.array([cw.get(int(v), 1.0) for v in y], dtype=np.float64)


def _resume(store: Any, rank: int, total: int) -> tuple[int, Any]:
    """The round to resume from and its booster, the same on every worker.

    Worker 0 reads the checkpoint (``store``; the others pass None) and broadcasts it.
    """
    from xgboost import collective

    from refit.training.checkpoint import Checkpoint, load_booster

    payload = ""
    if store is not None:
        checkpoint = store.latest()
        if checkpoint is not None and 0 < checkpoint.round < total:
            payload = json.dumps(
                {"round": checkpoint.round, "ubj": base64.b64encode(checkpoint.data).decode()}
            )
    resume = json.loads(str(collective.broadcast(payload or "{}", 0)))
    resumed = int(resume.get("round", 0))
    if not resumed:
        return 0, None
    data = base64.b64decode(resume["ubj"])
    booster = load_booster(
        Checkpoint(round=resumed, data=data, sha256=hashlib.sha256(data).hexdigest())
    )
    logger.info("worker %d resumes from the checkpoint at round %d of %d", rank, resumed, total)
    return resumed, booster


def _checkpoints(store: Any, every: int, total: int, written: list[int]) -> Any:
    """An XGBoost callback saving a checkpoint every ``every`` rounds to ``store`` (None: none)."""
    from xgboost.callback import TrainingCallback

    class _Checkpoints(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            done = model.num_boosted_rounds()
            if store is not None and done % every == 0 and done < total:
                store.save(done, bytes(model.save_raw("ubj")), total_rounds=total)
                written.append(done)
            return False

    return _Checkpoints()


def _save_worker0_model(
    config: DistributedConfig,
    fit: _Fit,
    train_rows: pa.Table,
    holdout_rows: pa.Table,
    results: list[dict[str, Any]],
    started: float,
) -> str:
    """Worker 0: write the model in refit's safe format with its card; return its sha256."""
    from refit.training.card import build_model_card, validation_metrics
    from refit.training.device import DeviceChoice
    from refit.training.trainers import TrainedModel

    model = TrainedModel(
        estimator=fit.estimator,
        spec=fit.spec,
        trainer="xgboost",
        params=fit.params,
        seed=config.seed,
        device=config.device,
        resumed_from_round=fit.resumed,
        info={
            "task": fit.spec.task,
            "device": config.device,
            "device_requested": config.device,
            "device_reason": DeviceChoice(config.device, config.device, "distributed").reason,
            "train_rows": sum(r["train_rows"] for r in results),
            "rounds": fit.rounds,
            "total_rounds": fit.total,
            "resumed_from_round": fit.resumed,
            "checkpoints_written": len(fit.written),
        },
    )
    metrics = validation_metrics(model, holdout_rows) if holdout_rows.num_rows else {}
    wall = time.perf_counter() - started
    card = build_model_card(
        model,
        train_rows,
        data_sha256=config.data_sha256,
        wall_time_s=wall,
        price_per_hour=config.price_per_hour * config.nodes,
        node_profile=config.node_profile,
        metrics=metrics,
        metrics_source=(
            f"worker 0's holdout rows ({holdout_rows.num_rows} of "
            f"{sum(r['holdout_rows'] for r in results)}; evaluate_model scores all)"
        ),
    )
    card["distributed"] = {
        "runtime": "xgboost-distributed",
        "nodes": config.nodes,
        "workers": len(results),
        "workers_per_node": config.workers_per_node,
        "price_per_node_hour": float(config.price_per_hour),
        "workers_rows": results,
    }
    return str(_save_model_to(model, config.model_uri, card).sha256)


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """The TrainJob's command: ``python -m refit.training.distributed --config JSON``.

    With ``workers_per_node`` above 1 (one worker per GPU), this node starts that many local
    workers, ranks ``DMLC_TASK_ID * workers_per_node + i``, one GPU each; otherwise it is the
    worker itself.
    """
    parser = argparse.ArgumentParser(prog="python -m refit.training.distributed")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="the DistributedConfig as JSON")
    group.add_argument("--config-file", help="a file holding the DistributedConfig JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        text = args.config if args.config is not None else Path(args.config_file).read_text()
        config = DistributedConfig.from_json(text)
        env = DmlcEnv.from_environ()
        if config.workers_per_node > 1 and "REFIT_DIST_LOCAL_RANK" not in os.environ:
            per = config.workers_per_node
            world = config.nodes * per
            # The runtime numbers nodes (DMLC_TASK_ID < nodes); DMLC_NUM_WORKER counts either
            # the nodes or, for one worker per GPU, the GPUs: both are accepted.
            if env.num_worker not in (config.nodes, world) or env.task_id >= config.nodes:
                raise TrainingError(
                    f"DMLC_NUM_WORKER={env.num_worker}, DMLC_TASK_ID={env.task_id} do not fit "
                    f"{config.nodes} node(s) of {per} worker(s)"
                )
            from refit.training.distributed_local import run_local

            run_local(
                config,
                per,
                tracker_uri=env.tracker_uri,
                tracker_port=env.tracker_port,
                first_rank=env.task_id * per,
                world=world,
                timeout_s=float(config.timeout_s) * 100,
                extra_env={"REFIT_DIST_LOCAL_RANK": "1"},
                gpus=list(range(per)) if config.device == "cuda" else (),
            )
            return 0
        result = run_worker(config, env)
    except (TrainingError, DataError, OSError) as exc:
        print(f"refit distributed worker: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
