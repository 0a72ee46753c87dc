"""Which device trains a model: ``auto``, ``cpu`` or ``cuda`` (XGBoost only).

``auto`` uses CUDA when XGBoost can see a GPU and falls back to the CPU with a logged reason
otherwise; ``cuda`` fails before any training when no GPU is usable. Detection never crashes
on a CPU-only machine: it asks XGBoost itself, by fitting one tiny tree with ``device="cuda"``
and reading back the device XGBoost actually chose (a CUDA build without a visible GPU falls
back to the CPU and says so in its configuration).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from dataclasses import dataclass

from refit.errors import TrainingError

__all__ = ["DEVICES", "DeviceChoice", "cuda_status", "resolve_device"]

logger = logging.getLogger("refit.training")

#: Accepted values of the ``device`` option.
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceChoice:
    """The device a training runs on, and why.

    Attributes:
        requested: What was asked for: ``auto``, ``cpu`` or ``cuda``.
        device: What trains: ``cpu`` or ``cuda``.
        reason: One line on why (recorded in the model card).
    """

    requested: str
    device: str
    reason: str


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """Tell whether XGBoost can train on a CUDA GPU here, without crashing when it cannot.

    Returns:
        ``(available, reason)``; ``reason`` says what was found.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    try:
        import numpy as np
        import xgboost as xgb
    except ImportError as exc:  # pragma: no cover - xgboost is a dependency
        return False, f"xgboost cannot be imported: {exc}"
    if not xgb.build_info().get("USE_CUDA"):
        return False, "this xgboost build has no CUDA support"
    X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    y = np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgb.train(
                {"device": "cuda", "tree_method": "hist", "verbosity": 0},
                xgb.DMatrix(X, label=y),
                num_boost_round=1,
            )
            config = json.loads(booster.save_config())
    except Exception as exc:  # xgboost raises XGBoostError or RuntimeError for CUDA faults
        return False, f"a probe fit on device 'cuda' failed: {str(exc).splitlines()[0]}"
    device = str(config["learner"]["generic_param"].get("device", "cpu"))
    if device.startswith("cuda"):
        return True, f"xgboost trained a probe tree on {device}"
    return False, "xgboost found no visible CUDA GPU"


def resolve_device(requested: str, *, supports_cuda: bool, trainer: str) -> DeviceChoice:
    """Resolve a device request for a trainer.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.
        supports_cuda: Whether the trainer can train on a GPU (XGBoost).
        trainer: Trainer name, for messages.

    Returns:
        The :class:`DeviceChoice`. An ``auto`` request that falls back to the CPU logs its
        reason.

    Raises:
        TrainingError: If the request is unknown, or ``cuda`` was demanded for a CPU-only
            trainer or on a machine without a usable GPU.
    """
    if requested not in DEVICES:
        raise TrainingError(f"device {requested!r} is unknown; use one of {list(DEVICES)}")
    if requested == "cpu":
        return DeviceChoice(requested, "cpu", "cpu requested")
    if not supports_cuda:
        if requested == "cuda":
            raise TrainingError(
                f"device 'cuda' was requested but trainer {trainer!r} runs on the CPU only; "
                "use trainer 'xgboost' for GPU training, or device 'auto' or 'cpu'"
            )
        return DeviceChoice(requested, "cpu", f"trainer {trainer!r} runs on the CPU only")
    available, why = cuda_status()
    if available:
        return DeviceChoice(requested, "cuda", why)
    if requested == "cuda":
        raise TrainingError(f"device 'cuda' was requested but no GPU is usable: {why}")
    reason = f"no GPU, falling back to the CPU: {why}"
    logger.warning("device 'auto' for trainer %r: %s", trainer, reason)
    return DeviceChoice(requested, "cpu", reason)
