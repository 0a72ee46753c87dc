"""Model directories and registry stores for the registry, deploy, approval and serving tests:
hand-made ones, and small models trained on the demo windows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.audit.log import canonical_json, record_hash
from refit.registry import ModelRegistry
from refit.training import save_model, train


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


def register_named(reg: ModelRegistry, root: Path, name: str, parent: int | None = None) -> Any:
    """Register a hand-made model directory whose name and content are ``name``.

    Args:
        reg: The registry to register into.
        root: Folder for the model directory (``model-<name>``).
        name: The directory's suffix, its model file's content and the run label's suffix.
        parent: The parent version.

    Returns:
        The registered version.
    """
    return reg.register(
        make_model_dir(root, name.encode(), name),
        metrics={"accuracy": 0.9},
        snapshot_sha256="s" * 64,
        parent_version=parent,
        run_label=f"run-{name}",
    )


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


def train_demo_model(table: pa.Table, trainer: str = "logistic_regression", **options: Any) -> Any:
    """A model of the demo's ``default`` label trained on ``table`` (its time column left out).

    Args:
        table: A demo window.
        trainer: The trainer's name.
        **options: More ``refit.training.train`` options (``params``, ``device``...).
    """
    return train(table, "default", trainer=trainer, exclude=["event_time"], **options)


def flip_labels(table: pa.Table) -> pa.Table:
    """``table`` with its ``default`` labels flipped (a model trained on it disagrees)."""
    labels = table.column("default").to_pylist()
    return table.set_column(
        table.column_names.index("default"), "default", pa.array([1 - v for v in labels])
    )


def serving_models(windows: list[pa.Table], xgboost_rounds: int) -> dict[int, Any]:
    """v1 a logistic regression on window 0, v2 an XGBoost model (one thread) on window 1."""
    return {
        1: train_demo_model(windows[0]),
        2: train_demo_model(
            windows[1],
            "xgboost",
            params={"n_estimators": xgboost_rounds, "n_jobs": 1},
            device="cpu",
        ),
    }


def register_models(
    reg: ModelRegistry,
    root: Path,
    models: Mapping[int, Any],
    *,
    snapshot_sha256: str | None = None,
    parent: int | None = None,
) -> ModelRegistry:
    """Save each model as ``root/m<version>`` and register it, in version order.

    Args:
        reg: The registry to register into.
        root: Folder for the saved model directories.
        models: Trained models by version (1, 2, ...: the registry numbers them in turn).
        snapshot_sha256: Every version's snapshot hash (default: its version digit, 64 times).
        parent: Parent version of every version after v1 (v1 has none).

    Returns:
        ``reg`` (nothing promoted).
    """
    for version, model in sorted(models.items()):
        save_model(model, root / f"m{version}")
        reg.register(
            root / f"m{version}",
            metrics={},
            snapshot_sha256=snapshot_sha256 or f"{version}" * 64,
            parent_version=None if version == 1 else parent,
            run_label=f"run-{version}",
        )
    return reg
