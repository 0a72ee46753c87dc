"""The ``engine`` parameter of validate_data and detect_drift, through kfp.local.

``native`` and ``auto`` (without a TFDV environment) record the native engine; ``tfdv`` without
one fails with the library's how-to; ``tfdv`` with one (``REFIT_TFDV_PYTHON``, as in
``tests/e2e/test_tfdv_parity.py``: built by ``scripts/tfdv-env.sh``, exported by CI) runs TFDV
through the components and writes TFDV's Facets HTML.
"""

import base64
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pytest
from _store import champion_store, write_window
from _tasks import drift_against_champion, snapshot_and_champion
from kfp import dsl
from kfp.dsl import HTML, Artifact
from tensorflow_metadata.proto.v0 import statistics_pb2

from refit.components import (
    record_results,
    validate_data,
)
from refit.demo.data import TARGET
from refit.errors import SchemaError
from refit.registry import ModelRegistry
from refit.steps.data import parse_beam_pipeline_args
from refit.validation.statistics import feature_name

TFDV_PYTHON = os.environ.get("REFIT_TFDV_PYTHON", "")
pytestmark = pytest.mark.slow
MODEL = "m"
FEATURES = ("income", "age", "debt_ratio", "credit_score", "tenure_months", "region", "channel")


@pytest.fixture(scope="module")
def store(tmp_path_factory, kfp_local, windows) -> Path:
    """A store whose champion (v1) was trained on window 0, through the library steps."""
    return champion_store(
        tmp_path_factory.mktemp("store"), windows[0], MODEL, {"n_estimators": 10, "max_depth": 2}
    )


class Outputs(NamedTuple):
    facets: HTML
    report: HTML
    anomalies: Artifact
    drift: Artifact


@dsl.pipeline
def _check(
    data_uri: str,
    store_uri: str,
    engine: str,
    run_label: str,
    beam_pipeline_args: list = [],  # noqa: B006
) -> Outputs:
    snap, champ = snapshot_and_champion(data_uri, store_uri, MODEL)
    valid = validate_data(
        window=snap.outputs["snapshot"],
        reference=champ.outputs["reference"],
        label_column=TARGET,
        engine=engine,
    )
    drift = drift_against_champion(
        snap, champ, engine=engine, beam_pipeline_args=beam_pipeline_args
    )
    # the pure tasks take no store: a stateful step records what they found
    record_results(
        store_uri=store_uri,
        model_name=MODEL,
        validation=valid.outputs["anomalies"],
        drift=drift.outputs["drift"],
        run_label=run_label,
    )
    return Outputs(
        facets=valid.outputs["statistics"],
        report=valid.outputs["report"],
        anomalies=valid.outputs["anomalies"],
        drift=drift.outputs["drift"],
    )


def _run(store: Path, table: pa.Table, engine: str, label: str, **params: str):
    """Run ``_check`` on ``table`` with ``label`` as run label (and file name)."""
    uri = write_window(store, table, label)
    return _check(data_uri=uri, store_uri=str(store), engine=engine, run_label=label, **params)


def _facets_statistics(html: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The statistics a Facets overview page shows (its ``proto-input``, base64)."""
    found = re.search(r'<facets-overview proto-input="([A-Za-z0-9+/=]+)">', html)
    assert found, "no <facets-overview proto-input=...> element: not TFDV's Facets HTML"
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(base64.b64decode(found.group(1)))


def _audit(store: Path, event: str, run_label: str) -> dict:
    records = [
        r
        for r in ModelRegistry(str(store), MODEL).audit.records()
        if r["event"] == event and r["payload"]["run_label"] == run_label
    ]
    assert records, f"no {event} audit record for run {run_label!r}"
    return records[-1]["payload"]


def _assert_native(outputs, store: Path, requested: str, run_label: str) -> None:
    anomalies, facets, drift = outputs["anomalies"], outputs["facets"], outputs["drift"]
    assert anomalies.metadata["engine"] == "native"
    assert anomalies.metadata["engine_requested"] == requested
    assert facets.metadata == {"engine": "native", "engine_requested": requested}
    assert drift.metadata["engine"] == "native"
    assert drift.metadata["engine_requested"] == requested
    assert json.loads(Path(drift.path).read_text())["engine"] == "native"
    for event in ("validation", "drift"):
        record = _audit(store, event, run_label)
        assert (record["engine"], record["engine_requested"]) == ("native", requested)
    # the native statistics view: self-contained, every feature named, values escaped
    html = Path(facets.path).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "(native engine)" in html
    for name in FEATURES:
        assert f"<code>{name}</code>" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_native_engine_is_recorded_and_writes_a_statistics_view(store, windows) -> None:
    run = _run(store, windows[1], "native", "n1")
    _assert_native(run.outputs, store, "native", "n1")


def test_statistics_view_escapes_data(store, windows) -> None:
    table = windows[1]
    table = table.set_column(
        table.column_names.index("region"),
        "region",
        pa.array(["<b>x</b>"] * table.num_rows),
    )
    run = _run(store, table, "native", "esc")
    html = Path(run.outputs["facets"].path).read_text(encoding="utf-8")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def test_auto_without_tfdv_runs_native(store, windows, monkeypatch) -> None:
    monkeypatch.delenv("REFIT_TFDV_PYTHON", raising=False)
    run = _run(store, windows[1], "auto", "a1")
    _assert_native(run.outputs, store, "auto", "a1")


def test_tfdv_without_an_environment_fails_saying_how_to_make_one(
    store, windows, monkeypatch, capfd
) -> None:
    monkeypatch.delenv("REFIT_TFDV_PYTHON", raising=False)
    with pytest.raises(RuntimeError):
        _run(store, windows[1], "tfdv", "t0")
    log = "".join(capfd.readouterr())
    assert "TfdvUnavailableError" in log
    assert "REFIT_TFDV_PYTHON is not set" in log
    assert "scripts/tfdv-env.sh" in log
    assert "refit-tfdv image" in log
    # it failed before recording anything for this run
    runs = [r["payload"]["run_label"] for r in ModelRegistry(str(store), MODEL).audit.records()]
    assert "t0" not in runs


def test_beam_pipeline_args_is_checked() -> None:
    assert parse_beam_pipeline_args([]) is None
    assert parse_beam_pipeline_args(None) is None
    assert parse_beam_pipeline_args(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    for bad in ("--runner=DirectRunner", '["--runner=DirectRunner"]', [1], {"runner": "x"}):
        with pytest.raises(SchemaError, match="beam_pipeline_args must be a list of strings"):
            parse_beam_pipeline_args(bad)


@pytest.mark.skipif(
    not TFDV_PYTHON,
    reason="REFIT_TFDV_PYTHON is unset: build the TFDV env with scripts/tfdv-env.sh and "
    'export REFIT_TFDV_PYTHON="$(scripts/tfdv-env.sh | tail -n 1)"',
)
def test_tfdv_engine_through_the_components(store, windows) -> None:
    beam = ["--runner=DirectRunner"]
    run = _run(store, windows[3], "tfdv", "t3", beam_pipeline_args=beam)
    anomalies, facets, drift = (run.outputs[k] for k in ("anomalies", "facets", "drift"))
    assert anomalies.metadata["engine"] == "tfdv"
    assert anomalies.metadata["tfdv_version"].startswith("1.21")
    assert anomalies.metadata["beam"] is False  # validate_data ran TFDV in-process
    assert facets.metadata["engine"] == "tfdv"
    # TFDV's Facets overview of the window against the champion's training data
    html = Path(facets.path).read_text(encoding="utf-8")
    shown = _facets_statistics(html)
    assert [d.name for d in shown.datasets] == ["current", "reference"]
    for dataset in shown.datasets:
        assert set(FEATURES) <= {feature_name(f) for f in dataset.features}
    # detect_drift ran TFDV's comparators, its statistics as a Beam pipeline with the flags
    assert drift.metadata["engine"] == "tfdv"
    assert drift.metadata["beam"] is True
    assert drift.metadata["beam_pipeline_args"] == beam
    result = json.loads(Path(drift.path).read_text())
    assert result["engine"] == "tfdv"
    drifted = {n for n, f in result["features"].items() if f["drifted"]}
    # window 3 shifts income, credit_score and channel (refit.demo.data)
    assert drifted == {"income", "credit_score", "channel"}
    assert result["features"]["channel"]["test"] == "linf"
    assert result["features"]["income"]["test"] == "jensenshannon"
    for event in ("validation", "drift"):
        record = _audit(store, event, "t3")
        assert record["engine"] == "tfdv" and record["tfdv_version"].startswith("1.21")
