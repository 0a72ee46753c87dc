"""Each component run through kfp.local, inside the small pipelines a user would write."""

from pathlib import Path
from typing import Any

import pytest
from _store import champion_store, write_window
from _tasks import drift_against_champion, snapshot_and_champion
from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Markdown

from refit.components import (
    decide_retrain,
    evaluate_model,
    promote_model,
    register_model,
    resolve_champion,
    snapshot_data,
    train_model,
    validate_data,
)
from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.snapshot import load_snapshot
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow
MODEL = "m"
GATE = {"thresholds": {"accuracy": 0.7}, "max_degradation": 0.03}
POLICY = {"drift_share_threshold": 0.3, "metric_threshold": 0.75}


@pytest.fixture(scope="module")
def store(tmp_path_factory, kfp_local, windows) -> Path:
    """A store whose champion (v1) was trained on window 0, through the library steps."""
    return champion_store(
        tmp_path_factory.mktemp("store"), windows[0], MODEL, {"n_estimators": 30, "max_depth": 3}
    )


def test_snapshot_data_is_content_addressed(store, windows) -> None:
    uri = write_window(store, windows[1], "w1")
    task = snapshot_data(data_uri=uri, store_uri=str(store), model_name=MODEL)
    sha = task.outputs["sha256"]
    table, snap = load_snapshot(str(store), sha)
    assert snap.rows == windows[1].num_rows == table.num_rows
    assert task.outputs["snapshot"].metadata["rows"] == windows[1].num_rows
    again = snapshot_data(data_uri=uri, store_uri=str(store), model_name=MODEL)
    assert again.outputs["sha256"] == sha


@dsl.pipeline
def _validate(data_uri: str, store_uri: str) -> HTML:
    snap, champ = snapshot_and_champion(data_uri, store_uri, MODEL)
    return validate_data(
        window=snap.outputs["snapshot"], reference=champ.outputs["reference"], label_column=TARGET
    ).outputs["report"]


@pytest.mark.parametrize("good", [True, False], ids=["stable", "renamed-column"])
def test_validate_data_reports_anomalies(store, windows, good) -> None:
    table = windows[1]
    if not good:
        table = table.rename_columns([c.replace("income", "Income") for c in table.column_names])
    report = _validate(
        data_uri=write_window(store, table, f"v-{good}"), store_uri=str(store)
    ).output
    html = Path(report.path).read_text()
    if good:
        assert "no anomal" in html.lower()
    else:
        assert "Income" in html and "SCHEMA_MISSING_COLUMN" in html


@dsl.pipeline
def _drift_decide(data_uri: str, store_uri: str) -> Markdown:
    snap, champ = snapshot_and_champion(data_uri, store_uri, MODEL)
    drift = drift_against_champion(snap, champ, baseline_model=champ.outputs["champion"])
    return decide_retrain(
        window=snap.outputs["snapshot"],
        drift=drift.outputs["drift"],
        champion=champ.outputs["champion"],
        store_uri=store_uri,
        model_name=MODEL,
        label_column=TARGET,
        policy=POLICY,
        now="2026-03-01T00:00:00",
    ).outputs["decision"]


def test_detect_drift_and_decide_retrain_on_a_shifted_window(store, windows) -> None:
    decision = _drift_decide(data_uri=write_window(store, windows[3], "w3"), store_uri=str(store))
    md = decision.output
    assert md.metadata["retrain"] is True
    assert any("drift share" in r for r in md.metadata["reasons"])
    assert "**Retrain.**" in Path(md.path).read_text()
    # the champion came from the resolver: the decision and drift records name it
    records = ModelRegistry(str(store), MODEL).audit.records()
    assert [r["event"] for r in records[-2:]] == ["drift", "decision"]
    assert records[-1]["payload"]["champion_version"] == 1
    assert records[-2]["payload"]["drift_share"] >= 0.3


def test_resolve_champion_emits_the_registrys_own_artifacts(store) -> None:
    task = resolve_champion(store_uri=str(store), model_name=MODEL)
    registry = ModelRegistry(str(store), MODEL)
    champion = registry.champion()
    assert task.outputs["has_champion"] is True
    assert task.outputs["champion_version"] == champion.version
    assert task.outputs["champion"].uri == champion.model_uri
    assert task.outputs["champion"].metadata["sha256"] == champion.sha256
    _, snap = load_snapshot(str(store), champion.snapshot_sha256)
    assert task.outputs["reference"].uri == snap.uri
    assert Path(task.outputs["reference_profile"].path).is_file()


def test_resolve_champion_without_a_champion_says_so(tmp_path, kfp_local) -> None:
    task = resolve_champion(store_uri=str(tmp_path / "empty"), model_name=MODEL)
    assert task.outputs["has_champion"] is False
    assert task.outputs["champion_version"] == 0
    assert task.outputs["champion"].metadata["absent"] is True


def _train_and_evaluate(data_uri: str, store_uri: str) -> tuple[Any, Any, Any]:
    """Inside a pipeline: snapshot, train and evaluate against the champion; the three tasks."""
    snap, champ = snapshot_and_champion(data_uri, store_uri, MODEL)
    trained = train_model(
        snapshot=snap.outputs["snapshot"],
        label_column=TARGET,
        params={"n_estimators": 30, "max_depth": 3},
        time_column=TIME_COLUMN,
    )
    evaluation = evaluate_model(
        model=trained.outputs["model"],
        holdout=trained.outputs["holdout"],
        baseline_model=champ.outputs["champion"],
        gate=GATE,
    )
    return snap, trained, evaluation


@dsl.pipeline
def _train_evaluate(data_uri: str, store_uri: str) -> ClassificationMetrics:
    _, _, evaluation = _train_and_evaluate(data_uri, store_uri)
    return evaluation.outputs["classification_metrics"]


def test_train_and_evaluate_write_kfp_classification_metrics(store, windows) -> None:
    cm = _train_evaluate(
        data_uri=write_window(store, windows[2], "w2"), store_uri=str(store)
    ).output
    matrix = cm.metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["0", "1"]
    holdout_rows = round(windows[2].num_rows * 0.25)
    assert sum(sum(r["row"]) for r in matrix["rows"]) == holdout_rows
    roc = cm.metadata["confidenceMetrics"]
    assert 2 <= len(roc) <= 200
    assert all(0.0 <= p["falsePositiveRate"] <= 1.0 for p in roc)


@dsl.pipeline
def _register_promote(data_uri: str, store_uri: str) -> int:
    snap, trained, evaluation = _train_and_evaluate(data_uri, store_uri)
    registered = register_model(
        model=trained.outputs["model"],
        store_uri=store_uri,
        model_name=MODEL,
        snapshot_sha256=snap.outputs["sha256"],
        evaluation=evaluation.outputs["evaluation"],
        run_id="legacy-run",  # deprecated input: still accepted, taken as the run label
    )
    return promote_model(
        store_uri=store_uri, model_name=MODEL, version=registered.outputs["version"]
    ).outputs["live_version"]


def test_register_and_promote_move_the_champion(store, windows) -> None:
    registry = ModelRegistry(str(store), MODEL)
    before = registry.get_alias("champion")
    live = _register_promote(
        data_uri=write_window(store, windows[2], "w2b"), store_uri=str(store)
    ).output
    assert live == registry.get_alias("champion") != before
    assert registry.get_alias("previous") == before
    version = registry.get(live)
    assert version.parent_version == before and version.run_label == "legacy-run"
    assert 0.0 < version.metrics["accuracy"] <= 1.0
