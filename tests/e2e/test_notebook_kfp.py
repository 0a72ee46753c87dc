"""Notebook 02 submits a run and a recurring run through the real kfp.Client to Prism."""

import json
from pathlib import Path

import nbformat
import pytest
from _servers import Prism, RecordingProxy
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_submit_to_kfp.ipynb"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    prism = Prism(tmp_path_factory.mktemp("prism"))
    recorder = RecordingProxy(prism.port)
    yield recorder
    recorder.close()
    prism.close()


def test_submit_notebook_sends_a_run_and_a_recurring_run(proxy, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[1].source.startswith("# Parameters")
    nb.cells[1].source = (
        f'KFP_HOST = "{proxy.url}"\nKFP_TOKEN = "t0ken"\nKFP_NAMESPACE = "ml"\n'
        'IMAGE_REPOSITORY = "registry.example.com/ml/refit"\nGCS_KEY_SECRET = "refit-gcs-key"\n'
        'STORE_PVC = None\nSTORE_MOUNT = "/mnt/refit"\nPIPELINE_ROOT = "gs://bucket/kfp-root"\n'
        'DATA_URI = "gs://bucket/data/latest.parquet"\nSTORE_URI = "gs://bucket/store"\n'
        'MODEL_NAME = "credit-default"\nTARGET = "default"'
    )
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert (tmp_path / "retraining.yaml").exists()
    # every request passed Prism's validation against the official KFP API
    assert proxy.requests and all(r["status"] == 200 for r in proxy.requests)
    (run,) = proxy.find("POST", "/apis/v2beta1/runs")
    body = json.loads(run["body"])
    assert body["runtime_config"]["parameters"]["store_uri"] == "gs://bucket/store"
    assert body["runtime_config"]["pipeline_root"] == "gs://bucket/kfp-root"
    # no run_label: each run is labelled by its KFP run id
    assert "run_label" not in body["runtime_config"]["parameters"]
    # the image repository and the key Secret were compiled in: nothing names ghcr.io
    compiled = (tmp_path / "retraining.yaml").read_text()
    assert "ghcr.io" not in compiled and "registry.example.com/ml/refit:" in compiled
    assert "refit-gcs-key" in compiled
    assert "ghcr.io" not in json.dumps(body["pipeline_spec"])
    (upload,) = proxy.find("POST", "/apis/v2beta1/pipelines/upload_version")
    assert b"registry.example.com/ml/refit:" in upload["body"] and b"ghcr.io" not in upload["body"]
    (recurring,) = proxy.find("POST", "/apis/v2beta1/recurringruns")
    body = json.loads(recurring["body"])
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True
    assert all(r["authorization"] == "Bearer t0ken" for r in proxy.requests)
