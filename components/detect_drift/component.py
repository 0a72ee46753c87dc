"""KFP component: feature drift of a window against the champion's training data."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def detect_drift(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    target: str,
    drift: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
    time_column: str = "",
    run_label: str = "",
) -> float:
    """Run the per-feature drift tests of the window against the champion's training data.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model whose champion's training snapshot is the reference.
        target: Label column, excluded from feature drift.
        time_column: Event-time column, excluded from feature drift.
        run_label: Label of this run in the audit log.

    Returns:
        drift: Drift result JSON (``null`` before the first promotion).
        report: Self-contained HTML report, features sorted by drift.
        metrics: The drift share.
        Output: Share of features that drifted (0 without a reference).
    """
    import json

    from refit import steps

    out = steps.detect_drift(
        snapshot.path,
        store_uri,
        model_name,
        target,
        time_column=time_column,
        run_label=run_label,
    )
    with open(drift.path, "w", encoding="utf-8") as f:
        json.dump(out.result, f, sort_keys=True)
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    metrics.log_metric("drift_share", out.drift_share)
    return out.drift_share
