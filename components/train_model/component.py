"""KFP component: train a challenger (scikit-learn or XGBoost) in a safe model format."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_model(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    target: str,
    model: Output[Model],
    holdout: Output[Dataset],
    trainer: str = "xgboost",
    params_json: str = "{}",
    seed: int = 0,
    holdout_fraction: float = 0.25,
    time_column: str = "",
    run_label: str = "",
) -> str:
    """Train a challenger on the window minus a seeded holdout, saved in a safe format.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model the challenger is for.
        target: Label column.
        trainer: Registered trainer: xgboost, random_forest or logistic_regression.
        params_json: Trainer hyper-parameters (JSON).
        seed: Seed of the holdout split and the trainer.
        holdout_fraction: Share of rows held out for evaluation.
        time_column: Event-time column, excluded from the features.
        run_label: Label of this run in the audit log.

    Returns:
        model: Model folder: UBJSON (XGBoost) or skops file plus model.json with its sha256.
        holdout: The held-out rows (Parquet).
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
    )
    model.metadata.update({"sha256": out.sha256, "trainer": out.trainer})
    holdout.metadata["rows"] = out.holdout_rows
    return out.sha256
