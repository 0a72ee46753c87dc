"""The README's demo, at reduced size, through the real CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_shows_the_whole_loop(tmp_path: Path) -> None:
    summary = tmp_path / "timeline.json"
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("refit")),
            "demo",
            "--windows",
            "8",
            "--rows",
            "800",
            "--output",
            str(out),
            "--summary-json",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(summary.read_text())
    assert [r["window"] for r in rows] == list(range(8))
    for r in rows:
        assert r["decision"] in {"retrain", "skip", "blocked"}
        assert isinstance(r["drift_share"], float) and 0.0 <= r["drift_share"] <= 1.0
        assert isinstance(r["live_version"], int) and r["reasons"]
    by = {r["window"]: r for r in rows}
    # first window: no champion, trained and promoted
    assert by[0]["decision"] == "retrain" and by[0]["live_version"] == 1
    # a window where nothing happens
    assert by[1]["decision"] == "skip" and by[1]["live_version"] == 1
    # a retrain caused by drift, and the challenger promoted
    assert by[3]["decision"] == "retrain"
    assert any(r.startswith("drift share") for r in by[3]["reasons"])
    assert by[3]["live_version"] == 2
    # the bad window (renamed column) blocked, champion untouched
    assert by[4]["decision"] == "blocked" and by[4]["live_version"] == 2
    assert any("creditScore" in r for r in by[4]["reasons"])
    # the concept change: accuracy decay over two windows triggers the next retrain
    assert by[6]["decision"] == "skip"
    assert by[7]["decision"] == "retrain" and by[7]["live_version"] == 3
    assert any("accuracy" in r for r in by[7]["reasons"])
    # readable results: the table on stdout, the HTML summary on disk
    assert "creditScore" in proc.stdout and "retrain" in proc.stdout
    html = (out / "summary.html").read_text()
    assert html.count("<tr>") == 1 + 8 and "blocked" in html  # header + one row per window
