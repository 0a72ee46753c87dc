"""Run the retraining pipeline on the embedded default: kfp.local, local folders, no cluster."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.demo.timeline import WindowRow, window_row
from refit.io.tables import write_parquet
from refit.pipelines.retraining import DEFAULT_GATE, DEFAULT_POLICY, retraining_pipeline
from refit.registry import ModelRegistry


def init_local(pipeline_root: Path) -> None:
    """Point kfp.local at ``pipeline_root``, running each task as a subprocess of this Python."""
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )


def run_pipeline(quiet: bool = True, **params: Any) -> None:
    """Run the retraining pipeline once with kfp.local (call :func:`init_local` first).

    Args:
        quiet: Hide kfp.local's per-task logs (errors are still raised).
        **params: The pipeline's parameters.
    """
    if not quiet:
        retraining_pipeline(**params)
        return
    kfp_logger = logging.getLogger("kfp")
    level = kfp_logger.level
    kfp_logger.setLevel(logging.ERROR)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            retraining_pipeline(**params)
    except Exception as exc:
        raise RuntimeError(
            f"pipeline run failed: {exc}\n--- kfp.local log ---\n{buffer.getvalue()}"
        ) from exc
    finally:
        kfp_logger.setLevel(level)


@dataclass
class ReplayConfig:
    """How a replay runs each window through the pipeline."""

    workdir: Path
    model_name: str
    target: str
    time_column: str = ""
    policy: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    trainer: str = "xgboost"
    params: dict[str, Any] | None = None
    seed: int = 0


def replay(
    windows: Sequence[pa.Table],
    config: ReplayConfig,
    *,
    now: Sequence[str] | None = None,
    on_window: Callable[[WindowRow], None] | None = None,
    before_window: Callable[[int], None] | None = None,
) -> list[WindowRow]:
    """Run the pipeline over consecutive windows, reading each window's outcome from the audit log.

    Args:
        windows: The windows, in time order.
        config: Store location, model, policy, gate and trainer.
        now: Decision time of each window (ISO 8601); defaults to the current time.
        on_window: Called with each window's row as soon as its run ends.
        before_window: Called with each window's index before its run starts.

    Returns:
        One row per window.
    """
    workdir = config.workdir
    store = workdir / "store"
    data_dir = workdir / "data"
    init_local(workdir / "pipeline_root")
    registry = ModelRegistry(str(store), config.model_name)
    rows = []
    for i, table in enumerate(windows):
        if before_window:
            before_window(i)
        data_uri = str(data_dir / f"window-{i:02d}.parquet")
        write_parquet(table, data_uri)
        label = f"window-{i:02d}"
        run_pipeline(
            data_uri=data_uri,
            store_uri=str(store),
            model_name=config.model_name,
            target=config.target,
            time_column=config.time_column,
            policy_json=json.dumps(config.policy or DEFAULT_POLICY),
            gate_json=json.dumps(config.gate or DEFAULT_GATE),
            trainer=config.trainer,
            params_json=json.dumps(config.params or {}),
            seed=config.seed,
            now=now[i] if now else "",
            run_label=label,
        )
        row = window_row(i, label, registry.audit.records())
        row.live_version = registry.get_alias("champion")
        rows.append(row)
        if on_window:
            on_window(row)
    return rows
