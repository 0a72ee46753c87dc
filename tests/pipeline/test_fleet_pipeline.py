"""The fleet pipeline: one run fanning out over models with a parallelism limit."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet
from refit.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]


def test_compiled_fleet_runs_the_retraining_pipeline_per_model_with_a_limit() -> None:
    spec = next(yaml.safe_load_all((ROOT / "pipelines" / "fleet.yaml").read_text()))
    (loop,) = spec["root"]["dag"]["tasks"].values()
    assert loop["iteratorPolicy"]["parallelismLimit"] == 20
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--models"
    (inner,) = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"].values()
    assert inner["componentRef"]["name"] == "comp-refit-retraining"
    params = inner["inputs"]["parameters"]
    for name in ("model_name", "data_uri"):
        assert params[name]["parameterExpressionSelector"] == f'parseJson(string_value)["{name}"]'
    assert params["store_uri"]["componentInputParameter"] == "pipelinechannel--store_uri"
    # the nested pipeline is the whole retraining pipeline, release record included
    nested = spec["components"]["comp-refit-retraining"]["dag"]["tasks"]
    assert set(nested) == {"exit-handler-1", "release-record"}
    assert "snapshot-data" in spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert {"comp-train-model", "comp-promote-model"} <= set(spec["components"])


def test_parallelism_must_be_positive() -> None:
    from refit.pipelines.fleet import build_fleet_pipeline

    with pytest.raises(ValueError, match="parallelism must be a positive integer"):
        build_fleet_pipeline(0)


@pytest.mark.slow
def test_a_fleet_run_retrains_each_model_into_the_one_store(
    kfp_local: Path, windows: list[pa.Table], tmp_path: Path
) -> None:
    from refit.pipelines.fleet import build_fleet_pipeline

    store = tmp_path / "store"
    models = []
    for i, name in enumerate(("emea", "apac")):
        uri = str(tmp_path / f"{name}.parquet")
        write_parquet(windows[i], uri)
        models.append({"model_name": name, "data_uri": uri})
    build_fleet_pipeline(parallelism=1)(
        models=models,
        store_uri=str(store),
        label_column=TARGET,
        time_column=TIME_COLUMN,
        params={"n_estimators": 20, "max_depth": 3},
    )
    for name in ("emea", "apac"):
        registry = ModelRegistry(str(store), name)
        assert registry.get_alias("champion") == 1, name  # the first model of each
        assert registry.audit.verify() == []
