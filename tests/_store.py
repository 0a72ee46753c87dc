"""Stores built through the library steps (fast: no kfp.local): one with a champion, one window
run step by step as the retraining pipeline chains the steps, and a short history of such runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from refit import steps
from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.tables import write_parquet

#: The promotion gate of the step-level histories (the demo's).
GATE = {"thresholds": {"accuracy": 0.7, "roc_auc": 0.75}, "max_degradation": 0.03}
#: Window index -> run label of a history: window 0 trains the first model, 1 is quiet, 3 drifts
#: (a covariate shift: retrain), 4 is blocked by validation (a renamed column).
RUNS = {0: "window-00", 1: "window-01", 3: "window-03", 4: "window-04"}


def champion_store(
    root: Path,
    window: pa.Table,
    model: str,
    params: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> Path:
    """Make ``root`` a store whose champion (v1) of ``model`` was trained on ``window``.

    Args:
        root: The store folder.
        window: The training window.
        model: The model name.
        params: The trainer's parameters.
        metrics: The metrics registered with v1 (default: accuracy 0.9).
    """
    data = write_window(root, window, "w0")
    snap = steps.snapshot_data(data, str(root), model, str(root / "snap.parquet"))
    steps.train_model(
        str(root / "snap.parquet"),
        TARGET,
        str(root / "model"),
        str(root / "holdout.parquet"),
        params=params,
        time_column=TIME_COLUMN,
    )
    version = steps.register_model(
        str(root / "model"),
        str(root),
        model,
        snap.sha256,
        {"accuracy": 0.9} if metrics is None else metrics,
    )
    steps.promote_model(str(root), model, version)
    return root


def write_window(store: Path, table: pa.Table, name: str) -> str:
    """Write ``table`` as ``{store}/{name}.parquet`` and return its path."""
    path = store / f"{name}.parquet"
    write_parquet(table, str(path))
    return str(path)


def run_steps(
    store: Path,
    table: pa.Table,
    index: int,
    label: str,
    *,
    model: str,
    policy: dict[str, Any],
    gate: dict[str, Any],
    price_per_hour: float,
    node_profile: str = "",
) -> None:
    """Run one window through the steps, as the retraining pipeline chains them.

    Args:
        store: The store folder; the run's files go to ``<store>/../work-<label>``.
        table: The window.
        index: The window's index: the decision's time is 2026-02-<index + 1>.
        label: The run label.
        model: The model name.
        policy: The retrain policy.
        gate: The promotion gate.
        price_per_hour: The training node's price (the training record's cost).
        node_profile: The training node profile recorded.
    """
    work = store.parent / f"work-{label}"
    work.mkdir(parents=True, exist_ok=True)
    data, snap_path = str(work / "data.parquet"), str(work / "snapshot.parquet")
    write_parquet(table, data)
    s = str(store)
    snap = steps.snapshot_data(data, s, model, snap_path, time_column=TIME_COLUMN, run_label=label)
    champ = steps.resolve_champion(s, model)
    valid = steps.validate_data(snap_path, TARGET, reference_path=champ.reference_uri)
    if not valid.passed:
        steps.record_results(s, model, {"validation": valid.audit}, run_label=label)
        return
    drift = steps.detect_drift(
        snap_path, TARGET, reference_profile_path=champ.profile_uri,
        reference_path=champ.reference_uri, model_dir=champ.model_uri, time_column=TIME_COLUMN,
    )  # fmt: skip
    decision = steps.decide_retrain(
        snap_path, drift.result, s, model, TARGET, policy,
        now=f"2026-02-{index + 1:02d}T00:00:00", run_label=label,
        champion_dir=champ.model_uri, champion_version=champ.version,
        validation=valid.audit, drift=drift.audit,
    )  # fmt: skip
    if not decision.retrain:
        return
    model_dir, holdout = str(work / "model"), str(work / "holdout.parquet")
    trained = steps.train_model(
        snap_path, TARGET, model_dir, holdout,
        params={"n_estimators": 30, "max_depth": 3}, seed=0, time_column=TIME_COLUMN,
        device="cpu", price_per_hour=price_per_hour, node_profile=node_profile,
    )  # fmt: skip
    steps.record_results(s, model, {"training": trained.audit}, run_label=label)
    evaluation = steps.evaluate_model(
        model_dir, holdout, gate, baseline_dir=champ.model_uri, baseline_version=champ.version
    )
    steps.record_results(s, model, {"evaluation": evaluation.audit}, run_label=label)
    if not evaluation.blessed:
        return
    version = steps.register_model(
        model_dir, s, model, snap.sha256, evaluation.challenger or {}, run_label=label
    )
    steps.promote_model(s, model, version, run_label=label)


def run_history(root: Path, windows: list[pa.Table], **options: Any) -> Path:
    """Make ``root`` a store of the :data:`RUNS` windows run in turn with :func:`run_steps`.

    Args:
        root: The store folder.
        windows: The demo windows.
        **options: The :func:`run_steps` options (``model``, ``policy``, ``gate``...).

    Returns:
        ``root``.
    """
    for index, label in RUNS.items():
        run_steps(root, windows[index], index, label, **options)
    return root
