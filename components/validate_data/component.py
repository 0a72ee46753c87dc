"""KFP component: schema and anomaly validation of a window (TFDV formats)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from refit.components.types import Anomalies, Schema
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_data(
    window: Input[Dataset],
    label_column: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    anomalies: Output[Anomalies],
    statistics: Output[HTML],
    reference: Input[Dataset] = None,
    schema: Input[Schema] = None,
    engine: str = "native",
    beam_pipeline_args: list = [],  # noqa: B006 (a KFP parameter default, never mutated)
    late_labels: bool = False,
) -> bool:
    """Validate a window against reference data and a schema; the result gates the run.

    A function of its inputs alone (no store), so KFP caches it. Without ``reference`` and
    ``schema`` (the first run) the schema is inferred from the window itself, so only
    dataset-level checks apply (empty window, missing label column, all-null columns).
    Anomalies are in TFDV's Anomalies format (text proto), so TFDV and Facets can read them.
    The engine that ran is in the metadata of ``anomalies``, ``report`` and ``statistics``.

    ``engine="tfdv"`` needs TFDV in the task's container: the refit-tfdv image
    (``refit.images.tfdv_image()``), which sets ``REFIT_TFDV_PYTHON``. A component's image is
    fixed when the pipeline is compiled, not by this runtime parameter: a pipeline that runs
    TFDV sets the task's image,
    ``validate_data(...).set_container_image(refit.images.engine_image("tfdv"))``. Without a
    TFDV environment, ``engine="tfdv"`` fails with a message saying how to make one; ``auto``
    runs the native engine.

    Args:
        window: The window (Parquet).
        label_column: Label column; a window without it (or with it all null) is an anomaly
            unless ``late_labels``.
        reference: Reference data (Parquet; refit's ``resolve_champion`` gives the champion's
            training data): range checks and drift comparators; optional.
        schema: Schema to validate against (tensorflow-metadata Schema text proto); optional,
            inferred from ``reference`` (else the window) when absent.
        engine: ``native`` (default, refit's engine), ``tfdv`` (TFDV in its own interpreter,
            REFIT_TFDV_PYTHON) or ``auto`` (native).
        beam_pipeline_args: TFDV engine: list of Beam flags, e.g.
            ``["--runner=DataflowRunner", "--project=...", "--region=..."]``; any flag makes
            TFDV's statistics a Beam pipeline with those options, ``[]`` runs TFDV in-process.
        late_labels: Labels arrive after the window: a label column that is missing or all
            null is not an anomaly; the window is validated without it (every other check
            unchanged) and marked unlabelled (metadata ``labelled``, the audit summary, a line
            of the report). False (default): such a window is an anomaly.

    Returns:
        report: Self-contained HTML report (summary, anomalies, per-feature statistics).
        metrics: Number of anomalies and rows.
        anomalies: Anomalies text proto (schema written beside it as ``.schema.pbtxt``);
            metadata ``passed``, ``kinds``, the engine's facts and ``audit`` (JSON: the summary
            a stateful step records).
        statistics: Statistics view: TFDV's Facets overview (current vs reference) with the
            TFDV engine, which loads the Facets web components from the internet when opened;
            refit's self-contained statistics report with the native engine.
        Output: ``passed``: True when the window has no anomaly; gates the rest of the run
            (a single boolean return, as kfp.local 2.17 branches on no other output).
    """
    import json

    from refit import steps
    from refit.steps.data import parse_beam_pipeline_args

    def given(artifact):  # an optional input; resolver's "absent"
        return None if artifact is None or artifact.metadata.get("absent") else artifact.path

    out = steps.validate_data(
        window.path,
        label_column,
        reference_path=given(reference),
        schema_path=given(schema),
        anomalies_path=anomalies.path,
        engine=engine,
        beam_pipeline_args=parse_beam_pipeline_args(beam_pipeline_args),
        late_labels=late_labels,
    )
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    with open(statistics.path, "w", encoding="utf-8") as f:
        f.write(out.facets_html)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    with open(metrics.path, "w", encoding="utf-8") as f:
        json.dump(out.metrics, f)  # a file too: kfp.local's cache reuses outputs that exist
    anomalies.metadata.update(out.engine_metadata)
    anomalies.metadata.update(
        {
            "refit_type": "Anomalies",
            "passed": out.passed,
            "labelled": out.labelled,
            "kinds": sorted({a["kind"] for a in out.anomalies}),
            "audit": json.dumps(out.audit, sort_keys=True),
        }
    )
    for artifact in (report, statistics):
        artifact.metadata["engine"] = out.engine
        artifact.metadata["engine_requested"] = engine
    return out.passed
