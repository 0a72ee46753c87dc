"""Shards of a window: plans cover every row once, shard profiles merge to the window's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _gcs import fake_gcs

from refit import drift
from refit.drift.accumulate import profile_table
from refit.drift.profile import merge_profiles
from refit.drift.profile_io import profile_uri
from refit.drift.shards import MAX_SHARDS, Shard, _split, plan_shards, profile_shard
from refit.errors import DataError
from refit.steps.shards import merge_profile_files, profile_drift, profile_window_shard


def _table(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(shift, 1.0, rows),
            "k": rng.integers(0, 40, rows),
            "c": rng.choice(["a", "b", "c"], rows),
            "y": rng.integers(0, 2, rows),
        }
    )


@pytest.mark.parametrize(
    ("weights", "count"), [([400] * 8, 5), ([15000] * 13 + [5000], 4), ([1] * 3, 10), ([7], 3)]
)
def test_split_covers_every_item_once_in_order(weights: list[int], count: int) -> None:
    runs = _split(weights, count)
    assert runs[0][0] == 0 and runs[-1][1] == len(weights)
    assert all(a < b for a, b in runs)
    assert all(runs[i][1] == runs[i + 1][0] for i in range(len(runs) - 1))
    assert len(runs) == min(count, len(weights))
    sums = [sum(weights[a:b]) for a, b in runs]
    assert max(sums) - min(sums) <= 2 * max(weights)


def test_shard_profiles_merge_to_the_window_profile(tmp_path: Path) -> None:
    window = _table(60_000, 1, shift=0.3)
    path = tmp_path / "w.parquet"
    pq.write_table(window, path, row_group_size=7_000)
    shards = plan_shards(str(path), 4)
    assert len(shards) == 4
    assert sum(s.rows for s in shards) == window.num_rows
    groups = [g for s in shards for p in s.parts for g in p.row_groups or ()]
    assert groups == list(range(pq.ParquetFile(path).metadata.num_row_groups))
    profiles = [profile_shard(Shard.from_json(s.to_json())) for s in shards]
    assert [p.rows for p in profiles] == [s.rows for s in shards]
    merged = merge_profiles(profiles)
    whole = profile_uri(str(path))
    assert merged.rows == whole.rows
    for name in ("x", "k", "c", "y"):  # counts and histograms exact; sum, m2 up to rounding
        got = merged.features[name].summary.to_dict()
        want = whole.features[name].summary.to_dict()
        for key in ("sum", "m2"):
            assert got.pop(key, 0.0) == pytest.approx(want.pop(key, 0.0), rel=1e-12)
        assert got == want, name
    reference = profile_table(_table(50_000, 2))
    assert (
        drift.detect_drift(reference, merged).to_dict()
        == drift.detect_drift(reference, whole).to_dict()
    )


def test_steps_write_and_judge_the_merged_profile(tmp_path: Path) -> None:
    folder = tmp_path / "window"
    folder.mkdir()
    for i in range(3):
        pq.write_table(_table(5_000, 10 + i, shift=1.0), folder / f"part-{i}.parquet")
    reference = tmp_path / "ref.json"
    reference.write_text(profile_table(_table(5_000, 3)).to_json())
    paths = []
    for i, shard in enumerate(plan_shards(str(folder), 10)):  # 3 files, 1 group each: 3 shards
        out = tmp_path / f"s{i}.json"
        assert profile_window_shard(shard.to_json(), str(out)) == 5_000
        paths.append(str(out))
    assert len(paths) == 3
    merged = tmp_path / "merged.json"
    assert merge_profile_files(paths, str(merged)) == 15_000
    out = profile_drift(str(merged), "y", reference_profile_path=str(reference))
    assert out.result is not None and "x" in out.audit["drifted"]
    assert "y" not in out.result["features"]
    first = profile_drift(str(merged), "y")
    assert first.result is None and first.drift_share == 0.0


def test_gcs_windows_split_by_object(tmp_path: Path) -> None:
    from refit.io.tables import write_parquet

    with fake_gcs("shards"):
        parts = [_table(2_000, 20 + i) for i in range(3)]
        for i, part in enumerate(parts):
            write_parquet(part, f"gs://shards/window/part-{i}.parquet")
        shards = plan_shards("gs://shards/window", 2)
        assert [len(s.parts) for s in shards] == [2, 1] or [len(s.parts) for s in shards] == [
            1,
            2,
        ]
        merged = merge_profiles([profile_shard(s) for s in shards])
        whole = profile_table(pa.concat_tables(parts))
        assert merged.rows == 6_000
        assert merged.features["c"].summary.to_dict() == whole.features["c"].summary.to_dict()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a shard description"),
        ('{"window": "w", "index": 0, "count": 1, "parts": []}', "has no files"),
        (
            '{"window": "w", "index": 3, "count": 2, "parts": [{"uri": "f", "row_groups": null}]}',
            "out of range",
        ),  # fmt: skip
        (
            '{"window": "w", "index": 0, "count": 1, "parts": [{"uri": "f", "row_groups": [-1]}]}',
            "row_groups",
        ),  # fmt: skip
    ],
)
def test_bad_shards_are_refused(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Shard.from_json(text)


def test_bad_plans_are_refused(tmp_path: Path) -> None:
    csv = tmp_path / "w.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(DataError, match="Parquet"):
        plan_shards(str(csv), 2)
    with pytest.raises(DataError, match="shards must be"):
        plan_shards(str(csv), MAX_SHARDS + 1)
    with pytest.raises(DataError, match="shards must be"):
        plan_shards(str(csv), 0)
    with pytest.raises(DataError, match="no such file"):
        plan_shards(str(tmp_path / "absent.parquet"), 2)
    with pytest.raises(DataError, match="no profiles"):
        merge_profile_files([], str(tmp_path / "m.json"))
