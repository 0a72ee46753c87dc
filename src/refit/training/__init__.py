"""Training: feature encoding, a registry of trainers, and safe model artifacts."""

from refit.training.artifacts import (
    SKOPS_TRUSTED_TYPES,
    ModelArtifact,
    load_model,
    read_metadata,
    save_model,
)
from refit.training.features import FeatureSpec, encode, encode_target, infer_feature_spec
from refit.training.trainers import (
    TRAINERS,
    TrainedModel,
    TrainerSpec,
    available_trainers,
    get_trainer,
    register_trainer,
    resolve_params,
    train,
)

__all__ = [
    "SKOPS_TRUSTED_TYPES",
    "TRAINERS",
    "FeatureSpec",
    "ModelArtifact",
    "TrainedModel",
    "TrainerSpec",
    "available_trainers",
    "encode",
    "encode_target",
    "get_trainer",
    "infer_feature_spec",
    "load_model",
    "read_metadata",
    "register_trainer",
    "resolve_params",
    "save_model",
    "train",
]
