"""Boosting checkpoints that survive pre-emption: local folders or ``gs://`` prefixes.

A checkpoint folder holds a pointer, ``checkpoint.json``, and two model slots,
``checkpoint-a.ubj`` and ``checkpoint-b.ubj`` (XGBoost UBJSON). A new checkpoint is written
into the slot the pointer does not name, then the pointer is replaced: a process killed at any
moment leaves a pointer that names a complete model file, whose sha256 it records.

The pointer also records a fingerprint of the training (data, trainer, task, parameters,
seed). A restarted training resumes only from a checkpoint with its own fingerprint; any other
is ignored with a logged reason, so a folder reused for different data never leaks a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from refit.errors import DataError, IntegrityError
from refit.io import uri as uri_io

__all__ = [
    "POINTER_FILE",
    "Checkpoint",
    "CheckpointStore",
    "training_fingerprint",
]

logger = logging.getLogger("refit.training")

POINTER_FILE = "checkpoint.json"
_SLOTS = ("checkpoint-a.ubj", "checkpoint-b.ubj")


def training_fingerprint(
    X: np.ndarray, y: np.ndarray, *, trainer: str, task: str, params: dict[str, Any], seed: int
) -> str:
    """Hash what determines a boosting run: the encoded data, trainer, task, parameters, seed.

    Args:
        X: Encoded feature matrix.
        y: Encoded target.
        trainer: Trainer name.
        task: ``classification`` or ``regression``.
        params: Resolved trainer parameters.
        seed: Seed.

    Returns:
        Hex sha256.
    """
    digest = hashlib.sha256()
    for array in (X, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))
    config = {"trainer": trainer, "task": task, "params": params, "seed": seed}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back from a folder.

    Attributes:
        round: Boosting rounds the checkpointed model holds.
        data: The model's UBJSON bytes.
        sha256: sha256 of ``data``.
    """

    round: int
    data: bytes
    sha256: str


class CheckpointStore:
    """Checkpoints of one training under a folder or ``gs://`` prefix.

    Args:
        uri: Local folder, ``file://`` URI or ``gs://bucket/prefix``.
        fingerprint: The training's fingerprint (see :func:`training_fingerprint`).
    """

    def __init__(self, uri: str, fingerprint: str) -> None:
        self.uri = uri
        self.fingerprint = fingerprint
        self._slot: str | None = None

    def _pointer_uri(self) -> str:
        return uri_io.join(self.uri, POINTER_FILE)

    def _read_pointer(self) -> dict[str, Any] | None:
        try:
            raw = uri_io.read_bytes(self._pointer_uri())
        except uri_io.UriNotFoundError:
            return None
        try:
            pointer = json.loads(raw)
        except ValueError:
            logger.warning("checkpoint pointer %s is not JSON: ignored", self._pointer_uri())
            return None
        return pointer if isinstance(pointer, dict) else None

    def latest(self) -> Checkpoint | None:
        """Return the newest usable checkpoint of this training, or None.

        A checkpoint of another training (different fingerprint) or one whose file does not
        match its recorded sha256 is ignored, with the reason logged.

        Raises:
            DataError: If the folder cannot be read (other than being empty).
        """
        pointer = self._read_pointer()
        if pointer is None:
            return None
        where = self._pointer_uri()
        if pointer.get("fingerprint") != self.fingerprint:
            logger.warning(
                "checkpoint at %s belongs to another training (data, trainer, parameters or "
                "seed differ): starting from round 0",
                where,
            )
            return None
        slot = pointer.get("file")
        if slot not in _SLOTS:
            logger.warning("checkpoint pointer %s names an unknown file %r: ignored", where, slot)
            return None
        try:
            data = uri_io.read_bytes(uri_io.join(self.uri, slot))
        except DataError as exc:
            logger.warning("checkpoint file %s cannot be read (%s): ignored", slot, exc)
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest != pointer.get("sha256"):
            logger.warning(
                "checkpoint file %s sha256 %s does not match the pointer's %s: ignored",
                slot,
                digest,
                pointer.get("sha256"),
            )
            return None
        self._slot = slot
        return Checkpoint(round=int(pointer["round"]), data=data, sha256=digest)

    def save(self, round_: int, data: bytes, *, total_rounds: int) -> None:
        """Write a checkpoint after ``round_`` boosting rounds.

        Args:
            round_: Rounds the model holds.
            data: The model's UBJSON bytes.
            total_rounds: Rounds the training will run in all (recorded for people).

        Raises:
            DataError: If the folder cannot be written.
        """
        if self._slot is None:
            pointer = self._read_pointer() or {}
            self._slot = pointer.get("file") if pointer.get("file") in _SLOTS else None
        slot = _SLOTS[1] if self._slot == _SLOTS[0] else _SLOTS[0]
        uri_io.write_bytes(uri_io.join(self.uri, slot), data)
        pointer = {
            "fingerprint": self.fingerprint,
            "round": int(round_),
            "total_rounds": int(total_rounds),
            "file": slot,
            "sha256": hashlib.sha256(data).hexdigest(),
            "format": "xgboost-ubjson",
        }
        uri_io.write_bytes(self._pointer_uri(), json.dumps(pointer, indent=2).encode())
        self._slot = slot


def load_booster(checkpoint: Checkpoint) -> Any:
    """Parse a checkpoint into an ``xgboost.Booster``.

    Raises:
        IntegrityError: If the bytes are not an XGBoost model.
    """
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(checkpoint.data))
    except xgb.core.XGBoostError as exc:
        raise IntegrityError(f"checkpoint is not a valid XGBoost model: {exc}") from exc
    return booster
