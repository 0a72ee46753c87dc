"""Run the retraining pipeline on the embedded default: kfp.local, local folders, no cluster."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.demo.timeline import WindowRow, window_row
from refit.images import engine_image
from refit.io.tables import write_parquet
from refit.pipelines.retraining import (
    DEFAULT_GATE,
    DEFAULT_POLICY,
    build_retraining_pipeline,
    retraining_pipeline,
)
from refit.registry import ModelRegistry

#: How kfp.local runs each task: ``subprocess`` (this Python) or ``docker`` (the task's image,
#: through Docker or podman's Docker-compatible API at ``DOCKER_HOST``).
RUNNERS = ("subprocess", "docker")


def init_local(
    pipeline_root: Path,
    runner: str = "subprocess",
    mounts: Sequence[Path] = (),
    images: Sequence[str] = (),
    warm: bool = True,
) -> None:
    """Point kfp.local at ``pipeline_root`` and choose how its tasks run.

    Args:
        pipeline_root: Folder of the tasks' outputs.
        runner: ``subprocess``: each task a subprocess of this Python (with ``warm``, forked
            from a server that imported kfp, refit and their heavy dependencies once:
            :mod:`refit.pipelines.warm_tasks`). ``docker``: each task in
            its image (:mod:`refit.pipelines.docker_runner`), with ``mounts`` bound at the same
            paths (the store and data a run reads), ``REFIT_TOKEN_KEY`` forwarded, and the
            pipeline root and mounts writable by the image's user.
        mounts: Folders every task needs besides the pipeline root (``docker`` only).
        images: Images checked for presence before anything runs (``docker`` only).
        warm: ``subprocess`` only: fork tasks warm (default, where the OS can fork); False
            starts a new interpreter per task, as kfp.local does (seconds of imports each).

    Raises:
        ValueError: Unknown runner.
        refit.pipelines.docker_runner.ContainerRunError: No engine answers, or an image is
            absent.
    """
    from kfp import local

    if runner not in RUNNERS:
        raise ValueError(f"runner {runner!r} is not one of {list(RUNNERS)}")
    from refit.pipelines import warm_tasks

    if runner == "subprocess":
        local_runner: Any = local.SubprocessRunner(use_venv=False)
        if warm and hasattr(os, "fork"):  # the server forks its tasks (POSIX)
            warm_tasks.install()
        else:
            warm_tasks.uninstall()
    else:
        from refit.pipelines import docker_runner

        docker_runner.check_engine(images)
        pipeline_root = pipeline_root.resolve()
        mounts = [m.resolve() for m in mounts]
        for folder in (pipeline_root, *mounts):
            docker_runner.share_folder(folder)
        local_runner = docker_runner.docker_runner(mounts=mounts)
    local.init(runner=local_runner, pipeline_root=str(pipeline_root), raise_on_error=True)


def run_pipeline(quiet: bool = True, engine: str = "native", **params: Any) -> None:
    """Run the retraining pipeline once with kfp.local (call :func:`init_local` first).

    Args:
        quiet: Hide kfp.local's per-task logs (errors are still raised).
        engine: Statistics engine of the validation and drift tasks (``tfdv`` runs them in the
            refit-tfdv image: :func:`~refit.pipelines.retraining.build_retraining_pipeline`).
        **params: The pipeline's parameters.
    """
    pipeline = (
        retraining_pipeline if engine == "native" else build_retraining_pipeline(engine=engine)
    )
    if not quiet:
        pipeline(**params)
        return
    kfp_logger = logging.getLogger("kfp")
    level = kfp_logger.level
    kfp_logger.setLevel(logging.ERROR)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            pipeline(**params)
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
    #: ``subprocess`` or ``docker`` (:func:`init_local`).
    runner: str = "subprocess"
    #: Statistics engine of validation and drift (``tfdv`` needs the docker runner or TFDV here).
    engine: str = "native"
    #: ``subprocess`` runner: fork tasks from a warm server (:func:`init_local`).
    warm_tasks: bool = True


def replay(
    windows: Sequence[pa.Table],
    config: ReplayConfig,
    *,
    now: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    on_window: Callable[[WindowRow], None] | None = None,
    before_window: Callable[[int], None] | None = None,
) -> list[WindowRow]:
    """Run the pipeline over consecutive windows, reading each window's outcome from the audit log.

    Args:
        windows: The windows, in time order.
        config: Store location, model, policy, gate and trainer.
        now: Decision time of each window (ISO 8601); defaults to the current time.
        labels: Run label of each window (default ``window-00``, ``window-01``...): its audit
            records, its data file ``data/LABEL.parquet`` and its run folder
            ``pipeline_root/LABEL/`` carry it.
        on_window: Called with each window's row as soon as its run ends.
        before_window: Called with each window's index before its run starts.

    Returns:
        One row per window.
    """
    # absolute: tasks in containers see the same paths, from another working directory
    workdir = config.workdir.resolve()
    store = workdir / "store"
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    images = sorted({engine_image("native"), engine_image(config.engine)})
    if labels is not None and (len(labels) != len(windows) or len(set(labels)) != len(labels)):
        raise ValueError(f"labels must name each of the {len(windows)} windows once: {labels}")
    registry = ModelRegistry(str(store), config.model_name)
    rows = []
    for i, table in enumerate(windows):
        if before_window:
            before_window(i)
        label = labels[i] if labels is not None else f"window-{i:02d}"
        # kfp.local names a run's folder by time alone: a root per window names it by window
        init_local(
            workdir / "pipeline_root" / label,
            runner=config.runner,
            mounts=(store, data_dir),
            images=images if i == 0 else (),
            warm=config.warm_tasks,
        )
        data_uri = str(data_dir / f"{label}.parquet")
        write_parquet(table, data_uri)
        run_pipeline(
            engine=config.engine,
            data_uri=data_uri,
            store_uri=str(store),
            model_name=config.model_name,
            label_column=config.target,
            time_column=config.time_column,
            policy=config.policy or DEFAULT_POLICY,
            gate=config.gate or DEFAULT_GATE,
            trainer=config.trainer,
            params=config.params or {},
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
