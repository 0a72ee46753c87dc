"""Component tasks that the component tests' small pipelines start with: a window's snapshot and
the champion, and drift detection of the window against the champion's reference."""

from __future__ import annotations

from typing import Any

from refit.components import detect_drift, resolve_champion, snapshot_data
from refit.demo.data import TARGET, TIME_COLUMN


def snapshot_and_champion(data_uri: str, store_uri: str, model: str) -> tuple[Any, Any]:
    """Inside a pipeline: the ``snapshot_data`` task of the window and ``resolve_champion``."""
    snap = snapshot_data(data_uri=data_uri, store_uri=store_uri, model_name=model)
    champ = resolve_champion(store_uri=store_uri, model_name=model)
    return snap, champ


def drift_against_champion(snap: Any, champ: Any, **options: Any) -> Any:
    """Inside a pipeline: ``detect_drift`` of the snapshot against the champion's reference.

    Args:
        snap: The ``snapshot_data`` task.
        champ: The ``resolve_champion`` task.
        **options: More ``detect_drift`` inputs (``engine``, ``baseline_model``...).
    """
    return detect_drift(
        window=snap.outputs["snapshot"],
        reference_profile=champ.outputs["reference_profile"],
        reference=champ.outputs["reference"],
        label_column=TARGET,
        time_column=TIME_COLUMN,
        **options,
    )
