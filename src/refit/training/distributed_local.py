"""Distributed XGBoost as N local worker processes (tests, benchmarks, one worker per GPU).

:func:`run_local` starts ``python -m refit.training.distributed`` processes on this machine with
the ``DMLC_*`` variables the runtime would set, waits for them, and fails naming the worker that
failed (its exit status and last output) after stopping the others.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from refit.errors import TrainingError
from refit.training.distributed_plan import DistributedConfig, DmlcEnv

__all__ = ["free_port", "run_local"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a local tracker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_local(
    config: DistributedConfig,
    workers: int,
    *,
    tracker_uri: str = "127.0.0.1",
    tracker_port: int = 0,
    first_rank: int = 0,
    world: int | None = None,
    timeout_s: float = 3600.0,
    extra_env: Mapping[str, str] | None = None,
    gpus: Sequence[int] = (),
) -> list[int]:
    """Run ``workers`` worker processes here with the ``DMLC_*`` variables the runtime sets.

    Locally (tests, benchmarks) the workers are the whole job; on a GPU node they are that
    node's share (``first_rank``, ``world``, one GPU each through ``CUDA_VISIBLE_DEVICES``).
    When one worker fails, the others are stopped and the job fails naming it.

    Args:
        config: The training.
        workers: Processes to start here.
        tracker_uri: Host of the tracker.
        tracker_port: Its port; 0 picks a free one on 127.0.0.1.
        first_rank: Rank of the first process started here.
        world: Workers in the whole job; None: ``workers``.
        timeout_s: Seconds before the job is stopped and failed.
        extra_env: More environment for the workers.
        gpus: GPU indices, one per worker (empty: none set).

    Returns:
        The processes' ids (all exited 0).

    Raises:
        TrainingError: A worker failed or the job ran past ``timeout_s``; the message names
            the worker, its exit status and the last lines it printed.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TrainingError(f"workers must be a positive integer, got {workers!r}")
    if gpus and len(gpus) != workers:
        raise TrainingError(f"{workers} workers need {workers} GPU indices, got {list(gpus)}")
    world = workers if world is None else world
    port = tracker_port or free_port()
    procs: list[tuple[int, subprocess.Popen[bytes], Any]] = []
    with tempfile.TemporaryDirectory(prefix="refit-dist-") as tmp:
        config_path = Path(tmp) / "config.json"
        config_path.write_text(config.to_json(), encoding="utf-8")
        try:
            for i in range(workers):
                rank = first_rank + i
                env = {**os.environ, **(extra_env or {})}
                # Workers sharing this machine share its cores (OpenMP would oversubscribe).
                env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
                env.update(DmlcEnv(tracker_uri, port, rank, world).to_environ())
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(gpus[i])
                procs.append((rank, *_start_worker(config_path, Path(tmp), rank, env)))
            _wait(procs, world, timeout_s)
            return [proc.pid for _, proc, _ in procs]
        finally:
            for _, proc, log in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()


def _start_worker(
    config_path: Path, tmp: Path, rank: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Any]:
    """Start one worker process, its output going to a log file under ``tmp``."""
    log = open(tmp / f"worker-{rank}.log", "w+b")
    command = [
        sys.executable,
        "-m",
        "refit.training.distributed",
        "--config-file",
        str(config_path),
    ]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def _wait(
    procs: list[tuple[int, subprocess.Popen[bytes], Any]], world: int, timeout_s: float
) -> None:
    """Wait for every worker to exit 0.

    Raises:
        TrainingError: One failed (named, with its exit status and last output), or the job ran
            past ``timeout_s``; the caller stops the others.
    """
    deadline = time.monotonic() + timeout_s
    pending = {rank for rank, _, _ in procs}
    while pending:
        for rank, proc, log in procs:
            if rank not in pending or proc.poll() is None:
                continue
            pending.discard(rank)
            if proc.returncode != 0:
                raise TrainingError(
                    f"distributed training failed: worker {rank} of {world} "
                    f"{_exit_text(proc.returncode)}; the other workers were stopped. "
                    "A rerun with the same checkpoint_uri resumes from the last "
                    f"checkpoint. Its last output:\n{_tail(log)}"
                )
        if time.monotonic() > deadline:
            raise TrainingError(
                f"distributed training ran past {timeout_s:g} s; workers {sorted(pending)} "
                "were still running and were stopped"
            )
        time.sleep(0.02)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _tail(log: Any, lines: int = 15) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])
