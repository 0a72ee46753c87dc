"""The built-in scikit-learn trainers: logistic regression, random forest, histogram boosting.

Each is registered as a :class:`refit.training.trainers.TrainerSpec` when this module is imported
(`refit.training.trainers` imports it), saved with skops.
"""

from __future__ import annotations

from typing import Any

from refit.training.trainers import TrainerSpec, register_trainer


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
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    cls = RandomForestRegressor if n_classes == 0 else RandomForestClassifier
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", cls(random_state=seed, **params)),
        ]
    )


def _build_hist_gradient_boosting(params: dict[str, Any], seed: int, n_classes: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if n_classes == 0:
        return HistGradientBoostingRegressor(random_state=seed, **params)
    return HistGradientBoostingClassifier(random_state=seed, **params)


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
        tasks=("classification",),
    )
)

register_trainer(
    TrainerSpec(
        name="random_forest",
        defaults={
            "n_estimators": 100,
            "criterion": None,
            "max_depth": None,
            "min_samples_split": 2,
            "min_samples_leaf": 1,
            "max_features": None,
            "max_leaf_nodes": None,
            "bootstrap": True,
            "max_samples": None,
            "class_weight": None,
            "n_jobs": None,
        },
        build=_build_random_forest,
        format="skops",
        description=(
            "scikit-learn RandomForestClassifier / RandomForestRegressor (median impute; "
            "criterion and max_features null = the estimator's default for the task)"
        ),
        tasks=("classification", "regression"),
    )
)

register_trainer(
    TrainerSpec(
        name="hist_gradient_boosting",
        defaults={
            "learning_rate": 0.1,
            "max_iter": 100,
            "max_leaf_nodes": 31,
            "max_depth": None,
            "min_samples_leaf": 20,
            "l2_regularization": 0.0,
            "max_features": 1.0,
            "max_bins": 255,
            "early_stopping": "auto",
            "validation_fraction": 0.1,
            "n_iter_no_change": 10,
            "class_weight": None,
        },
        build=_build_hist_gradient_boosting,
        format="skops",
        description=(
            "scikit-learn HistGradientBoostingClassifier / HistGradientBoostingRegressor "
            "(NaN handled natively; early stopping on a seeded validation split)"
        ),
        tasks=("classification", "regression"),
    )
)
