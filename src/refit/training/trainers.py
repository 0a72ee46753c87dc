"""Trainer registry and the ``train`` entry point.

Each trainer is a :class:`TrainerSpec`: a name, the tasks it supports (classification,
regression), the parameters it accepts with their defaults, and a ``build`` function that
returns an unfitted estimator for resolved parameters, a seed and the number of classes (0 for
regression). A trainer may also bring its own ``fit`` (XGBoost does: device choice, early
stopping on a validation split, checkpoints, progress). Add a trainer with
:func:`register_trainer`.

Built in: ``logistic_regression`` (classification only), ``random_forest``,
``hist_gradient_boosting`` (scikit-learn) and ``xgboost`` (``tree_method="hist"``; CPU or
CUDA). Every trainer is seeded: the same table, parameters and seed give the same model bytes
on the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import TrainingError
from refit.training.device import DeviceChoice, resolve_device
from refit.training.features import (
    DEFAULT_MAX_CATEGORIES,
    TASKS,
    FeatureSpec,
    classes_array,
    encode,
    encode_target,
    infer_feature_spec,
    infer_task,
)

__all__ = [
    "TRAINERS",
    "FitRequest",
    "FitResult",
    "RoundCallback",
    "TrainedModel",
    "TrainerSpec",
    "available_trainers",
    "get_trainer",
    "register_trainer",
    "resolve_params",
    "train",
]

logger = logging.getLogger("refit.training")

#: ``on_round(rounds_done, total_rounds)``: called after each boosting round.
RoundCallback = Callable[[int, int], None]


@dataclass
class FitRequest:
    """Everything a trainer's ``fit`` hook gets.

    Attributes:
        X: Encoded features (float32).
        y: Encoded target (class indices, or float64 values for regression).
        spec: The feature spec (task, classes).
        params: Resolved trainer parameters.
        seed: Seed.
        device: The resolved device.
        sample_weight: Per-row weights given to :func:`train` (e.g. recency weights of a
            training window), or None; a trainer's ``class_weight`` multiplies them.
        checkpoint_dir: Folder or ``gs://`` prefix for checkpoints, or None.
        checkpoint_every: Rounds between checkpoints.
        on_round: Progress callback, or None.
        trainer: Trainer name.
        init_model: A fitted model of the same trainer whose boosting continues (warm start),
            or None; its features and classes match ``spec`` (:func:`train` checks).
    """

    X: np.ndarray
    y: np.ndarray
    spec: FeatureSpec
    params: dict[str, Any]
    seed: int
    device: DeviceChoice
    sample_weight: np.ndarray | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 10
    on_round: RoundCallback | None = None
    trainer: str = ""
    init_model: TrainedModel | None = None


@dataclass
class FitResult:
    """What a trainer's ``fit`` hook returns.

    Attributes:
        estimator: The fitted estimator.
        info: Facts about the fit for the model card (rounds, resumed_from_round, validation).
    """

    estimator: Any
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainerSpec:
    """A named way to build an estimator.

    Attributes:
        name: Registry name, e.g. ``"xgboost"``.
        defaults: Accepted parameters and their default values; any other parameter is refused.
        build: ``build(params, seed, n_classes) -> estimator`` returning an unfitted estimator
            with ``fit(X, y)``, ``predict(X)`` and, for classifiers, ``predict_proba(X)``.
            ``n_classes`` is 0 for regression.
        format: Serialization format of the fitted estimator: ``"skops"`` or ``"xgboost-ubjson"``.
        description: One line for listings.
        tasks: Tasks the trainer supports.
        supports_cuda: Whether the trainer can train on a CUDA GPU.
        fit: Optional ``fit(request) -> FitResult`` replacing ``build(...).fit(X, y)``.
    """

    name: str
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any], int, int], Any]
    format: str
    description: str = ""
    tasks: tuple[str, ...] = ("classification",)
    supports_cuda: bool = False
    fit: Callable[[FitRequest], FitResult] | None = None

    @property
    def allowed_params(self) -> list[str]:
        """Sorted names of the accepted parameters."""
        return sorted(self.defaults)


TRAINERS: dict[str, TrainerSpec] = {}


def register_trainer(spec: TrainerSpec) -> TrainerSpec:
    """Add (or replace) a trainer in the registry.

    Args:
        spec: The trainer.

    Returns:
        The same spec, for use as a one-liner.
    """
    TRAINERS[spec.name] = spec
    return spec


def available_trainers() -> list[str]:
    """Return the registered trainer names, sorted."""
    return sorted(TRAINERS)


def get_trainer(name: str) -> TrainerSpec:
    """Look a trainer up by name.

    Raises:
        TrainingError: If no trainer has that name; the message lists the known ones.
    """
    try:
        return TRAINERS[name]
    except KeyError:
        raise TrainingError(
            f"trainer {name!r} is unknown; available trainers: {available_trainers()}"
        ) from None


def resolve_params(trainer: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Merge user parameters over a trainer's defaults, refusing unknown ones.

    Args:
        trainer: Trainer name.
        params: User parameters, or None for the defaults.

    Returns:
        The full parameter dictionary.

    Raises:
        TrainingError: If the trainer or a parameter is unknown.
    """
    spec = get_trainer(trainer)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise TrainingError(
            f"trainer {trainer!r} does not accept parameter(s) {unknown}; "
            f"allowed parameters: {spec.allowed_params}"
        )
    return {**spec.defaults, **params}


@dataclass
class TrainedModel:
    """A fitted estimator together with the encoding it expects.

    Attributes:
        estimator: The fitted estimator (scikit-learn estimator or Pipeline, or an XGBoost
            sklearn-API model).
        spec: Feature spec used to encode tables for this estimator (task, classes).
        trainer: Trainer name.
        params: Resolved trainer parameters.
        seed: Random seed used for training.
        device: Device that trained the model: ``cpu`` or ``cuda``.
        resumed_from_round: Boosting rounds taken from a checkpoint (0 for a fresh run).
        info: Facts about the fit: device reason, rounds, validation score, wall time.
    """

    estimator: Any
    spec: FeatureSpec
    trainer: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    resumed_from_round: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return self.spec.task

    @property
    def classes(self) -> list:
        """Class labels, in the column order of :meth:`predict_proba` (empty for regression)."""
        return list(self.spec.classes)

    def predict_proba(self, table: pa.Table) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``, columns in ``spec.classes`` order.

        Raises:
            TrainingError: If the model is a regressor, or a feature column is missing or has
                an incompatible type.
        """
        if self.spec.is_regression:
            raise TrainingError(
                f"model of trainer {self.trainer!r} is a regressor (target "
                f"{self.spec.target!r}): it has no class probabilities; use predict()"
            )
        X = encode(table, self.spec)
        if X.shape[0] == 0:
            return np.zeros((0, self.spec.n_classes), dtype=np.float64)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != self.spec.n_classes:
            raise TrainingError(
                f"trainer {self.trainer!r} returned probabilities of shape {proba.shape}, "
                f"expected (n, {self.spec.n_classes})"
            )
        return proba

    def predict(self, table: pa.Table) -> np.ndarray:
        """Predicted class labels (values from ``spec.classes``), or values for regression."""
        if self.spec.is_regression:
            X = encode(table, self.spec)
            if X.shape[0] == 0:
                return np.zeros(0, dtype=np.float64)
            return np.asarray(self.estimator.predict(X), dtype=np.float64)
        return classes_array(self.spec, np.argmax(self.predict_proba(table), axis=1))


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TrainingError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _resolve_task(task: str, trainer: TrainerSpec, table: pa.Table, target: str) -> str:
    if task not in (*TASKS, "auto"):
        raise TrainingError(f"task {task!r} is unknown; use one of {['auto', *TASKS]}")
    chosen = infer_task(table, target) if task == "auto" else task
    if chosen not in trainer.tasks:
        detail = (
            f"target column {target!r} has non-integral float labels (a regression target); "
            if task == "auto"
            else ""
        )
        raise TrainingError(
            f"trainer {trainer.name!r} supports {list(trainer.tasks)} only, not {chosen}: "
            f"{detail}choose one of "
            f"{[t.name for t in TRAINERS.values() if chosen in t.tasks]}"
        )
    return chosen


def _class_weights(value: Any, spec: FeatureSpec, trainer: str) -> str | dict[int, float] | None:
    """Turn a ``class_weight`` parameter into sklearn's form over encoded class indices."""
    if value is None:
        return None
    if spec.is_regression:
        raise TrainingError(
            f"trainer {trainer!r} parameter 'class_weight' applies to classification only; "
            f"target {spec.target!r} is a regression target"
        )
    if value == "balanced":
        return "balanced"
    if not isinstance(value, dict):
        raise TrainingError(
            f"trainer {trainer!r} parameter 'class_weight' must be null, 'balanced' or a "
            f"mapping from class label to weight, got {value!r}"
        )
    by_label = {str(c): i for i, c in enumerate(spec.classes)}
    out: dict[int, float] = {}
    for label, weight in value.items():
        if str(label) not in by_label:
            raise TrainingError(
                f"trainer {trainer!r} parameter 'class_weight' names class {label!r}, which is "
                f"not among the target's classes {list(spec.classes)}"
            )
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
            raise TrainingError(
                f"trainer {trainer!r} parameter 'class_weight' for class {label!r} must be a "
                f"positive number, got {weight!r}"
            )
        out[by_label[str(label)]] = float(weight)
    return out


def train(
    table: pa.Table,
    target: str,
    trainer: str = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    exclude: Iterable[str] = (),
    *,
    task: str = "auto",
    device: str = "auto",
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 10,
    on_round: RoundCallback | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    sample_weight: np.ndarray | None = None,
    init_model: TrainedModel | None = None,
) -> TrainedModel:
    """Train a classifier or regressor on a table.

    Everything that can be checked is checked before fitting: the trainer name, its parameters,
    the device, the task, the target column and the feature columns. The same table,
    parameters and seed give the same model (the same bytes on the CPU).

    Args:
        table: Training table with the target and feature columns.
        target: Name of the label column.
        trainer: Trainer name (see :func:`available_trainers`).
        params: Trainer parameters overriding the defaults.
        seed: Random seed.
        exclude: Columns that are not features (ids, timestamps).
        task: ``classification``, ``regression`` or ``auto`` (a float target with non-integral
            values is a regression target; anything else is classification).
        device: ``auto``, ``cpu`` or ``cuda`` (see :mod:`refit.training.device`).
        checkpoint_dir: Folder or ``gs://`` prefix for boosting checkpoints (XGBoost); a
            training restarted with the same data, parameters and seed resumes from the last
            one. Ignored, with a log line, by trainers without boosting rounds.
        checkpoint_every: Boosting rounds between checkpoints.
        on_round: ``on_round(rounds_done, total_rounds)`` after each boosting round.
        max_categories: Cardinality cap of categorical features: a column with more distinct
            values keeps its ``max_categories`` most frequent ones and one shared ``(other)``
            column, so the encoded width is at most ``max_categories + 1`` per column (see
            :mod:`refit.training.features`). Recorded in the model card.
        sample_weight: Per-row weights (positive, finite, one per row of ``table``), e.g. a
            training window's recency weights; None: all rows weigh 1.
        init_model: Warm start: a fitted model whose boosting continues on ``table`` (only the
            ``xgboost`` trainer, from an ``xgboost`` model; ``n_estimators`` rounds are added
            to its trees). Its feature columns and kinds, task and classes must be the table's;
            the table is then encoded with its feature encoding (its categories), so the new
            trees read the columns its trees read. Recorded in ``info["warm_start"]``.

    Returns:
        The fitted :class:`TrainedModel`.

    Raises:
        TrainingError: For an unknown trainer, parameter, task or device; ``cuda`` demanded
            with no GPU; bad target or feature columns; or when the estimator refuses to fit
            (the message names the trainer and parameters).
    """
    spec_trainer = get_trainer(trainer)
    resolved = resolve_params(trainer, params)
    seed = _check_seed(seed)
    _check_checkpoint_every(checkpoint_every)
    chosen_task = _resolve_task(task, spec_trainer, table, target)
    choice = resolve_device(device, supports_cuda=spec_trainer.supports_cuda, trainer=trainer)
    spec = infer_feature_spec(
        table, target, exclude=exclude, task=chosen_task, max_categories=max_categories
    )
    if init_model is not None:
        spec = _warm_start_spec(init_model, spec, trainer)
    if sample_weight is not None:
        sample_weight = _check_weights(sample_weight, table.num_rows)
    if "class_weight" in resolved:
        _class_weights(resolved["class_weight"], spec, trainer)  # validate before encoding
    X = encode(table, spec)
    y = encode_target(table, spec)
    request = FitRequest(
        X=X,
        y=y,
        spec=spec,
        params=resolved,
        seed=seed,
        device=choice,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        on_round=on_round,
        trainer=trainer,
        sample_weight=sample_weight,
        init_model=init_model,
    )
    started = time.perf_counter()
    try:
        fit = spec_trainer.fit or partial(_fit_plain, spec_trainer)
        result = fit(request)
    except TrainingError:
        raise
    except (ValueError, TypeError) as exc:  # XGBoostError is a ValueError
        raise TrainingError(
            f"trainer {trainer!r} with parameters {resolved} failed to fit: {exc}"
        ) from exc
    wall = time.perf_counter() - started
    info = {
        "task": chosen_task,
        "device": choice.device,
        "device_requested": choice.requested,
        "device_reason": choice.reason,
        "train_rows": int(X.shape[0]),
        "max_categories": max_categories,
        "fit_seconds": round(wall, 4),
        **result.info,
    }
    return TrainedModel(
        estimator=result.estimator,
        spec=spec,
        trainer=trainer,
        params=resolved,
        seed=seed,
        device=choice.device,
        resumed_from_round=int(result.info.get("resumed_from_round", 0)),
        info=info,
    )


def _check_checkpoint_every(checkpoint_every: Any) -> None:
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
        raise TrainingError(f"checkpoint_every must be an integer, got {checkpoint_every!r}")
    if checkpoint_every < 1:
        raise TrainingError(f"checkpoint_every must be >= 1, got {checkpoint_every}")


def _fit_plain(trainer: TrainerSpec, request: FitRequest) -> FitResult:
    """Fit a trainer without its own ``fit``: build the estimator and fit it, weighted."""
    if request.checkpoint_dir:
        logger.info(
            "trainer %r has no boosting rounds: checkpoint_dir %s is not used",
            request.trainer,
            request.checkpoint_dir,
        )
    estimator = trainer.build(
        _sklearn_params(request.params, request.spec, request.trainer),
        request.seed,
        request.spec.n_classes,
    )
    X, y, weights = request.X, request.y, request.sample_weight
    if weights is None:
        estimator.fit(X, y)
    elif hasattr(estimator, "steps"):  # a Pipeline: the weights go to its last step
        estimator.fit(X, y, **{f"{estimator.steps[-1][0]}__sample_weight": weights})
    else:
        estimator.fit(X, y, sample_weight=weights)
    return FitResult(estimator=estimator)


def _check_weights(weights: Any, rows: int) -> np.ndarray:
    out = np.asarray(weights, dtype=np.float64)
    if out.shape != (rows,):
        raise TrainingError(f"sample_weight has shape {out.shape}; expected ({rows},), a row each")
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise TrainingError("sample_weight must be positive and finite on every row")
    return out


def _warm_start_spec(init: TrainedModel, spec: FeatureSpec, trainer: str) -> FeatureSpec:
    """The champion's feature spec, after checking that its boosting can continue on ``spec``."""
    if trainer != "xgboost" or init.trainer != "xgboost":
        raise TrainingError(
            f"warm start continues XGBoost boosting: trainer {trainer!r} cannot continue a "
            f"{init.trainer!r} model; use trainer 'xgboost' on an xgboost champion, or turn "
            "warm start off"
        )
    differences = []
    if init.spec.task != spec.task:
        differences.append(f"task {init.spec.task} -> {spec.task}")
    if init.spec.target != spec.target:
        differences.append(f"target {init.spec.target!r} -> {spec.target!r}")
    if list(init.spec.numeric) != list(spec.numeric):
        differences.append(f"numeric features {init.spec.numeric} -> {spec.numeric}")
    if list(init.spec.categorical) != list(spec.categorical):
        differences.append(
            f"categorical features {list(init.spec.categorical)} -> {list(spec.categorical)}"
        )
    if [str(c) for c in init.spec.classes] != [str(c) for c in spec.classes]:
        differences.append(f"classes {list(init.spec.classes)} -> {list(spec.classes)}")
    if differences:
        raise TrainingError(
            "warm start refused: the champion's trees read other inputs than this data gives ("
            + "; ".join(differences)
            + "); train from scratch (warm start off)"
        )
    return init.spec


def _sklearn_params(params: dict[str, Any], spec: FeatureSpec, trainer: str) -> dict[str, Any]:
    out = dict(params)
    if "class_weight" in out:
        weights = _class_weights(out.pop("class_weight"), spec, trainer)
        if not spec.is_regression:
            out["class_weight"] = weights
    # None means "the estimator's own default for this task" for these two.
    for key in ("criterion", "max_features"):
        if key in out and out[key] is None:
            del out[key]
    return out


# The built-in trainers live in their own modules; importing them registers them.
from refit.training import sklearn_trainers as _sklearn_trainers  # noqa: E402,F401
from refit.training import xgboost_trainer as _xgboost_trainer  # noqa: E402,F401
