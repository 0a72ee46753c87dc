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
    facets: Output[HTML],
    run_label: str = "",
    engine: str = "native",
    beam_pipeline_args_json: str = "[]",
) -> bool:
    """Validate the window against the champion's training data; ``passed`` gates training.

    Before the first promotion the schema is inferred from the window itself. Anomalies are in
    TFDV's Anomalies format (text proto), so TFDV and Facets can read them. The engine that ran
    is in the metadata of ``anomalies``, ``report`` and ``facets`` and in the audit record.

    ``engine="tfdv"`` needs TFDV in the task's container: the refit-tfdv image
    (``refit.images.tfdv_image()``), which sets ``REFIT_TFDV_PYTHON``. A component's image is
    fixed when the pipeline is compiled, not by this runtime parameter: the component's default
    image has no TFDV, so a pipeline that runs TFDV sets the task's image,
    ``validate_data(...).set_container_image(refit.images.engine_image("tfdv"))``. Without a
    TFDV environment, ``engine="tfdv"`` fails with a message saying how to make one; ``auto``
    runs the native engine.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store.
        model_name: Model whose champion supplies the reference statistics and schema.
        target: Label column; a window without it is an anomaly.
        run_label: Label of this run in the audit log.
        engine: ``native`` (default, refit's engine), ``tfdv`` (TFDV in its own interpreter,
            REFIT_TFDV_PYTHON) or ``auto`` (native).
        beam_pipeline_args_json: TFDV engine: JSON list of Beam flags, e.g.
            ``["--runner=DataflowRunner", "--project=...", "--region=..."]``; any flag makes
            TFDV's statistics a Beam pipeline with those options, ``[]`` runs TFDV in-process.

    Returns:
        report: Self-contained HTML report (summary, anomalies, per-feature statistics).
        metrics: Number of anomalies and rows.
        anomalies: Anomalies text proto (schema written beside it as ``.schema.pbtxt``).
        facets: Statistics view: TFDV's Facets overview (current vs reference) with the TFDV
            engine, which loads the Facets web components from the internet when opened;
            refit's self-contained statistics report with the native engine.
        Output: True when the window has no anomaly (``passed``); gates the rest of the run.
    """
    from refit import steps
    from refit.steps.data import parse_beam_pipeline_args

    out = steps.validate_data(
        snapshot.path,
        store_uri,
        model_name,
        target,
        anomalies_path=anomalies.path,
        run_label=run_label,
        engine=engine,
        beam_pipeline_args=parse_beam_pipeline_args(beam_pipeline_args_json),
    )
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    with open(facets.path, "w", encoding="utf-8") as f:
        f.write(out.facets_html)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    anomalies.metadata["kinds"] = sorted({a["kind"] for a in out.anomalies})
    anomalies.metadata.update(out.engine_metadata)
    for artifact in (report, facets):
        artifact.metadata["engine"] = out.engine
        artifact.metadata["engine_requested"] = engine
    return out.passed
