"""The XGBoost trainer: ``tree_method="hist"`` on the CPU or a CUDA GPU.

Beyond a plain fit it brings:

- the device (``auto``/``cpu``/``cuda``, resolved by :mod:`refit.training.device`);
- early stopping on a seeded validation split (``early_stopping_rounds``,
  ``validation_fraction``); the saved model predicts with the best iteration;
- class weights (``class_weight``: ``"balanced"`` or ``{label: weight}``) as sample weights,
  besides XGBoost's own ``scale_pos_weight`` for binary targets;
- checkpoints every N rounds into a folder or ``gs://`` prefix, and resumption from the last
  one by continued training (``xgb_model=``). Trees are deterministic on the CPU, so a resumed
  run's model predicts what an uninterrupted run's does (to float tolerance). Row and column
  sub-sampling draw from XGBoost's random engine, which a checkpoint does not capture: with
  ``subsample`` or ``colsample_bytree`` below 1 a resumed model is as valid but not identical;
  with early stopping, the patience count restarts at the resumed round;
- a progress callback over boosting rounds.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from refit.errors import TrainingError
from refit.training.checkpoint import CheckpointStore, load_booster, training_fingerprint
from refit.training.trainers import FitRequest, FitResult, TrainerSpec, register_trainer

__all__ = ["DEFAULTS", "build_xgboost", "fit_xgboost"]

logger = logging.getLogger("refit.training")

#: Accepted parameters and their defaults.
DEFAULTS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 6,
    "learning_rate": 0.3,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "min_child_weight": 1.0,
    "gamma": 0.0,
    "reg_lambda": 1.0,
    "reg_alpha": 0.0,
    "max_bin": 256,
    "scale_pos_weight": 1.0,
    "class_weight": None,
    "early_stopping_rounds": None,
    "validation_fraction": 0.1,
    "n_jobs": None,
}

# refit's own parameters, not XGBoost constructor arguments.
_REFIT_ONLY = ("class_weight", "validation_fraction")


def build_xgboost(params: dict[str, Any], seed: int, n_classes: int, device: str = "cpu") -> Any:
    """Build an unfitted ``XGBClassifier`` (``n_classes >= 2``) or ``XGBRegressor`` (0).

    Args:
        params: Resolved parameters (refit-only ones are ignored here).
        seed: Seed.
        n_classes: Number of classes, 0 for regression.
        device: ``cpu`` or ``cuda``.

    Raises:
        TrainingError: ``scale_pos_weight`` on a non-binary target.
    """
    from xgboost import XGBClassifier, XGBRegressor

    kwargs = {k: v for k, v in params.items() if k not in _REFIT_ONLY}
    if n_classes != 2 and kwargs.pop("scale_pos_weight", 1.0) != 1.0:
        raise TrainingError(
            "xgboost parameter 'scale_pos_weight' applies to binary targets only; "
            + (
                "this is a regression target"
                if n_classes == 0
                else f"this target has {n_classes} classes"
            )
        )
    common = {"tree_method": "hist", "device": device, "random_state": seed}
    if n_classes == 0:
        return XGBRegressor(objective="reg:squarederror", **common, **kwargs)
    objective = "binary:logistic" if n_classes == 2 else "multi:softprob"
    return XGBClassifier(objective=objective, **common, **kwargs)


def _check_params(params: dict[str, Any]) -> None:
    rounds = params["n_estimators"]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise TrainingError(
            f"xgboost parameter 'n_estimators' must be a positive integer, got {rounds!r}"
        )
    patience = params["early_stopping_rounds"]
    if patience is not None and (
        isinstance(patience, bool) or not isinstance(patience, int) or patience < 1
    ):
        raise TrainingError(
            "xgboost parameter 'early_stopping_rounds' must be null or a positive integer, "
            f"got {patience!r}"
        )
    fraction = params["validation_fraction"]
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise TrainingError(
            f"xgboost parameter 'validation_fraction' must be in (0, 1), got {fraction!r}"
        )


def _validation_split(
    n: int, fraction: float, seed: int, y: np.ndarray, classification: bool
) -> tuple[np.ndarray, np.ndarray]:
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise TrainingError(
            f"xgboost parameter 'validation_fraction' {fraction} of {n} rows leaves an empty "
            "training or validation split"
        )
    order = np.random.default_rng(seed).permutation(n)
    val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
    if classification and len(np.unique(y[fit])) < 2:
        raise TrainingError(
            "the training split left after the validation split holds a single class"
        )
    return fit, val


def _callbacks(request: FitRequest, store: CheckpointStore | None, total: int) -> list[Any]:
    from xgboost.callback import TrainingCallback

    on_round = request.on_round
    every = request.checkpoint_every
    written: list[int] = []

    class _RoundHook(TrainingCallback):
        """Checkpoints every ``every`` rounds and reports progress."""

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            done = model.num_boosted_rounds()
            if store is not None and done % every == 0 and done < total:
                store.save(done, bytes(model.save_raw("ubj")), total_rounds=total)
                written.append(done)
            if on_round is not None:
                on_round(done, total)
            return False

    hook = _RoundHook()
    # (ignore below) an attribute on xgboost's callback, read back after training
    hook.written = written  # type: ignore[attr-defined]
    return [hook]


def fit_xgboost(request: FitRequest) -> FitResult:
    """Fit the XGBoost trainer: device, early stopping, class weights, checkpoints, progress.

    Args:
        request: The fit request built by :func:`refit.training.train`.

    Returns:
        The fitted estimator (set to predict on the CPU) and the facts for the model card:
        ``rounds``, ``resumed_from_round``, ``rounds_skipped``, ``checkpoints_written``,
        ``best_iteration`` and ``validation`` when early stopping is on.

    Raises:
        TrainingError: For bad parameters or data the estimator refuses.
    """
    params = request.params
    _check_params(params)
    spec = request.spec
    X, y = request.X, request.y
    # warm start: the champion's trees come first, and n_estimators rounds are added to them
    init = request.init_model.estimator.get_booster() if request.init_model else None
    base = int(init.num_boosted_rounds()) if init is not None else 0
    total = base + int(params["n_estimators"])
    weights = _row_weights(request)
    fit_idx = val_idx = None
    patience = params["early_stopping_rounds"]
    if patience is not None:
        fit_idx, val_idx = _validation_split(
            len(y), float(params["validation_fraction"]), request.seed, y, not spec.is_regression
        )
    store, resumed, booster = _resume(request, init, base, total)
    if booster is None and init is not None:
        booster = init
    estimator = build_xgboost(
        {**params, "n_estimators": total - max(resumed, base)},
        request.seed,
        spec.n_classes,
        request.device.device,
    )
    callbacks = _callbacks(request, store, total)
    estimator.set_params(callbacks=callbacks)
    fit_kwargs: dict[str, Any] = {"verbose": False}
    if booster is not None:
        fit_kwargs["xgb_model"] = booster
    X_fit, y_fit = _fit_rows(X, y, weights, fit_idx, val_idx, fit_kwargs)
    if request.on_round is not None and resumed:
        request.on_round(resumed, total)
    estimator.fit(X_fit, y_fit, **fit_kwargs)
    # The fitted model predicts on the CPU wherever it trained, and carries no callbacks.
    estimator.set_params(callbacks=None, device="cpu", n_estimators=total)

    info: dict[str, Any] = {
        "rounds": int(estimator.get_booster().num_boosted_rounds()),
        "total_rounds": total,
        "resumed_from_round": resumed,
        "rounds_skipped": resumed,
        "checkpoints_written": len(callbacks[0].written),
        "checkpoint_dir": request.checkpoint_dir or None,
    }
    if init is not None:
        info["warm_start"] = {"base_rounds": base, "added_rounds": total - base}
    if patience is not None:
        evals = estimator.evals_result().get("validation_0", {})
        info["best_iteration"] = int(estimator.best_iteration)
        info["validation"] = {
            "rows": int(len(val_idx)) if val_idx is not None else 0,
            "metric": next(iter(evals), None),
            "best_score": float(estimator.best_score),
        }
    return FitResult(estimator=estimator, info=info)


def _row_weights(request: FitRequest) -> np.ndarray | None:
    """The given row weights times the ``class_weight`` ones (None: all rows weigh 1)."""
    weights = request.sample_weight
    if request.params.get("class_weight") is None:
        return weights
    from sklearn.utils.class_weight import compute_sample_weight

    from refit.training.trainers import _class_weights

    cw = _class_weights(request.params["class_weight"], request.spec, request.trainer)
    class_weights = compute_sample_weight(cw, request.y)
    return class_weights if weights is None else weights * class_weights


def _resume(
    request: FitRequest, init: Any, base: int, total: int
) -> tuple[CheckpointStore | None, int, Any]:
    """The checkpoint store (None: no checkpoints) and the round and booster to resume from."""
    if not request.checkpoint_dir:
        return None, 0, None
    # what else decides the trees: the row weights and the warm start's trees
    extra = {}
    if request.sample_weight is not None:
        given = np.ascontiguousarray(request.sample_weight)
        extra["sample_weight_sha256"] = hashlib.sha256(given.tobytes()).hexdigest()
    if init is not None:
        extra["warm_start_sha256"] = hashlib.sha256(bytes(init.save_raw("ubj"))).hexdigest()
    fingerprint = training_fingerprint(
        request.X,
        request.y,
        trainer=request.trainer,
        task=request.spec.task,
        params={**request.params, **extra},
        seed=request.seed,
    )
    store = CheckpointStore(request.checkpoint_dir, fingerprint)
    checkpoint = store.latest()
    if checkpoint is None or not base < checkpoint.round < total:
        return store, 0, None
    logger.info(
        "resuming from the checkpoint at round %d of %d in %s",
        checkpoint.round,
        total,
        request.checkpoint_dir,
    )
    return store, checkpoint.round, load_booster(checkpoint)


def _fit_rows(
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    fit_idx: np.ndarray | None,
    val_idx: np.ndarray | None,
    fit_kwargs: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """The rows to fit on; puts the validation set and the weights into ``fit_kwargs``."""
    if fit_idx is None or val_idx is None:
        if weights is not None:
            fit_kwargs["sample_weight"] = weights
        return X, y
    fit_kwargs["eval_set"] = [(X[val_idx], y[val_idx])]
    if weights is not None:
        fit_kwargs["sample_weight"] = weights[fit_idx]
        fit_kwargs["sample_weight_eval_set"] = [weights[val_idx]]
    return X[fit_idx], y[fit_idx]


register_trainer(
    TrainerSpec(
        name="xgboost",
        defaults=dict(DEFAULTS),
        build=lambda params, seed, n_classes: build_xgboost(params, seed, n_classes),
        format="xgboost-ubjson",
        description=(
            'XGBoost XGBClassifier / XGBRegressor (tree_method "hist", device auto/cpu/cuda; '
            "NaN handled natively; early stopping, checkpoints)"
        ),
        tasks=("classification", "regression"),
        supports_cuda=True,
        fit=fit_xgboost,
    )
)
