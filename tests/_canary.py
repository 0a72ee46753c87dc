"""The local canary/delivery stack shared by the e2e rollout tests: trained model versions in a
registry, ``refit serve-model`` scraped by a real Prometheus under load, and the drill scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from _models import register_models, train_demo_model
from _prometheus import PrometheusServer
from _servers import REPO, ModelServeProcess

from refit import steps
from refit.deploy.local import LocalTarget
from refit.registry import ModelRegistry


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
    models = {version: train_demo_model(data) for version, data in enumerate(tables, start=1)}
    register_models(reg, root, models, parent=parent)
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


def local_rollout(
    reg: ModelRegistry,
    server: ModelServeProcess,
    version: int,
    plan: dict[str, Any],
    run_label: str,
    **options: Any,
) -> Any:
    """Roll ``version`` out on the local target of ``server`` (``steps.canary_rollout``).

    Args:
        reg: The model's registry.
        server: The model server the local target moves traffic on.
        version: The version to roll out.
        plan: The rollout plan.
        run_label: The run label of the rollout's records.
        **options: More ``canary_rollout`` options (``check_parent``...).
    """
    return steps.canary_rollout(
        reg.store_uri,
        reg.model_name,
        version,
        plan,
        target="local",
        options={"server_url": server.url},
        run_label=run_label,
        **options,
    )


def run_drill(
    script: str, windows: Sequence[pa.Table], root: Path, timeout: int
) -> tuple[ModelRegistry, str, str]:
    """Run ``scripts/<script>`` as the README tells a user, on a demo folder made under ``root``.

    The folder's store holds ``credit-default`` v1 (the champion) and v2, trained on windows 0
    and 1, as after the demo.

    Args:
        script: The drill script's file name.
        windows: The demo windows.
        root: Folder for the demo folder (``root/demo``) and the model directories.
        timeout: Seconds the script may run.

    Returns:
        The registry, and the script's standard output (it must exit 0) before and after its
        second part (``== 2.``).
    """
    reg = ModelRegistry(str(root / "demo" / "store"), "credit-default")
    register_trained(reg, root, windows[0:2], parent=None)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(
        [str(REPO / "scripts" / script), str(root / "demo")],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    first, second = out.stdout.split("== 2.")
    return reg, first, second
