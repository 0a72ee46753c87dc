"""KFP component: schema and anomaly validation of a window (TFDV formats)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_data(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    target: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    anomalies: Output[Artifact],
    run_label: str = "",
) -> bool:
    """Validate the window against the champion's training data; ``passed`` gates training.

    Before the first promotion the schema is inferred from the window itself. Anomalies are in
    TFDV's Anomalies format (text proto), so TFDV and Facets can read them.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model whose champion supplies the reference statistics and schema.
        target: Label column; a window without it is an anomaly.
        run_label: Label of this run in the audit log.

    Returns:
        report: Self-contained HTML report (summary, anomalies, per-feature statistics).
        metrics: Number of anomalies and rows.
        anomalies: Anomalies text proto (schema written beside it as ``.schema.pbtxt``).
        Output: True when the window has no anomaly (``passed``); gates the rest of the run.
    """
    from refit import steps

    out = steps.validate_data(
        snapshot.path,
        store_uri,
        model_name,
        target,
        anomalies_path=anomalies.path,
        run_label=run_label,
    )
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    anomalies.metadata["kinds"] = sorted({a["kind"] for a in out.anomalies})
    return out.passed
