"""The pipeline trains on the right data: earlier windows with recency weights, an out-of-time
holdout and warm start, recorded in the lineage; and the multivariate drift check on request."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from _pipeline import run_window

from refit.demo.data import TIME_COLUMN
from refit.registry import ModelRegistry
from refit.registry.lineage import lineage_rows

pytestmark = pytest.mark.slow

MODEL = "credit"
POLICY = {"drift_share_threshold": 0.3, "metric": "accuracy", "metric_threshold": 0.75}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, kfp_local: Path) -> Path:
    return tmp_path_factory.mktemp("store")


def _run(store: Path, table: pa.Table, label: str) -> None:
    run_window(
        store,
        table,
        label,
        model=MODEL,
        policy=POLICY,
        training_window={"windows": 2, "recency_half_life": 1},
        holdout_split="time",
        warm_start=True,
        multivariate_drift={"method": "pca_reconstruction", "permutations": 199},
    )


def _events(store: Path, label: str) -> dict[str, dict]:
    records = ModelRegistry(str(store), MODEL).audit.records()
    return {r["event"]: r["payload"] for r in records if r["payload"].get("run_label") == label}


def test_the_second_model_trains_on_two_windows_warm_started_from_the_first(store, windows) -> None:
    _run(store, windows[0], "w0")
    first = _events(store, "w0")
    assert first["registration"]["version"] == 1
    assert first["training"]["training_data"]["warm_start"] == {
        "requested": True,
        "note": "no champion yet: trained from scratch",
    }

    _run(store, windows[3], "w3")
    events = _events(store, "w3")
    assert events["decision"]["retrain"] is True
    registry = ModelRegistry(str(store), MODEL)
    assert registry.get_alias("champion") == 2
    (_, v2) = lineage_rows(registry)
    data = json.loads(v2["training_data"])
    assert [w["sha256"] for w in data["windows"]] == [
        first["anonymization"]["sha256"],
        events["anonymization"]["sha256"],
    ]
    assert [w["weight"] for w in data["windows"]] == [0.5, 1.0]
    assert data["windows"][0]["run_label"] == "w0"
    assert data["holdout"]["split"] == "time" and data["holdout"]["time_column"] == TIME_COLUMN
    assert data["warm_start"]["from_sha256"] == registry.get(1).sha256
    assert data["warm_start"]["base_rounds"] == 30
    assert events["training"]["training_data"] == data
    # the drift step ran its multivariate check on request, beside the per-feature tests
    assert set(events["drift"]["multivariate"]) == {"drifted", "statistic", "p_value"}
