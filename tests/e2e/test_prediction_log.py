"""`refit serve-model --prediction-log` as a real process, killed, then `refit labels join`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
from _servers import ModelServeProcess
from _v2 import infer_inputs

from refit.monitoring.predictions import read_predictions
from refit.registry import ModelRegistry
from refit.training import save_model, train

NAME = "credit"


def request(rows: pa.Table, rid: str) -> dict:
    return {"id": rid, "inputs": infer_inputs(rows)}


def test_served_predictions_survive_a_kill_and_join_their_late_labels(windows, tmp_path):
    model = train(windows[0], "default", trainer="logistic_regression", exclude=["event_time"])
    save_model(model, tmp_path / "m")
    reg = ModelRegistry(str(tmp_path / "store"), NAME)
    reg.register(
        tmp_path / "m", metrics={}, snapshot_sha256="0" * 64, parent_version=None, run_label="r"
    )
    reg.set_alias("champion", 1)
    log_dir = tmp_path / "predictions"
    rows = windows[3].slice(0, 40)
    answered: dict[str, object] = {}

    def serve_some(first: int, count: int) -> None:
        server = ModelServeProcess(reg.store_uri, NAME, "--prediction-log", str(log_dir))
        try:

            def one(i: int) -> None:
                r = server.client.post(
                    f"/v2/models/{NAME}/infer", json=request(rows.slice(i, 1), f"q{i}")
                )
                assert r.status_code == 200, r.text
                (predict,) = [o for o in r.json()["outputs"] if o["name"] == "predict"]
                answered[f"q{i}"] = predict["data"][0]

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(one, range(first, first + count)))
        finally:
            server.proc.send_signal(signal.SIGKILL)  # no graceful close of the log
            server.proc.wait()

    serve_some(0, 20)
    serve_some(20, 20)  # the restarted server appends after the killed one's lines
    log = read_predictions(log_dir)
    assert log.torn == []
    assert sorted(log.frame["id"]) == sorted(answered)  # every answered row, once
    assert dict(zip(log.frame["id"], log.frame["prediction"], strict=True)) == answered
    assert set(log.frame["version"]) == {1}

    # Labels land later, for 30 of the 40 predictions (one 10-year window holds every row).
    truth = rows.column("default").to_pylist()
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,label,time\n" + "".join(f"q{i},{truth[i]},2030-01-01T00:00:00Z\n" for i in range(30))
    )
    refit = str(Path(sys.executable).parent / "refit")
    done = subprocess.run(
        [refit, "labels", "join", "--predictions", str(log_dir), "--labels", str(labels)]
        + ["--window", "3650d", "--json", "--store", reg.store_uri, "--model", NAME],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (window,) = json.loads(done.stdout)["windows"]
    assert window["n_predictions"] == 40 and window["n_labelled"] == 30
    assert window["status"] == "partial" and window["coverage"] == 0.75
    expected = sum(str(answered[f"q{i}"]) == str(truth[i]) for i in range(30)) / 30
    assert window["realised"] == expected
    assert window["estimate"]["method"] == "CBPE"
    assert "recorded 0 window(s)" in done.stderr  # partial windows are not recorded yet
