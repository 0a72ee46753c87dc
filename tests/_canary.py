"""The local canary/delivery stack shared by the e2e rollout tests: trained model versions in a
registry, ``refit serve-model`` scraped by a real Prometheus under load, and the drill scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
from _prometheus import PrometheusServer
from _servers import REPO, ModelServeProcess

from refit.deploy.local import LocalTarget
from refit.registry import ModelRegistry
from refit.training import save_model, train


def register_trained(
    reg: ModelRegistry, root: Path, tables: Sequence[pa.Table], *, parent: int | None
) -> ModelRegistry:
    """Train a logistic regression on each table, register them as v1, v2, ... and promote v1.

    Args:
        reg: The registry to register into.
        root: Folder for the saved model directories (``m1``, ``m2``, ...).
        tables: Training windows with the demo's ``default`` label, one per version.
        parent: Parent version of every version after v1 (v1 has none).

    Returns:
        ``reg``.
    """
    for version, data in enumerate(tables, start=1):
        model = train(data, "default", trainer="logistic_regression", exclude=["event_time"])
        save_model(model, root / f"m{version}")
        reg.register(
            root / f"m{version}",
            metrics={},
            snapshot_sha256=f"{version}" * 64,
            parent_version=None if version == 1 else parent,
            run_label=f"run-{version}",
        )
    LocalTarget(reg).promote(1, reason="first model")
    return reg


def reset_canary(reg: ModelRegistry) -> None:
    """Back to v1 as the only live model: no canary, v2 and v3 merely registered."""
    reg.update_aliases({"champion": 1, "previous": None, "canary": None})
    for v in (2, 3):
        reg.set_status(v, "registered")
    reg.set_status(1, "champion")
    reg.write_state("canary", {"version": None, "percent": 0})


@contextmanager
def scraped_under_load(
    server: ModelServeProcess,
    model: str,
    start_load: Callable[[], None],
    stop_load: Callable[[], None],
) -> Iterator[PrometheusServer]:
    """Prometheus scraping ``server`` every second while load runs; everything stops on exit.

    Yields only once the champion's (v1) request series exists in Prometheus, so that a rollout
    can compare with it. On exit the load is stopped, then Prometheus, then the server.

    Args:
        server: The running model server (stopped on exit).
        model: The served model's name.
        start_load: Starts the load generator.
        stop_load: Stops it and waits for it.

    Yields:
        The running Prometheus.
    """
    prom = PrometheusServer([f"127.0.0.1:{server.port}"], scrape_interval="1s")
    try:
        prom.__enter__()
        start_load()
        prom.wait_for(
            f'sum(increase(refit_model_requests_total{{model="{model}",revision="v1"}}[5s]))',
            lambda v: v is not None and v > 0,
            timeout=30,
        )
        yield prom
    finally:
        stop_load()
        prom.close()
        server.stop()


def run_drill(script: str, demo: Path, timeout: int) -> str:
    """Run ``scripts/<script>`` on a demo folder as the README tells a user; return its stdout.

    Args:
        script: The drill script's file name.
        demo: The demo folder (holding ``store``).
        timeout: Seconds the script may run.

    Returns:
        The script's standard output (it must exit 0).
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(
        [str(REPO / "scripts" / script), str(demo)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
