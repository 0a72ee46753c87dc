"""Hand-made model directories and registry stores for registry, deploy and approval tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from refit.audit.log import canonical_json, record_hash
from refit.registry import ModelRegistry


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


def register_skops_versions(
    reg: ModelRegistry, root: Path, count: int, *, chain: bool, rising: bool = True
) -> ModelRegistry:
    """Register v1..v``count`` from skops model directories made under ``root``.

    Args:
        reg: The registry to register into.
        root: Folder for the model directories.
        count: How many versions.
        chain: Each version's parent is the one before it; otherwise every later version is a
            child of v1.
        rising: Accuracy 0.8 + version/100 (else 0.8 for all).

    Returns:
        ``reg`` (nothing promoted).
    """
    for i in range(1, count + 1):
        reg.register(
            make_skops_model_dir(root, f"model {i}".encode(), str(i)),
            metrics={"accuracy": 0.8 + i / 100 if rising else 0.8},
            snapshot_sha256=f"{i}" * 64,
            parent_version=None if i == 1 else (i - 1 if chain else 1),
            run_label=f"run-{i}",
        )
    return reg


def make_pre_transaction(root: Path) -> None:
    """Turn a store into one written before transactions: no refs.json, no txn in its records."""
    (root / "refs.json").unlink()
    log = root / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    prev = "0" * 64
    for r in records:
        r.pop("txn", None)
        r["prev_hash"] = prev
        r["hash"] = prev = record_hash(r)
    log.write_text("".join(canonical_json(r) + "\n" for r in records))
    (root / "audit.jsonl.head").write_text(canonical_json({"seq": len(records), "hash": prev}))
