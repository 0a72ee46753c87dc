"""Notebooks run top to bottom, as committed (outputs stripped), in a fresh working folder."""

import json
import re
from pathlib import Path

import nbformat
import pyarrow.csv as pa_csv
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# 02_submit_to_kfp needs the KFP API mock (Prism): tests/e2e/test_notebook_kfp.py runs it.
LOCAL = ["01_quickstart.ipynb", "03_reuse_a_component.ipynb", "04_your_own_data.ipynb"]


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    nb = json.loads((NOTEBOOKS / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, name


def _execute(name: str, cwd: Path, parameters: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters is not None:
        nb.cells[1].source = parameters
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def test_quickstart_runs_the_loop_and_plots_it(tmp_path: Path) -> None:
    nb = _execute("01_quickstart.ipynb", tmp_path, 'WINDOWS = 8\nROWS = 600\nOUTPUT = "nb-demo"')
    text = "\n".join(
        o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "8 windows in" in text
    assert "audit log intact" in text
    assert (tmp_path / "nb-demo" / "timeline.png").stat().st_size > 10_000
    assert any(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    # nothing measured is a gap, not 0.0: window 0 has no reference to drift from
    table = next(
        o["data"]["text/html"]
        for c in nb.cells
        if c.cell_type == "code" and "asdict" in c.source
        for o in c.outputs
        if "text/html" in o.get("data", {})
    )
    cells = {  # window -> its cells (rows, anomalies, drift_share, ...)
        m[0]: re.findall(r"<td>(.*?)</td>", m[1], re.S)
        for m in re.findall(r"<tr>\s*<th>(\d+)</th>(.*?)</tr>", table, re.S)
    }
    assert cells["0"][2] == "NaN" and cells["1"][2] != "NaN"  # window 0: nothing to drift from
    # the plot draws the policy's thresholds; window 3's reports are shown inline
    plot = next(c for c in nb.cells if c.cell_type == "code" and "axhline" in c.source)
    assert 'DEMO_POLICY["drift_share_threshold"]' in plot.source
    html = [
        o["data"]["text/html"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "text/html" in o.get("data", {}) and "<!doctype html>" in o["data"]["text/html"].lower()
    ]
    assert len(html) == 3
    validation, drift, record = html
    assert "Validation of" in validation
    assert "dataset threshold 0.30" in drift
    assert "window-03" in record


def test_reuse_a_component_compiles_and_runs_locally(tmp_path: Path) -> None:
    nb = _execute("03_reuse_a_component.ipynb", tmp_path)
    assert (tmp_path / "my_drift_check.yaml").exists()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "drift share of the shifted window" in text
    assert "KFP Executor" not in text and "INFO" not in text  # quiet: no executor log
    # the drift report it produced, shown inline: the drifted features are in it
    html = nb.cells[-1].outputs[0]["data"]["text/html"]
    assert "income" in html and "credit_score" in html


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(
        o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


def _cell_text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def test_your_own_data_replays_a_users_file_end_to_end(tmp_path: Path) -> None:
    # a user's own CSV (an integer week column, an id column): the policy over every week,
    # then three weeks through the whole pipeline (train; concept change x2: retrain)
    from refit.demo.data import make_user_history

    users = tmp_path / "users.csv"
    pa_csv.write_csv(make_user_history(weeks=12, rows=600), str(users))
    nb = _execute(
        "04_your_own_data.ipynb",
        tmp_path,
        f'DATA = "{users}"\nLABEL = "churned"\nWINDOW_COLUMN = "week"\nTIME_COLUMN = ""\n'
        'EVERY = ""\nEXCLUDE = ["customer_id"]\nPIPELINE_WINDOWS = ["0", "6", "7"]\n'
        'WORKDIR = "work"\nROWS_PER_WEEK = 600',
    )
    text = _text(nb)
    assert f"replaying {users}" in text
    assert not (tmp_path / "my_history.csv").exists()  # the user's file, not the sample
    # salary drifts from week 9: named in the table; the id is never a feature
    policy_table = _cell_text(nb.cells[4])
    lines = {ln.split()[1]: ln for ln in policy_table.splitlines()[2:14]}
    assert all("salary" in lines[str(w)] for w in (9, 10, 11))
    assert "customer_id" not in policy_table
    # the plot leaves window 0 (nothing measured) as a gap and draws the policy threshold
    assert (tmp_path / "work-drift.png").stat().st_size > 10_000
    # end to end: week 0 trains v1; weeks 6 and 7 fall under accuracy 0.8: week 7 retrains
    rows = [ln.split() for ln in _cell_text(nb.cells[8]).splitlines()[1:4]]
    assert [r[1] for r in rows] == ["0", "6", "7"]
    assert [r[5] for r in rows] == ["retrain", "skip", "retrain"]
    assert rows[0][6] == "blessed" and rows[0][7] == "v1" and rows[1][7] == "v1"
    assert rows[2][6] == "blessed" and rows[2][7] == "v2"
    assert sorted(p.name for p in (tmp_path / "work" / "pipeline_root").iterdir()) == [
        "window-00-0", "window-01-6", "window-02-7"
    ]  # fmt: skip
    html = [
        o["data"]["text/html"] for o in nb.cells[-1].outputs if "text/html" in o.get("data", {})
    ]
    assert len(html) == 2 and "dataset threshold 0.30" in html[0]
    assert "window-02-7" in html[1]
