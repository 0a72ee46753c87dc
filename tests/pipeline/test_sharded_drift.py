"""The sharded drift pipeline under kfp.local equals detect_drift on the whole window."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from refit.demo.data import TARGET, TIME_COLUMN
from refit.drift.accumulate import profile_table
from refit.drift.profile_io import save_profile
from refit.steps import detect_drift

pytestmark = pytest.mark.slow


def _drift_file(root: Path, before: set[Path]) -> dict:
    found = [p for p in root.rglob("profile-drift/drift") if p not in before]
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def test_sharded_pipeline_equals_single_task(
    kfp_local: Path, windows: list[pa.Table], tmp_path: Path
) -> None:
    from refit.pipelines.sharded_drift import build_sharded_drift_pipeline

    reference = tmp_path / "reference.json"
    save_profile(profile_table(windows[0]), str(reference))
    # drifted windows of the demo (window 4 renamed a column): 3200 rows, one file of 400-row
    # row groups
    parts = [windows[i] for i in (3, 5, 6, 7)]
    window = pa.concat_tables(parts)
    single_file = tmp_path / "window.parquet"
    pq.write_table(window, single_file, row_group_size=400)
    # the same rows as a folder of 4 files (one per window)
    folder = tmp_path / "window"
    folder.mkdir()
    for i, part in enumerate(parts):
        pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=400)

    single = detect_drift(
        str(single_file), TARGET, reference_profile_path=str(reference), time_column=TIME_COLUMN
    )
    assert single.result is not None and single.result["n_drifted"] > 0  # a real comparison

    pipeline = build_sharded_drift_pipeline(parallelism=3)
    for uri, shards in ((single_file, 5), (folder, 3)):
        before = set(kfp_local.rglob("profile-drift/drift"))
        task = pipeline(
            window_uri=str(uri),
            reference_profile_uri=str(reference),
            label_column=TARGET,
            time_column=TIME_COLUMN,
            shards=shards,
        )
        sharded = _drift_file(kfp_local, before)
        assert sharded == single.result, uri
        assert task.output == pytest.approx(single.drift_share)


def test_compiled_yaml_fans_out_with_a_limit() -> None:
    text = (Path(__file__).parents[2] / "pipelines" / "sharded_drift.yaml").read_text()
    spec = yaml.safe_load_all(text).__next__()
    dag = spec["root"]["dag"]["tasks"]
    loop = next(t for t in dag.values() if "iteratorPolicy" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 10
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-shards-Output")
    merge = dag["merge-profiles"]
    source = merge["inputs"]["artifacts"]["profiles"]["taskOutputArtifact"]
    assert source["producerTask"] == loop["taskInfo"]["name"]
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert list(inner) == ["profile-shard"]
