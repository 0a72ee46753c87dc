"""The TFDV validation engine: TFDV's outputs as an engine result, and what TFDV leaves out.

:func:`validate_tfdv` runs TFDV out of process (:func:`refit.tfdv.client.run_tfdv`) and
returns the same :class:`~refit.validation.engines.EngineResult` as the native engine;
:func:`complete_anomalies` adds the reasons TFDV does not raise (an empty window, a missing
target) as refit's native engine reports them; :func:`require_tfdv` fails at once, saying how to
get TFDV, where none is configured.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from refit.tfdv.client import TfdvUnavailableError, run_tfdv, tfdv_python
from refit.validation.engines import EngineResult, recorded


def validate_tfdv(
    data: pa.Table,
    *,
    reference: pa.Table | None = None,
    schema: schema_pb2.Schema | None = None,
    beam_pipeline_args: list[str] | None = None,
    stats_options: dict[str, Any] | None = None,
    facets: bool = False,
    tfdv_python: str | None = None,
    staging_uri: str | None = None,
) -> EngineResult:
    """Validate with TFDV in its own interpreter (see :func:`refit.tfdv.client.run_tfdv`).

    Args:
        data: Data to check.
        reference: Reference data (drift comparators), or None.
        schema: TFDV schema, or None to infer one.
        beam_pipeline_args: Beam flags; statistics then run as a Beam pipeline.
        stats_options: ``tfdv.StatsOptions`` keyword arguments.
        facets: Also render Facets HTML.
        tfdv_python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        staging_uri: ``gs://`` location where a remote Beam runner's inputs and outputs are
            staged (default: the ``--temp_location`` flag; see
            :func:`refit.tfdv.client.staging_location`).

    Returns:
        The result (``engine="tfdv"``), its metadata holding the engine and TFDV's details.

    Raises:
        TfdvUnavailableError: No TFDV environment.
    """
    outputs = run_tfdv(
        data,
        reference=reference,
        schema=schema,
        beam_pipeline_args=beam_pipeline_args,
        stats_options=stats_options,
        facets=facets,
        staging_uri=staging_uri,
        python=tfdv_python,
    )
    result = EngineResult(
        engine="tfdv",
        requested="tfdv",
        statistics=outputs.statistics,
        schema=outputs.schema,
        anomalies=outputs.anomalies,
        reference_statistics=outputs.reference_statistics,
        facets_html=outputs.facets_html,
        metadata=dict(outputs.metadata),
    )
    return recorded(result, "tfdv")


def require_tfdv() -> None:
    """Check a TFDV environment is configured, before a step reads anything.

    Raises:
        TfdvUnavailableError: No usable ``REFIT_TFDV_PYTHON``; the message says how to make one
            and which image has one in a cluster.
    """
    from refit.images import tfdv_image

    try:
        tfdv_python()
    except TfdvUnavailableError as exc:
        raise TfdvUnavailableError(
            f"{exc}. In a cluster, run this task in the refit-tfdv image "
            f"({tfdv_image()}, e.g. task.set_container_image(refit.images.engine_image("
            "'tfdv'))), which sets REFIT_TFDV_PYTHON."
        ) from None


def _add_reason(
    anomalies: anomalies_pb2.Anomalies, feature: str | None, kind: int, short: str, text: str
) -> None:
    """Add one anomaly reason (dataset-level when ``feature`` is None), as refit's engine does."""
    if feature is None:
        info = anomalies.dataset_anomaly_info
    else:
        info = anomalies.anomaly_info[feature]
        if not info.path.step:
            info.path.step.append(feature)
        info.short_description = info.short_description or short
        info.description = info.description or text
    info.severity = anomalies_pb2.AnomalyInfo.ERROR
    reason = info.reason.add()
    reason.type = kind
    reason.short_description = short
    reason.description = text


def complete_anomalies(result: EngineResult, current: pa.Table, target: str) -> None:
    """Checks TFDV leaves to the caller, added to its anomalies so the step fails closed.

    TFDV only sets ``data_missing`` on an empty window (no reason), and knows nothing of the
    target unless its schema has it (before the first promotion the schema is inferred from
    the window itself). refit adds ``DATASET_LOW_NUM_EXAMPLES`` and a ``SCHEMA_MISSING_COLUMN``
    for a missing target, as its native engine reports them.

    Args:
        result: The TFDV engine's result; its anomalies are completed in place.
        current: The window TFDV validated.
        target: Label column ("" when the window may go without one).
    """
    anomalies = result.anomalies
    kind = anomalies_pb2.AnomalyInfo
    if current.num_rows == 0 and not anomalies.dataset_anomaly_info.reason:
        anomalies.data_missing = True
        _add_reason(
            anomalies,
            None,
            kind.DATASET_LOW_NUM_EXAMPLES,
            "Low num examples in dataset",
            "The window has 0 rows (added by refit; TFDV sets only data_missing).",
        )
    if target and target not in current.column_names and target not in anomalies.anomaly_info:
        _add_reason(
            anomalies,
            target,
            kind.SCHEMA_MISSING_COLUMN,
            "Required column missing",
            f"Required column {target!r} (the target) is not in the data.",
        )
