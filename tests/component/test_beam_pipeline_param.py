"""The retraining pipeline's ``beam_pipeline_args`` reach TFDV: a Beam DirectRunner run, whole.

The component test (``test_engine_param.py``) hands the flags to ``detect_drift`` directly; here
they go in as the pipeline's own parameter, as a team submitting to a cluster would pass
Dataflow's flags, and the drift task runs TFDV's statistics as a Beam pipeline with them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from _store import champion_store, write_window

from refit.demo.data import TARGET, TIME_COLUMN
from refit.pipelines.local import run_pipeline
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow
MODEL = "m"
#: A policy that never retrains here: the run stops after the decision.
HOLD = {"drift_share_threshold": 1.0, "metric": "accuracy", "metric_threshold": 0.0}


@pytest.mark.skipif(
    not os.environ.get("REFIT_TFDV_PYTHON"),
    reason="REFIT_TFDV_PYTHON is unset: build the TFDV env with scripts/tfdv-env.sh and "
    'export REFIT_TFDV_PYTHON="$(scripts/tfdv-env.sh | tail -n 1)"',
)
def test_beam_pipeline_args_of_the_pipeline_run_tfdv_on_the_direct_runner(
    tmp_path_factory: pytest.TempPathFactory, kfp_local: Path, windows: list[pa.Table]
) -> None:
    store = champion_store(
        tmp_path_factory.mktemp("store"), windows[0], MODEL, {"n_estimators": 10, "max_depth": 2}
    )
    uri = write_window(store, windows[3], "beam")
    beam = ["--runner=DirectRunner", "--direct_num_workers=1"]
    before = set(kfp_local.rglob("detect-drift/executor_output.json"))
    run_pipeline(
        engine="tfdv",
        data_uri=uri,
        store_uri=str(store),
        model_name=MODEL,
        label_column=TARGET,
        time_column=TIME_COLUMN,
        policy=HOLD,
        now="2026-02-01T00:00:00",
        run_label="beam",
        beam_pipeline_args=beam,
    )
    (output,) = set(kfp_local.rglob("detect-drift/executor_output.json")) - before
    drift = json.loads(output.read_text())["artifacts"]["drift"]["artifacts"][0]["metadata"]
    assert drift["engine"] == "tfdv"
    assert drift["beam"] is True
    assert drift["beam_pipeline_args"] == beam
    records = [
        r["payload"]
        for r in ModelRegistry(str(store), MODEL).audit.records()
        if r["event"] == "drift" and r["payload"].get("run_label") == "beam"
    ]
    assert records and records[-1]["engine"] == "tfdv"
    # window 3 shifts income, credit_score and channel (refit.demo.data)
    assert set(records[-1]["drifted"]) == {"income", "credit_score", "channel"}
