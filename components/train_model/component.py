"""KFP component: train a challenger (scikit-learn or XGBoost) in a safe model format."""

from typing import NamedTuple

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
) -> NamedTuple("Outputs", [("sha256", str)]):
    """Train on the snapshot minus a seeded holdout; the holdout goes to evaluation."""
    import json
    from collections import namedtuple

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
    return namedtuple("Outputs", ["sha256"])(out.sha256)
