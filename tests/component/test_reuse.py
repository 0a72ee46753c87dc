"""Reuse without refit's store: the committed component YAMLs in a user's own pipeline.

The pipeline imports a Parquet file and models with ``dsl.importer`` and runs validate_data,
detect_drift and evaluate_model loaded from ``components/*/component.yaml``, as an ML engineer
would in their own project: no store, no registry, no audit log.
"""

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import components, dsl
from kfp.dsl import Dataset, Model

from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet
from refit.steps import split_holdout
from refit.training.artifacts import save_model
from refit.training.trainers import train

pytestmark = pytest.mark.slow

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
validate_data = components.load_component_from_file(
    str(COMPONENTS / "validate_data/component.yaml")
)
detect_drift = components.load_component_from_file(str(COMPONENTS / "detect_drift/component.yaml"))
evaluate_model = components.load_component_from_file(
    str(COMPONENTS / "evaluate_model/component.yaml")
)
GATE = {"thresholds": {"accuracy": 0.7}, "max_degradation": 0.03}


class Outputs(NamedTuple):
    drift: dsl.Artifact
    evaluation: dsl.Artifact
    blessing: dsl.Artifact


@dsl.pipeline
def reuse(
    window_uri: str, reference_uri: str, baseline_uri: str, challenger_uri: str, holdout_uri: str
) -> Outputs:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Dataset, reimport=False)
    baseline = dsl.importer(artifact_uri=baseline_uri, artifact_class=Model, reimport=False)
    challenger = dsl.importer(artifact_uri=challenger_uri, artifact_class=Model, reimport=False)
    holdout = dsl.importer(artifact_uri=holdout_uri, artifact_class=Dataset, reimport=False)
    validate_data(window=window.output, reference=reference.output, label_column=TARGET)
    drift = detect_drift(
        window=window.output,
        reference=reference.output,
        baseline_model=baseline.output,
        label_column=TARGET,
        time_column=TIME_COLUMN,
    )
    evaluation = evaluate_model(
        model=challenger.output,
        holdout=holdout.output,
        baseline_model=baseline.output,
        gate=GATE,
    )
    return Outputs(
        drift=drift.outputs["drift"],
        evaluation=evaluation.outputs["evaluation"],
        blessing=evaluation.outputs["blessing"],
    )


def _model(table, folder: Path) -> str:
    model = train(
        table, TARGET, params={"n_estimators": 30, "max_depth": 3}, exclude=(TIME_COLUMN,)
    )
    save_model(model, folder)
    return str(folder)


def test_validate_drift_and_evaluate_run_from_their_yaml_on_imported_files(
    tmp_path: Path, kfp_local: Path, windows
) -> None:
    reference, window = windows[0], windows[3]  # window 3 drifted from window 0
    write_parquet(reference, str(tmp_path / "reference.parquet"))
    write_parquet(window, str(tmp_path / "window.parquet"))
    train_rows, holdout = split_holdout(window, 0.25, seed=0)
    write_parquet(holdout, str(tmp_path / "holdout.parquet"))
    run = reuse(
        window_uri=str(tmp_path / "window.parquet"),
        reference_uri=str(tmp_path / "reference.parquet"),
        baseline_uri=_model(reference, tmp_path / "baseline"),
        challenger_uri=_model(train_rows, tmp_path / "challenger"),
        holdout_uri=str(tmp_path / "holdout.parquet"),
    )
    drift = json.loads(Path(run.outputs["drift"].path).read_text())
    assert drift["drift_share"] >= 0.3
    assert {"income", "credit_score"} <= {n for n, f in drift["features"].items() if f["drifted"]}
    assert drift["explanation"]  # the baseline model explains which features moved it
    evaluation = json.loads(Path(run.outputs["evaluation"].path).read_text())
    assert evaluation["first_run"] is False  # a baseline came in: compared, not first run
    assert evaluation["champion_metrics"]["accuracy"] > 0
    blessing = json.loads(Path(run.outputs["blessing"].path).read_text())
    assert blessing["blessed"] == evaluation["blessed"]
    assert run.outputs["blessing"].metadata["refit_type"] == "ModelBlessing"
    # nothing wrote a store: no registry, no audit log anywhere
    assert not list(tmp_path.rglob("audit.jsonl"))
