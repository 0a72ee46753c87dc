"""Training: feature encoding, a registry of trainers, devices, checkpoints, safe artifacts."""

from refit.training.artifacts import (
    SKOPS_TRUSTED_TYPES,
    ModelArtifact,
    load_model,
    read_metadata,
    save_model,
)
from refit.training.card import build_model_card, render_model_card, validation_metrics
from refit.training.checkpoint import CheckpointStore, training_fingerprint
from refit.training.device import DEVICES, DeviceChoice, cuda_status, resolve_device
from refit.training.features import (
    TASKS,
    FeatureSpec,
    encode,
    encode_target,
    infer_feature_spec,
    infer_task,
)
from refit.training.trainers import (
    TRAINERS,
    FitRequest,
    FitResult,
    TrainedModel,
    TrainerSpec,
    available_trainers,
    get_trainer,
    register_trainer,
    resolve_params,
    train,
)

__all__ = [
    "DEVICES",
    "SKOPS_TRUSTED_TYPES",
    "TASKS",
    "TRAINERS",
    "CheckpointStore",
    "DeviceChoice",
    "FeatureSpec",
    "FitRequest",
    "FitResult",
    "ModelArtifact",
    "TrainedModel",
    "TrainerSpec",
    "available_trainers",
    "build_model_card",
    "cuda_status",
    "encode",
    "encode_target",
    "get_trainer",
    "infer_feature_spec",
    "infer_task",
    "load_model",
    "read_metadata",
    "register_trainer",
    "render_model_card",
    "resolve_device",
    "resolve_params",
    "save_model",
    "train",
    "training_fingerprint",
    "validation_metrics",
]
