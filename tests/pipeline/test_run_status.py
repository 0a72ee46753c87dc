"""The cluster-path behaviour of the whole pipeline under kfp.local: a run without a label is
labelled by its KFP run id, a failed task is named in the release record the exit handler writes,
and a deployment that cannot work is refused by the first task before any work."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from _pipeline import window_parameters

from refit.io.tables import write_parquet
from refit.pipelines.local import run_pipeline
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow

MODEL = "credit"


def _run(store: Path, table: pa.Table, name: str, **params: object) -> None:
    uri = str(store.parent / f"{store.name}-{name}.parquet")
    write_parquet(table, uri)
    run_pipeline(**window_parameters(str(store), uri, model=MODEL, n_estimators=20, **params))


def _labels(store: Path) -> list[str]:
    records = ModelRegistry(str(store), MODEL).audit.records()
    return list(dict.fromkeys(str(r["payload"].get("run_label")) for r in records))


def _records_of(root: Path, label: str) -> list[str]:
    """The release records (Markdown) the exit handler wrote for ``label`` under the root."""
    found = []
    for path in root.rglob("record_markdown"):
        text = path.read_text(encoding="utf-8")
        if f"run {label}" in text.splitlines()[0]:
            found.append(text)
    return found


def test_runs_without_a_label_each_get_their_run_id_and_their_own_record(
    tmp_path, kfp_local, windows
) -> None:
    store = tmp_path / "store"
    _run(store, windows[0], "a")
    _run(store, windows[1], "b")
    labels = _labels(store)
    assert len(labels) == 2, labels
    assert all(label and label != "None" and "{{" not in label for label in labels), labels
    for label in labels:
        (record,) = _records_of(kfp_local, label)
        assert "No run_label" not in record
        assert "## Data" in record and "_not run_" not in record.split("## Data")[1][:40]


def test_a_failed_task_is_named_in_the_release_record(tmp_path, kfp_local, windows) -> None:
    store = tmp_path / "store"
    with pytest.raises(RuntimeError, match="pipeline run failed"):
        _run(store, windows[0], "a", run_label="bad-trainer", trainer="no_such_trainer")
    (record,) = _records_of(kfp_local, "bad-trainer")
    status = record.split("## Run status")[1].split("## ")[0]
    assert "| KFP state | FAILED" in status
    assert "| Failed task | train-model |" in status
    assert "decide-retrain recorded its result (decision); train-model left no record" in status
    assert "**Outcome:** failed in train-model" in record


def test_a_run_that_fails_before_any_audit_record_still_gets_a_record(tmp_path, kfp_local) -> None:
    store = tmp_path / "store"
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet")
    with pytest.raises(RuntimeError, match="broken.parquet"):
        run_pipeline(
            data_uri=str(broken), store_uri=str(store), model_name=MODEL, run_label="unreadable"
        )
    (record,) = _records_of(kfp_local, "unreadable")
    assert "| Failed task | start-run or snapshot-data |" in record
    assert "no step of this run left an audit record" in record


@pytest.mark.parametrize(
    ("deploy", "reason"),
    [
        ({"deploy_target": "kserve"}, "deploy_target 'kserve' needs a rollout plan"),
        (
            {"rollout_plan": {"steps": [10, 100]}, "deploy_target": "kserve"},
            "deploy option 'namespace' is required by the kserve target",
        ),
        ({"rollout_plan": {"steps": [10]}}, "rollout_plan: steps must end at 100"),
    ],
    ids=["kserve-without-plan", "kserve-without-namespace", "bad-plan"],
)
def test_a_deployment_that_cannot_work_is_refused_by_the_first_task(
    tmp_path, kfp_local, windows, deploy, reason
) -> None:
    store = tmp_path / "store"
    label = f"refused-{tmp_path.name}"
    with pytest.raises(RuntimeError, match="pipeline run failed"):
        _run(store, windows[0], "a", run_label=label, **deploy)
    records = ModelRegistry(str(store), MODEL).audit.records()
    assert [r["event"] for r in records] == ["run_refused"], "nothing ran after the refusal"
    assert reason in records[0]["payload"]["reason"]
    assert ModelRegistry(str(store), MODEL).get_alias("champion") is None
    (record,) = _records_of(kfp_local, label)
    assert "| Failed task | start-run |" in record
    assert reason in record
