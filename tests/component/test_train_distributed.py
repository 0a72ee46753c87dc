"""train_model with distributed settings, from its committed YAML, under kfp.local.

The local executor runs the TrainJob's worker module as two processes on loopback; the model
and the holdout folder (one Parquet part per worker) feed evaluate_model as they would in a
cluster run.
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from kfp import components, dsl
from kfp.dsl import Dataset

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
train_model = components.load_component_from_file(str(COMPONENTS / "train_model/component.yaml"))
evaluate_model = components.load_component_from_file(
    str(COMPONENTS / "evaluate_model/component.yaml")
)


class Outputs(NamedTuple):
    model: dsl.Model
    holdout: dsl.Dataset
    evaluation: dsl.Artifact


@dsl.pipeline
def distributed_training(window_uri: str) -> Outputs:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    trained = train_model(
        snapshot=window.output,
        label_column="label",
        params={"n_estimators": 30, "max_depth": 3},
        seed=2,
        distributed={"executor": "local", "workers": 2},
    )
    evaluation = evaluate_model(
        model=trained.outputs["model"],
        holdout=trained.outputs["holdout"],
        gate={"thresholds": {"roc_auc": 0.8}},
    )
    return Outputs(
        model=trained.outputs["model"],
        holdout=trained.outputs["holdout"],
        evaluation=evaluation.outputs["evaluation"],
    )


def test_train_model_runs_two_workers_and_evaluate_reads_their_holdout(
    tmp_path: Path, kfp_local: Path
) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6000, 3))
    label = (x[:, 0] + x[:, 1] + 0.5 * rng.normal(size=6000) > 0).astype(np.int64)
    window = tmp_path / "window.parquet"
    table = pa.table({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "label": label})
    pq.write_table(table, window, row_group_size=1000)

    run = distributed_training(window_uri=str(window))
    model = run.outputs["model"]
    audit = json.loads(model.metadata["audit"])
    assert audit["distributed"]["executor"] == "local"
    assert audit["distributed"]["workers"] == 2
    holdout = Path(run.outputs["holdout"].path)
    assert sorted(p.name for p in holdout.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    held = sum(pq.read_metadata(p).num_rows for p in holdout.iterdir())
    assert run.outputs["holdout"].metadata["rows"] == held
    assert audit["train_rows"] + held == table.num_rows
    evaluation = json.loads(Path(run.outputs["evaluation"].path).read_text())
    assert evaluation["blessed"] is True
    scored = json.loads(run.outputs["evaluation"].metadata["audit"])["challenger"]
    assert scored["n_rows"] == held  # every worker's holdout part was scored
    assert scored["roc_auc"] > 0.8
