"""`refit report` through the real CLI, on a store built by the pipeline steps: the table, the
JSON, the live model's confidence, release records, and bad input."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _store import GATE, run_history
from typer.testing import CliRunner

from refit.cli import app
from refit.deploy import get_target
from refit.registry import ModelRegistry

runner = CliRunner()
MODEL = "credit"
POLICY = {"drift_share_threshold": 0.3, "metric": "accuracy", "metric_threshold": 0.75}


@pytest.fixture(scope="module")
def store(tmp_path_factory, windows) -> Path:
    # window 3's retrain is promoted, then rolled back
    root = run_history(
        tmp_path_factory.mktemp("report") / "store", windows,
        model=MODEL, policy=POLICY, gate=GATE, price_per_hour=2.0,
    )  # fmt: skip
    get_target("local", ModelRegistry(str(root), MODEL)).rollback(
        reason="canary error rate", audit={"run_label": "window-03"}
    )
    return root


def invoke(*args: str):
    return runner.invoke(app, ["report", *args])


def test_report_json_summarises_each_iteration(store) -> None:
    result = invoke("--store", str(store), "--model", MODEL, "--json", "--last", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["live_version"] == 1 and data["iterations_total"] == 4
    assert data["decisions"] == {"retrain": 2, "skip": 1, "blocked": 1, "unknown": 0}
    assert data["rollbacks"] == 1 and data["chain"]["ok"] is True
    rows = data["iterations"]
    assert [r["run_label"] for r in rows] == ["window-01", "window-03", "window-04"]
    assert [r["decision"] for r in rows] == ["skip", "retrain", "blocked"]
    assert [r["outcome"] for r in rows] == ["no retrain", "v2 rolled back", "blocked by validation"]
    retrain = rows[1]
    assert retrain["trigger"] == "drift" and retrain["drift_share"] >= 0.3
    assert retrain["latency_s"] > 0 and retrain["cost"] > 0
    assert retrain["cost"] == retrain["training"]["cost"]
    records = {r["hash"]: r for r in ModelRegistry(str(store), MODEL).audit.records()}
    for row in rows:
        for hashes in row["backing"].values():
            assert all(h in records for h in hashes)
        assert {e["hash"] for e in row["events"]} <= set(records)
    drift = records[retrain["backing"]["drift"][0]]["payload"]
    assert drift["drift_share"] == retrain["drift_share"]


def test_report_json_has_the_live_models_confidence_on_recent_windows(store) -> None:
    result = invoke("--store", str(store), "--model", MODEL, "--json", "--last", "3")
    data = json.loads(result.output)
    conf = data["confidence"]
    assert conf["version"] == 1
    assert conf["edges"][0] == 0.5 and conf["edges"][-1] == 1.0 and len(conf["edges"]) == 11
    by_run = {w["run_label"]: w for w in conf["windows"]}
    assert list(by_run) == ["window-01", "window-03", "window-04"]
    assert "credit_score" in by_run["window-04"]["error"]  # the renamed column: not scorable
    for label in ("window-01", "window-03"):
        w = by_run[label]
        q = w["quantiles"]
        assert w["error"] == "" and w["rows"] == 800 and sum(w["histogram"]) == 800
        assert 0.5 <= q["p10"] <= q["p25"] <= q["p50"] <= q["p75"] <= q["p90"] <= 1.0
        assert 0.0 <= w["low_share"] <= 1.0
    pooled = conf["pooled"]
    assert pooled["rows"] == 1600 and sum(pooled["histogram"]) == 1600
    assert "recomputed now" in conf["note"]


def test_report_prints_tables(store) -> None:
    result = invoke("--store", str(store), "--model", MODEL)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "model credit · live v1 · 4 iterations" in out
    assert "audit chain verified (" in out
    for text in ("window-00", "first model", "promoted v1", "v2 rolled back", "blocked by"):
        assert text in out
    assert "Confidence of live v1" in out and "not scored" in out
    quiet = invoke("--store", str(store), "--model", MODEL, "--no-confidence", "--last", "1")
    assert quiet.exit_code == 0 and "Confidence" not in quiet.output
    assert "window-04" in quiet.output and "window-03" not in quiet.output


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hashes: list[str] = []
        self._in_hash = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_hash = tag == "code" and ("class", "hash") in attrs

    def handle_data(self, data):
        if self._in_hash:
            self.hashes.append(data)
            self._in_hash = False


def test_report_record_writes_markdown_and_html(store, tmp_path) -> None:
    out = tmp_path / "record"
    result = invoke("--store", str(store), "--model", MODEL, "record", "--run", "window-03",
                    "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "v2 rolled back; audit chain verified" in result.output
    md = (out / "release-window-03.md").read_text()
    page = (out / "release-window-03.html").read_text()
    assert "## Training" in md and "## Registration and rollout" in md
    assert "| Rolled back | v2 → v1: canary error rate |" in md
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "table" in parser.tags
    records = {r["hash"] for r in ModelRegistry(str(store), MODEL).audit.records()}
    assert parser.hashes and set(parser.hashes) <= records
    # The options may also follow the sub-command.
    again = invoke("record", "--store", str(store), "--model", MODEL, "--run", "window-04",
                   "-o", str(out))  # fmt: skip
    assert again.exit_code == 0 and (out / "release-window-04.md").exists()


def test_report_record_on_a_tampered_log_writes_it_and_exits_1(store, tmp_path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    log = copy / "models" / MODEL / "audit.jsonl"
    lines = log.read_text().splitlines()
    del lines[3]  # a record removed
    log.write_text("\n".join(lines) + "\n")
    result = invoke("record", "--store", str(copy), "--model", MODEL, "--run", "window-00",
                    "--output", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 1
    assert "audit chain BROKEN" in result.output and "removed" in result.output
    assert "Audit chain BROKEN" in (tmp_path / "out" / "release-window-00.md").read_text()
    table = invoke("--store", str(copy), "--model", MODEL, "--no-confidence")
    assert table.exit_code == 0 and "audit chain BROKEN" in table.output


def test_report_bad_input(store, tmp_path) -> None:
    unknown = invoke("--store", str(store), "--model", "nosuch")
    assert unknown.exit_code == 2
    assert "model 'nosuch' has no audit records and no versions" in unknown.output
    run = invoke("record", "--store", str(store), "--model", MODEL, "--run", "nope",
                 "--output", str(tmp_path))  # fmt: skip
    assert run.exit_code == 2 and "run_label 'nope' has no records" in run.output
    missing = invoke("--model", MODEL)
    assert missing.exit_code == 2 and "--store is required" in missing.output
    serve = invoke("serve-metrics", "--store", str(store), "--model", "nosuch", "--port", "0")
    assert serve.exit_code == 2 and "model 'nosuch'" in serve.output
    bad_last = invoke("--store", str(store), "--model", MODEL, "--last", "0")
    assert bad_last.exit_code == 2


def test_report_record_runs_as_the_readme_and_the_demo_print_it(store, tmp_path) -> None:
    # issue 17: the README's `refit report record --run window-03 ...` failed without --store
    import re

    from refit.pipelines import demo

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    quick = re.search(r"`(refit report record [^`]+)`", readme).group(1)
    # the demo's closing hint gives --store and --model too
    assert "refit report record --store {store} --model {MODEL_NAME} --run window-03" in (
        Path(demo.__file__).read_text()
    )
    args = quick.split()[2:]
    args = [str(store) if a == "refit-demo/store" else a for a in args]
    args = [MODEL if a == "credit-default" else a for a in args]
    args = [str(tmp_path / "records") if a == "refit-demo/records" else a for a in args]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "records" / "release-window-03.md").is_file()
    table_line = next(x for x in readme.splitlines() if x.startswith("| `refit report record"))
    assert "--store URI --model NAME --run LABEL --output DIR" in table_line
