"""KFP component: train a challenger (scikit-learn or XGBoost) in a safe model format."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_model(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    target: str,
    model: Output[Model],
    holdout: Output[Dataset],
    card: Output[Markdown],
    trainer: str = "xgboost",
    params_json: str = "{}",
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    run_label: str = "",
    task: str = "auto",
    device: str = "auto",
    checkpoint_uri: str = "auto",
    checkpoint_every: int = 25,
    price_per_hour: float = 0.0,
    node_profile: str = "",
) -> str:
    """Train a challenger on the window minus a seeded holdout, saved in a safe format.

    XGBoost checkpoints every few rounds; a retry of this task (after a pre-emption) resumes
    from the last checkpoint.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model the challenger is for.
        target: Label column.
        trainer: Registered trainer: xgboost, hist_gradient_boosting, random_forest or
            logistic_regression.
        params_json: Trainer hyper-parameters (JSON).
        seed: Seed of the holdout split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Event-time column, excluded from the features.
        run_label: Label of this run in the audit log.
        task: auto, classification or regression.
        device: auto (CUDA when a GPU is visible), cpu or cuda (fails without a GPU).
        checkpoint_uri: Folder or gs:// prefix for XGBoost checkpoints; "auto" puts them under
            the store, keyed by data, trainer and seed; "" turns them off.
        checkpoint_every: Boosting rounds between checkpoints.
        price_per_hour: Price per hour of the node profile (model card cost).
        node_profile: Name of the node profile the task runs on (model card).

    Returns:
        model: Model folder: UBJSON (XGBoost) or skops file plus model.json with its sha256,
            device, resumed_from_round and model card.
        holdout: The held-out rows (Parquet).
        card: Model card: data hash, features, parameters, holdout metrics, device, wall time,
            cost.
        Output: sha256 of the model file.
    """
    import json

    from refit import steps

    out = steps.train_model(
        snapshot.path,
        target,
        model.path,
        holdout.path,
        store_uri=store_uri,
        model_name=model_name,
        trainer=trainer,
        params=json.loads(params_json),
        seed=seed,
        holdout_fraction=holdout_fraction,
        time_column=time_column,
        run_label=run_label,
        task=task,
        device=device,
        checkpoint_uri=checkpoint_uri,
        checkpoint_every=checkpoint_every,
        price_per_hour=price_per_hour,
        node_profile=node_profile,
    )
    model.metadata.update(
        {
            "sha256": out.sha256,
            "trainer": out.trainer,
            "device": out.device,
            "resumed_from_round": out.resumed_from_round,
            "wall_time_s": out.card["wall_time_s"],
            "cost": out.card["cost"],
        }
    )
    holdout.metadata["rows"] = out.holdout_rows
    with open(card.path, "w", encoding="utf-8") as handle:
        handle.write(out.card_markdown)
    return out.sha256
