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
        f'KFP_HOST = "{proxy.url}"\nKFP_TOKEN = "t0ken"\n'
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
    assert (
        json.loads(run["body"])["runtime_config"]["parameters"]["store_uri"] == "gs://bucket/store"
    )
    (recurring,) = proxy.find("POST", "/apis/v2beta1/recurringruns")
    body = json.loads(recurring["body"])
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True
    assert all(r["authorization"] == "Bearer t0ken" for r in proxy.requests)
