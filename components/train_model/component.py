"""KFP component: train a challenger (scikit-learn or XGBoost) in a safe model format."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_model(
    snapshot: Input[Dataset],
    label_column: str,
    model: Output[Model],
    holdout: Output[Dataset],
    card: Output[Markdown],
    trainer: str = "xgboost",
    params: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    task: str = "auto",
    device: str = "auto",
    checkpoint_uri: str = "auto",
    checkpoint_every: int = 25,
    price_per_hour: float = 0.0,
    node_profile: str = "",
    distributed: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    holdout_split: str = "random",
    earlier: Input[Dataset] = None,
    warm_start: bool = False,
    baseline_model: Input[Model] = None,
):
    """Train a challenger on the window minus a seeded holdout, saved in a safe format.

    A function of its inputs alone (no store): KFP may cache it. XGBoost checkpoints every few
    rounds; a retry of this task (after a pre-emption) resumes from the last checkpoint. Columns
    the snapshot's artifact marks "pii" (snapshot_data's metadata) must have been handled by
    anonymize_data (its output's metadata says which), or training refuses them.

    Args:
        snapshot: The window's snapshot (Parquet); its metadata's pii, handled and sha256 are
            checked.
        label_column: Label column.
        trainer: Registered trainer: xgboost, hist_gradient_boosting, random_forest or
            logistic_regression.
        params: Trainer hyper-parameters (a dict).
        seed: Seed of the holdout split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Event-time column, excluded from the features.
        task: auto, classification or regression.
        device: auto (CUDA when a GPU is visible), cpu or cuda (fails without a GPU).
        checkpoint_uri: Folder or gs:// prefix for XGBoost checkpoints; "auto" puts them beside
            the output model (its URI or path plus ".checkpoints", the same on each retry of
            the task); "" turns them off.
        checkpoint_every: Boosting rounds between checkpoints.
        price_per_hour: Price per hour of the node profile (model card cost).
        node_profile: Name of the node profile the task runs on (model card).
        distributed: Empty: train here, in one process. Otherwise XGBoost trains across
            workers that each read only their own row groups of the snapshot: {"executor":
            "trainjob", "namespace": ..., "allowed_namespaces": [...], "num_nodes": N,
            "profile": {node profile fields}, "deadline_s": ..., "delete": true} runs a
            Kubeflow Trainer TrainJob on the xgboost-distributed runtime in refit's image
            (one worker per node, or per GPU) and waits for it; {"executor": "local",
            "workers": N} runs N local processes. The holdout is then a folder of Parquet
            parts, one per worker.
        holdout_split: random (a seeded share of the window) or time (out-of-time: the
            window's latest rows by time_column are held out).
        earlier: Earlier windows' rows from select_training_windows (optional): they train
            the model beside the window's training rows, weighted by recency as its metadata's
            policy says; the holdout always comes from the window.
        warm_start: Continue boosting from baseline_model (the champion; XGBoost only,
            refused when its features or classes differ); without a champion, from scratch.
        baseline_model: The champion (resolve_champion's, may be absent); read only with
            warm_start.

    Returns:
        model: Model folder: UBJSON (XGBoost) or skops file plus model.json with its sha256,
            device, resumed_from_round and model card; its metadata holds sha256, trainer,
            device, resumed_from_round, wall_time_s, cost and audit (JSON: the training summary
            record_results appends to the audit log).
        holdout: The held-out rows (Parquet).
        card: Model card: data hash, training windows and weights, holdout split, warm
            start, features, parameters, holdout metrics, device, wall time, cost.
    """
    import json

    from refit import steps

    champion = None
    if baseline_model is not None and not baseline_model.metadata.get("absent"):
        champion = baseline_model.path
    if checkpoint_uri == steps.AUTO_CHECKPOINTS:
        checkpoint_uri = steps.checkpoint_location(model.uri, model.path)
    # what both executors take
    common = {
        "data_metadata": snapshot.metadata,
        "trainer": trainer,
        "params": params,
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "time_column": time_column,
        "task": task,
        "checkpoint_uri": checkpoint_uri,
        "checkpoint_every": checkpoint_every,
        "price_per_hour": price_per_hour,
        "node_profile": node_profile,
        "holdout_split": holdout_split,
        "earlier_metadata": earlier.metadata if earlier is not None else None,
        "warm_start": warm_start,
    }
    if distributed:
        from refit.images import component_image as _image

        out = steps.train_model_distributed(
            snapshot.uri,
            label_column,
            model.uri,
            model.path,
            holdout.path,
            distributed=distributed,
            image=_image(),
            **common,
        )
    else:
        out = steps.train_model(
            snapshot.path,
            label_column,
            model.path,
            holdout.path,
            device=device,
            earlier_path=earlier.path if earlier is not None else None,
            baseline_model_dir=champion,
            **common,
        )
    model.metadata.update(
        {
            "sha256": out.sha256,
            "trainer": out.trainer,
            "device": out.device,
            "resumed_from_round": out.resumed_from_round,
            "wall_time_s": out.card["wall_time_s"],
            "cost": out.card["cost"],
            "audit": json.dumps(out.audit, sort_keys=True),
        }
    )
    holdout.metadata["rows"] = out.holdout_rows
    with open(card.path, "w", encoding="utf-8") as handle:
        handle.write(out.card_markdown)
