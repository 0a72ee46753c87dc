"""Shared fixtures: the built-in demo windows at test size, and a kfp.local environment.

Shared test scaffolding lives next to this file as ``tests/_<name>.py`` (``_gcs``, ``_kmock``,
``_models``, ``_servers``, ...) and is imported by bare module name (``from _gcs import
fake_gcs``) from every test folder: tests/ has no ``__init__.py``, so pytest's default
``prepend`` import mode puts this folder on ``sys.path`` when it loads this conftest.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from refit.demo.data import DemoScenario, make_windows

#: Small but statistically meaningful: the shift and the concept change are still detected.
SCENARIO = DemoScenario(windows=8, rows=800, seed=7)


@pytest.fixture(scope="session")
def windows() -> list[pa.Table]:
    return make_windows(SCENARIO)


@pytest.fixture(scope="module")
def kfp_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Initialise kfp.local (subprocess runner, this Python) into a fresh pipeline root."""
    from refit.pipelines.local import init_local

    root = tmp_path_factory.mktemp("pipeline_root")
    init_local(root)
    return root
