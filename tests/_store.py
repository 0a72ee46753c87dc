"""A store with a champion, built through the library steps (fast: no kfp.local)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from refit import steps
from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet


def champion_store(root: Path, window: pa.Table, model: str, params: dict[str, Any]) -> Path:
    """Make ``root`` a store whose champion (v1) of ``model`` was trained on ``window``."""
    data = write_window(root, window, "w0")
    snap = steps.snapshot_data(data, str(root), model, str(root / "snap.parquet"))
    steps.train_model(
        str(root / "snap.parquet"),
        TARGET,
        str(root / "model"),
        str(root / "holdout.parquet"),
        params=params,
        time_column=TIME_COLUMN,
    )
    version = steps.register_model(
        str(root / "model"), str(root), model, snap.sha256, {"accuracy": 0.9}
    )
    steps.promote_model(str(root), model, version)
    return root


def write_window(store: Path, table: pa.Table, name: str) -> str:
    """Write ``table`` as ``{store}/{name}.parquet`` and return its path."""
    path = store / f"{name}.parquet"
    write_parquet(table, str(path))
    return str(path)
