"""Trainer registry and the ``train`` entry point.

Each trainer is a :class:`TrainerSpec`: a name, the parameters it accepts with their defaults,
and a ``build`` function that returns an unfitted estimator for resolved parameters, a seed and
the number of classes. Add a trainer with :func:`register_trainer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import TrainingError
from refit.training.features import (
    FeatureSpec,
    classes_array,
    encode,
    encode_target,
    infer_feature_spec,
)

__all__ = [
    "TRAINERS",
    "TrainedModel",
    "TrainerSpec",
    "available_trainers",
    "get_trainer",
    "register_trainer",
    "resolve_params",
    "train",
]


@dataclass(frozen=True)
class TrainerSpec:
    """A named way to build a classifier.

    Attributes:
        name: Registry name, e.g. ``"xgboost"``.
        defaults: Accepted parameters and their default values; any other parameter is refused.
        build: ``build(params, seed, n_classes) -> estimator`` returning an unfitted estimator
            with ``fit(X, y)`` and ``predict_proba(X)``.
        format: Serialization format of the fitted estimator: ``"skops"`` or ``"xgboost-ubjson"``.
        description: One line for listings.
    """

    name: str
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any], int, int], Any]
    format: str
    description: str = ""

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
        estimator: The fitted estimator (scikit-learn Pipeline or ``xgboost.XGBClassifier``).
        spec: Feature spec used to encode tables for this estimator.
        trainer: Trainer name.
        params: Resolved trainer parameters.
        seed: Random seed used for training.
    """

    estimator: Any
    spec: FeatureSpec
    trainer: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def classes(self) -> list:
        """Class labels, in the column order of :meth:`predict_proba`."""
        return list(self.spec.classes)

    def predict_proba(self, table: pa.Table) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``, columns in ``spec.classes`` order.

        Raises:
            TrainingError: If a feature column is missing or has an incompatible type.
        """
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
        """Predicted class labels (values from ``spec.classes``)."""
        return classes_array(self.spec, np.argmax(self.predict_proba(table), axis=1))


def train(
    table: pa.Table,
    target: str,
    trainer: str = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    exclude: Iterable[str] = (),
) -> TrainedModel:
    """Train a classifier on a table.

    Everything that can be checked is checked before fitting: the trainer name, its parameters,
    the target column and the feature columns. The same table, parameters and seed give the same
    predictions.

    Args:
        table: Training table with the target and feature columns.
        target: Name of the label column.
        trainer: Trainer name (see :func:`available_trainers`).
        params: Trainer parameters overriding the defaults.
        seed: Random seed.
        exclude: Columns that are not features (ids, timestamps).

    Returns:
        The fitted :class:`TrainedModel`.

    Raises:
        TrainingError: For an unknown trainer or parameter, bad target or feature columns, or
            when the estimator refuses to fit (the message names the trainer and parameters).
    """
    spec_trainer = get_trainer(trainer)
    resolved = resolve_params(trainer, params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TrainingError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    spec = infer_feature_spec(table, target, exclude=exclude)
    X = encode(table, spec)
    y = encode_target(table, spec)
    try:
        estimator = spec_trainer.build(resolved, seed, spec.n_classes)
        estimator.fit(X, y)
    except TrainingError:
        raise
    except (ValueError, TypeError) as exc:
        raise TrainingError(
            f"trainer {trainer!r} with parameters {resolved} failed to fit: {exc}"
        ) from exc
    return TrainedModel(estimator=estimator, spec=spec, trainer=trainer, params=resolved, seed=seed)


# --- built-in trainers -------------------------------------------------------------------------


def _build_logistic_regression(params: dict[str, Any], seed: int, n_classes: int) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(random_state=seed, **params)),
        ]
    )


def _build_random_forest(params: dict[str, Any], seed: int, n_classes: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", RandomForestClassifier(random_state=seed, **params)),
        ]
    )


def _build_xgboost(params: dict[str, Any], seed: int, n_classes: int) -> Any:
    from xgboost import XGBClassifier

    params = dict(params)
    if n_classes == 2:
        objective = "binary:logistic"
    else:
        objective = "multi:softprob"
        # Only binary objectives use scale_pos_weight; xgboost warns when it is set otherwise.
        if params.pop("scale_pos_weight", 1.0) != 1.0:
            raise TrainingError(
                f"xgboost parameter 'scale_pos_weight' applies to binary targets only; "
                f"this target has {n_classes} classes"
            )
    return XGBClassifier(
        tree_method="hist",
        device="cpu",
        objective=objective,
        random_state=seed,
        **params,
    )


register_trainer(
    TrainerSpec(
        name="logistic_regression",
        defaults={
            "C": 1.0,
            "l1_ratio": 0.0,
            "solver": "lbfgs",
            "max_iter": 1000,
            "tol": 1e-4,
            "fit_intercept": True,
            "class_weight": None,
        },
        build=_build_logistic_regression,
        format="skops",
        description="scikit-learn LogisticRegression (median impute + standard scale)",
    )
)

register_trainer(
    TrainerSpec(
        name="random_forest",
        defaults={
            "n_estimators": 100,
            "criterion": "gini",
            "max_depth": None,
            "min_samples_split": 2,
            "min_samples_leaf": 1,
            "max_features": "sqrt",
            "max_leaf_nodes": None,
            "bootstrap": True,
            "max_samples": None,
            "class_weight": None,
            "n_jobs": None,
        },
        build=_build_random_forest,
        format="skops",
        description="scikit-learn RandomForestClassifier (median impute)",
    )
)

register_trainer(
    TrainerSpec(
        name="xgboost",
        defaults={
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
            "n_jobs": None,
        },
        build=_build_xgboost,
        format="xgboost-ubjson",
        description=(
            'XGBoost XGBClassifier (tree_method "hist", device "cpu"; NaN handled natively)'
        ),
    )
)
