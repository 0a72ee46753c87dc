"""The whole retraining pipeline, run with kfp.local over consecutive windows and bad input."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _pipeline import POLICY, run_events, run_window

from refit.demo.data import TARGET
from refit.registry import ModelRegistry

pytestmark = pytest.mark.slow

MODEL = "credit"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, kfp_local: Path) -> Path:
    return tmp_path_factory.mktemp("store")


def _run(store: Path, table_or_uri: pa.Table | str, label: str) -> None:
    run_window(store, table_or_uri, label, model=MODEL, policy=POLICY, n_estimators=50)


def _events(store: Path, label: str) -> dict[str, dict]:
    return run_events(ModelRegistry(str(store), MODEL), label)


def _champion(store: Path) -> int | None:
    return ModelRegistry(str(store), MODEL).get_alias("champion")


def test_first_window_is_trained_blessed_on_thresholds_and_promoted(store, windows) -> None:
    _run(store, windows[0], "w0")
    events = _events(store, "w0")
    assert events["decision"]["retrain"] is True
    assert any("no champion" in r for r in events["decision"]["reasons"])
    assert events["evaluation"]["first_run"] is True
    assert any("absolute thresholds alone" in r for r in events["evaluation"]["reasons"])
    assert events["registration"]["version"] == 1
    assert _champion(store) == 1


def test_stable_window_changes_nothing(store, windows) -> None:
    _run(store, windows[1], "w1")
    events = _events(store, "w1")
    assert events["decision"]["retrain"] is False
    assert "training" not in events
    assert _champion(store) == 1


@pytest.mark.parametrize(
    "case",
    ["renamed_column", "missing_target", "empty_window", "all_null_column"],
)
def test_bad_window_stops_before_training_and_keeps_the_champion(store, windows, case) -> None:
    table = windows[1]
    if case == "renamed_column":
        bad = table.rename_columns(
            ["DebtRatio" if c == "debt_ratio" else c for c in table.column_names]
        )
    elif case == "missing_target":
        bad = table.drop_columns([TARGET])
    elif case == "empty_window":
        bad = table.slice(0, 0)
    else:
        bad = table.set_column(
            table.column_names.index("income"), "income", pa.nulls(table.num_rows, pa.float64())
        )
    before = _champion(store)
    _run(store, bad, f"bad-{case}")
    events = _events(store, f"bad-{case}")
    assert events["validation"]["passed"] is False
    assert events["validation"]["anomalies"], "a failed validation names its anomalies"
    assert not {"drift", "decision", "training", "registration"} & set(events)
    assert _champion(store) == before


def test_unreadable_file_fails_with_its_name_and_keeps_the_champion(store, tmp_path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet")
    before = _champion(store)
    with pytest.raises(Exception, match="broken.parquet"):
        _run(store, str(broken), "unreadable")
    assert _champion(store) == before
    assert "training" not in _events(store, "unreadable")


def test_shifted_window_retrains_on_drift_and_promotes(store, windows) -> None:
    _run(store, windows[3], "w3")
    events = _events(store, "w3")
    assert events["drift"]["drift_share"] >= POLICY["drift_share_threshold"]
    assert events["decision"]["retrain"] is True
    assert any("drift share" in r for r in events["decision"]["reasons"])
    assert events["evaluation"]["blessed"] is True
    assert events["evaluation"]["first_run"] is False
    registry = ModelRegistry(str(store), MODEL)
    assert registry.get_alias("champion") == 2
    assert registry.get_alias("previous") == 1
    v2 = registry.get(2)
    assert v2.parent_version == 1
    assert registry.audit.verify() == []
    # the new champion's training data is the next drift reference: window 3's snapshot
    assert v2.snapshot_sha256 == events_snapshot(store, "w3")


def events_snapshot(store: Path, label: str) -> str:
    return _events(store, label)["snapshot"]["sha256"]


def test_window_with_nulls_in_target_is_blocked_not_crashed(store, windows) -> None:
    table = windows[5]
    idx = table.column_names.index(TARGET)
    mask = pc.less(pa.array(range(table.num_rows)), 50)
    bad = table.set_column(
        idx, TARGET, pc.if_else(mask, pa.scalar(None, pa.int64()), table[TARGET])
    )
    before = _champion(store)
    _run(store, bad, "null-labels")
    events = _events(store, "null-labels")
    # either validation flags the missing labels, or training refuses them; never a promotion
    assert "registration" not in events
    assert _champion(store) == before
