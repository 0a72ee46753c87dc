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
    engine: str = "native",
    beam_pipeline_args_json: str = "[]",
) -> float:
    """Run the per-feature drift tests of the window against the champion's training data.

    The native engine runs refit's tests on the champion's stored reference profile; the TFDV
    engine runs TFDV's drift comparators (L-infinity on categorical features, Jensen-Shannon
    divergence on numeric ones). The engine that ran is in the metadata of ``drift`` and
    ``report``, in the drift JSON (``engine``) and in the audit record.

    ``engine="tfdv"`` needs TFDV in the task's container: the refit-tfdv image
    (``refit.images.tfdv_image()``), set at compile time with
    ``detect_drift(...).set_container_image(refit.images.engine_image("tfdv"))``; the
    component's default image has no TFDV. Without a TFDV environment, ``engine="tfdv"`` fails
    with a message saying how to make one; ``auto`` runs the native engine.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model whose champion's training snapshot is the reference.
        target: Label column, excluded from feature drift.
        time_column: Event-time column, excluded from feature drift.
        run_label: Label of this run in the audit log.
        engine: ``native`` (default, refit's tests), ``tfdv`` (TFDV's drift comparators in
            its own interpreter, REFIT_TFDV_PYTHON) or ``auto`` (native).
        beam_pipeline_args_json: TFDV engine: JSON list of Beam flags; any flag makes TFDV's
            statistics a Beam pipeline with those options, ``[]`` runs TFDV in-process.

    Returns:
        drift: Drift result JSON (``null`` before the first promotion).
        report: Self-contained HTML report, features sorted by drift.
        metrics: The drift share.
        Output: Share of features that drifted (0 without a reference).
    """
    import json

    from refit import steps
    from refit.steps.data import parse_beam_pipeline_args

    out = steps.detect_drift(
        snapshot.path,
        store_uri,
        model_name,
        target,
        time_column=time_column,
        run_label=run_label,
        engine=engine,
        beam_pipeline_args=parse_beam_pipeline_args(beam_pipeline_args_json),
    )
    with open(drift.path, "w", encoding="utf-8") as f:
        json.dump(out.result, f, sort_keys=True)
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    metrics.log_metric("drift_share", out.drift_share)
    drift.metadata.update(out.engine_metadata)
    report.metadata["engine"] = out.engine
    report.metadata["engine_requested"] = engine
    return out.drift_share
