"""Hand-made model directories for registry, deploy and approval tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def make_model_dir(
    root: Path,
    content: bytes = b"model-bytes",
    name: str = "m",
    *,
    file: str = "model.ubj",
    dirname: str | None = None,
    **meta: Any,
) -> Path:
    """Write a model directory: one model file plus a model.json naming it with its sha256.

    Args:
        root: Folder to create the model directory in.
        content: Bytes of the model file.
        name: Suffix of the directory name (``model-<name>``).
        file: Model file name (``model.ubj`` for xgboost, ``model.skops`` for sklearn).
        dirname: Directory name to use instead of ``model-<name>``.
        **meta: Extra model.json fields, written after ``file`` and ``sha256``.

    Returns:
        The new directory.
    """
    d = Path(root) / (dirname or f"model-{name}")
    d.mkdir(parents=True)
    (d / file).write_bytes(content)
    fields = {"file": file, "sha256": hashlib.sha256(content).hexdigest(), **meta}
    (d / "model.json").write_text(json.dumps(fields))
    return d


def make_skops_model_dir(root: Path, content: bytes, name: str) -> Path:
    """A scikit-learn (skops) model directory: :func:`make_model_dir` with ``model.skops``."""
    return make_model_dir(root, content, name, file="model.skops")
