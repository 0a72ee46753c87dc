"""KFP component: feature drift of a window against reference data."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from refit.components.types import DriftReport, Profile
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def detect_drift(
    window: Input[Dataset],
    label_column: str,
    drift: Output[DriftReport],
    report: Output[HTML],
    metrics: Output[Metrics],
    reference_profile: Input[Profile] = None,
    reference: Input[Dataset] = None,
    baseline_model: Input[Model] = None,
    time_column: str = "",
    engine: str = "native",
    beam_pipeline_args: list = [],  # noqa: B006 (a KFP parameter default, never mutated)
    policy: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    multivariate: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
) -> NamedTuple("Outputs", drift_share=float):
    """Run the per-feature drift tests of a window against reference data.

    A function of its inputs alone (no store), so KFP caches it. The native engine runs
    refit's tests on ``reference_profile`` (or on a profile of ``reference``); the TFDV engine
    runs TFDV's drift comparators on ``reference`` (L-infinity on categorical features,
    Jensen-Shannon divergence on numeric ones). With ``baseline_model`` (an XGBoost model
    trained on ``reference``) the report also says which features moved its predictions.
    Apart from the feature drift share, the result holds the label drift (prior shift),
    the prediction drift of ``baseline_model`` (its scores on the window against its scores on
    its holdout) and the numeric features' mean shifts. Without a reference (the first run)
    the report says so and the drift share is 0.

    ``engine="tfdv"`` needs TFDV in the task's container: the refit-tfdv image
    (``refit.images.tfdv_image()``), set at compile time with
    ``detect_drift(...).set_container_image(refit.images.engine_image("tfdv"))``. Without a
    TFDV environment, ``engine="tfdv"`` fails with a message saying how to make one; ``auto``
    runs the native engine.

    Args:
        window: The window (Parquet).
        label_column: Label column, excluded from feature drift.
        reference_profile: Drift profile of the reference (refit's ``resolve_champion`` gives
            the champion's); optional.
        reference: Reference data (Parquet): the TFDV engine's reference, and the native
            engine's when no profile is given; optional.
        baseline_model: Model trained on the reference (the champion): prediction drift, its
            calibration for label-free estimates, and the drift explanation; optional.
        time_column: Event-time column, excluded from feature drift.
        engine: ``native`` (default, refit's tests), ``tfdv`` (TFDV's drift comparators in
            its own interpreter, REFIT_TFDV_PYTHON) or ``auto`` (native).
        beam_pipeline_args: TFDV engine: list of Beam flags; any flag makes TFDV's
            statistics a Beam pipeline with those options, ``[]`` runs TFDV in-process.
        policy: The retrain policy the run decides by: the report's dataset verdict uses its
            ``drift_share_threshold``, so report and decision agree; ``{}``: refit's default
            policy.

    Returns:
        drift: Drift result JSON (``null`` without a reference; with ``multivariate`` on, its
            result under ``multivariate``); metadata ``drift_share``, the engine's facts and
            ``audit`` (JSON: the summary a stateful step records).
        report: Self-contained HTML report, features sorted by drift.
        metrics: The drift share.
        drift_share: Share of features that drifted (0 without a reference).
    """
    import json
    from collections import namedtuple

    from refit import steps
    from refit.steps.data import parse_beam_pipeline_args

    def given(artifact):  # an optional input; resolver's "absent"
        return None if artifact is None or artifact.metadata.get("absent") else artifact.path

    out = steps.detect_drift(
        window.path,
        label_column,
        reference_profile_path=given(reference_profile),
        reference_path=given(reference),
        model_dir=given(baseline_model),
        time_column=time_column,
        engine=engine,
        beam_pipeline_args=parse_beam_pipeline_args(beam_pipeline_args),
        policy=policy,
        multivariate=multivariate,
    )
    drift.metadata.update(out.write(drift.path, report.path))
    metrics.log_metric("drift_share", out.drift_share)
    with open(metrics.path, "w", encoding="utf-8") as f:
        json.dump(metrics.metadata, f)  # a file too: kfp.local's cache reuses outputs that exist
    report.metadata["engine"] = out.engine
    report.metadata["engine_requested"] = engine
    return namedtuple("Outputs", ["drift_share"])(out.drift_share)
