"""Steps of the sharded drift path: plan shards, profile each, merge, judge the merged profile.

``plan_shards`` -> a KFP ``ParallelFor`` of ``profile_shard`` -> ``merge_profiles`` ->
``profile_drift`` gives the same drift result as ``detect_drift`` on the whole window (a test
holds them equal), with no task reading more than its shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from refit import drift as drift_lib
from refit.defaults import DRIFT_SHARE_THRESHOLD
from refit.drift.profile import merge_profiles
from refit.drift.profile_io import load_profile, save_profile
from refit.drift.report import render_drift_html
from refit.drift.shards import Shard, plan_shards, profile_shard
from refit.errors import DataError
from refit.steps.drift import DriftOutput
from refit.steps.watch import watch_window, with_watch_section

#: Most profiles one merge task takes.
MAX_MERGE = 1000


def plan_window_shards(window_uri: str, shards: int) -> list[str]:
    """Split a Parquet window into at most ``shards`` shards (JSON text, ParallelFor items)."""
    return [s.to_json() for s in plan_shards(window_uri, shards)]


def profile_window_shard(shard: str, profile_path: str) -> int:
    """Profile one shard (JSON text from :func:`plan_window_shards`) to ``profile_path``.

    Returns:
        Rows profiled.
    """
    profile = profile_shard(Shard.from_json(shard))
    save_profile(profile, profile_path)
    return profile.rows


def merge_profile_files(paths: Sequence[str], profile_path: str) -> int:
    """Merge shard profiles (files) into the window's profile at ``profile_path``.

    Returns:
        Rows of the merged profile.

    Raises:
        DataError: No profiles, or more than :data:`MAX_MERGE`.
        SchemaError: A profile is unreadable or the shards' columns differ.
    """
    if not paths:
        raise DataError("merge_profiles got no profiles (did the ParallelFor run no shard?)")
    if len(paths) > MAX_MERGE:
        raise DataError(f"merge_profiles takes at most {MAX_MERGE} profiles, got {len(paths)}")
    profiles = [load_profile(p) for p in paths]
    merged = merge_profiles(profiles)
    merged.source = profiles[0].source
    save_profile(merged, profile_path)
    return merged.rows


def profile_drift(
    window_profile_path: str,
    target: str,
    *,
    reference_profile_path: str | None = None,
    time_column: str = "",
    name: str = "the window",
) -> DriftOutput:
    """Native drift of a window given as its profile against the reference's profile.

    The same tests as ``detect_drift``'s native engine on the same profiles (with the default
    policy's dataset threshold, label drift and feature mean shifts from the profiles), so the
    result equals ``detect_drift`` on the whole window without a champion model (prediction
    drift needs the model and the window's rows, which the sharded path does not read).

    Args:
        window_profile_path: Profile (JSON) of the window (merged from its shards).
        target: Label column (excluded from feature drift).
        reference_profile_path: Profile of the reference, or None (the first run).
        time_column: Time column (excluded from feature drift).
        name: What the report calls the data.

    Returns:
        As ``detect_drift`` (engine ``native``).
    """
    current = load_profile(window_profile_path)
    metadata = {"engine": "native", "engine_requested": "native", "rows": current.rows}
    if not reference_profile_path:
        html = (
            "<!doctype html><meta charset='utf-8'><title>Drift</title>"
            "<p>No reference (no champion yet): there is nothing to compare this window with.</p>"
        )
        audit: dict[str, Any] = {"drift_share": None, "drifted": [], "engine": "native"}
        audit["engine_requested"] = "native"
        return DriftOutput(None, 0.0, html, "native", metadata, audit)
    reference = load_profile(reference_profile_path)
    excluded = {target, time_column}
    columns = [c for c in reference.columns if c not in excluded and c in current.columns]
    result = drift_lib.detect_drift(
        reference, current, columns=columns, drift_share_threshold=DRIFT_SHARE_THRESHOLD
    )
    payload = result.to_dict()
    payload["engine"] = "native"
    payload.update(
        watch_window(
            reference, current, target, [c for c in payload["features"] if c not in excluded]
        )
    )
    share = float(payload["drift_share"])
    audit = {
        "drift_share": share,
        "drifted": [n for n, f in payload["features"].items() if f["drifted"]],
        "label_drift": (payload.get("label_drift") or {}).get("statistic"),
        "prediction_drift": None,
        "engine": "native",
        "engine_requested": "native",
    }
    html = render_drift_html(result, title=f"Drift of {name} features (native engine, sharded)")
    html = with_watch_section(html, payload)
    return DriftOutput(payload, share, html, "native", metadata, audit)
