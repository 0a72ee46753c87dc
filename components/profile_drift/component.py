"""KFP component: feature drift of a window given as its (merged) profile."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Input, Metrics, Output

from refit.components.types import DriftReport, Profile
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def profile_drift(
    window_profile: Input[Profile],
    label_column: str,
    drift: Output[DriftReport],
    report: Output[HTML],
    metrics: Output[Metrics],
    reference_profile: Input[Profile] = None,
    time_column: str = "",
) -> NamedTuple("Outputs", drift_share=float):
    """Run refit's per-feature drift tests on a window's profile against the reference's.

    The sharded path's last step (``plan_shards`` -> ``profile_shard`` per shard ->
    ``merge_profiles`` -> this): the same tests as ``detect_drift``'s native engine on the same
    profiles, so the same result, without any task reading the whole window. A function of its
    inputs alone, so KFP caches it. Without a reference the report says so and the share is 0.

    Args:
        window_profile: The window's profile (``merge_profiles``' output).
        label_column: Label column, excluded from feature drift.
        reference_profile: Drift profile of the reference (``resolve_champion`` gives the
            champion's); optional.
        time_column: Event-time column, excluded from feature drift.

    Returns:
        drift: Drift result JSON (``null`` without a reference); metadata ``drift_share``,
            ``audit``.
        report: Self-contained HTML report.
        metrics: The drift share.
        drift_share: Share of features that drifted (0 without a reference).
    """
    import json
    from collections import namedtuple

    from refit.steps.shards import profile_drift as run

    absent = reference_profile is None or reference_profile.metadata.get("absent")
    out = run(
        window_profile.path,
        label_column,
        reference_profile_path=None if absent else reference_profile.path,
        time_column=time_column,
    )
    drift.metadata.update(out.write(drift.path, report.path))
    metrics.log_metric("drift_share", out.drift_share)
    with open(metrics.path, "w", encoding="utf-8") as f:
        json.dump(metrics.metadata, f)  # a file too: kfp.local's cache reuses outputs that exist
    return namedtuple("Outputs", ["drift_share"])(out.drift_share)
