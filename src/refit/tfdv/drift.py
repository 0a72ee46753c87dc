"""Feature drift judged by TFDV's drift comparators, as a refit drift result.

The TFDV engine of ``detect_drift`` (:func:`refit.steps.detect_drift` with ``engine="tfdv"``):
a schema inferred from the reference gets a drift comparator per feature, TFDV measures them
(:func:`refit.tfdv.engine.validate_tfdv`) and its measurements become refit's
:class:`~refit.drift.detect.DriftResult`.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.drift.detect import DriftResult, FeatureDrift, not_comparable_feature
from refit.drift.profile import feature_type
from refit.errors import DataError
from refit.tfdv.engine import validate_tfdv
from refit.validation import compute_statistics, infer_schema
from refit.validation.engines import drift_measurements
from refit.validation.statistics import common_stats, feature_stats

#: The ``infinity_norm`` threshold refit sets on each categorical feature (as refit's own
#: ``linf`` test).
TFDV_LINF_THRESHOLD = 0.1
#: The ``jensen_shannon_divergence`` threshold refit sets on each numeric feature.
#: TFDV bins on its 10 equal-width histogram buckets, whose noise floor on unshifted windows of
#: a few hundred to a few thousand rows reaches 0.02-0.04 (refit's demo data: unshifted <= 0.036,
#: the demo's shifted features >= 0.11 at 800 rows); 0.05 flags the features refit's native
#: tests flag there (see also ``tests/e2e/test_tfdv_parity.py``).
TFDV_JS_DIVERGENCE_THRESHOLD = 0.05

_COMPARATOR_REASONS = frozenset(
    {
        anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
        anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    }
)


def _for_tfdv(table: pa.Table) -> pa.Table:
    """Booleans as strings, so TFDV sees a categorical feature (``infinity_norm``)."""
    columns = [c.cast(pa.string()) if pa.types.is_boolean(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _category_shares(stats: Any) -> dict[str, float]:
    """Category -> share from a feature's TFDV string statistics (top values)."""
    if stats is None or not stats.HasField("string_stats"):
        return {}
    values = stats.string_stats.top_values
    total = sum(v.frequency for v in values) or 1.0
    return {v.value: v.frequency / total for v in values}


def _feature_types(
    reference: pa.Table, current: pa.Table, columns: list[str]
) -> tuple[dict[str, str], dict[str, FeatureDrift], dict[str, str]]:
    """Sort the columns: ``(comparable name -> type, not comparable, skipped name -> why)``."""
    types: dict[str, str] = {}
    features: dict[str, FeatureDrift] = {}
    skipped: dict[str, str] = {}
    for name in columns:
        ref_type = feature_type(reference.column(name).type)
        cur_type = feature_type(current.column(name).type)
        if ref_type is None:
            skipped[name] = f"no drift comparator for type {reference.column(name).type}"
        elif ref_type != cur_type:
            features[name] = not_comparable_feature(
                name,
                ref_type,
                f"type changed from {reference.column(name).type} to {current.column(name).type}",
            )
        else:
            types[name] = ref_type
    return types, features, skipped


def _comparator_schema(reference: pa.Table, types: dict[str, str]) -> schema_pb2.Schema:
    """The reference's inferred schema with a drift comparator on each feature to compare."""
    schema = infer_schema(compute_statistics(reference))
    for feature in schema.feature:
        if types.get(feature.name) == "categorical":
            feature.drift_comparator.infinity_norm.threshold = TFDV_LINF_THRESHOLD
        elif feature.name in types:
            threshold = TFDV_JS_DIVERGENCE_THRESHOLD
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
    return schema


def _counts(
    ref: statistics_pb2.FeatureNameStatistics | None,
    cur: statistics_pb2.FeatureNameStatistics | None,
) -> dict[str, Any]:
    """Values and missing values on each side, as :class:`FeatureDrift` counts them."""
    counts: dict[str, Any] = {}
    for side, stats in (("reference", ref), ("current", cur)):
        common = common_stats(stats) if stats is not None else None
        counts[f"n_{side}"] = int(common.num_non_missing) if common is not None else 0
        counts[f"missing_{side}"] = int(common.num_missing) if common is not None else 0
    return counts


def _categories(
    ref: statistics_pb2.FeatureNameStatistics | None,
    cur: statistics_pb2.FeatureNameStatistics | None,
) -> dict[str, Any]:
    """Both sides' category shares, as a drift report draws them (empty without categories)."""
    ref_shares = _category_shares(ref)
    cur_shares = _category_shares(cur)
    labels = sorted(set(ref_shares) | set(cur_shares))
    if not labels:
        return {}
    return {
        "kind": "categories",
        "labels": labels,
        "reference": [ref_shares.get(k, 0.0) for k in labels],
        "current": [cur_shares.get(k, 0.0) for k in labels],
    }


def _feature_drift(
    name: str,
    ftype: str,
    measured: tuple[str, float, float] | None,
    drifted: bool,
    ref: statistics_pb2.FeatureNameStatistics | None,
    cur: statistics_pb2.FeatureNameStatistics | None,
) -> FeatureDrift:
    """One feature's TFDV measurement (``(type, value, threshold)`` or None) as refit's."""
    counts = _counts(ref, cur)
    if measured is None:
        return not_comparable_feature(
            name, ftype, "TFDV measured no drift (no values on a side?)", **counts
        )
    kind, value, threshold = measured
    distribution: dict[str, Any] = {}
    if kind == "L_INFTY":
        test, statistic = "linf", value
        distribution = _categories(ref, cur)
    else:
        test, statistic = "jensenshannon", math.sqrt(max(value, 0.0))
        threshold = math.sqrt(max(threshold, 0.0))
    return FeatureDrift(
        name=name,
        test=test,
        type=ftype,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=drifted,
        kind="distance",
        error_bound=None,
        distribution=distribution,
        **counts,
    )


def _drift_result(
    features: dict[str, FeatureDrift],
    tested: list[str],
    drift_share_threshold: float,
    skipped: dict[str, str],
) -> DriftResult:
    """The dataset's verdict on its features' drift."""
    comparable = [f for f in features.values() if f.comparable]
    if not comparable:
        raise DataError(f"TFDV measured the drift of no feature (columns {tested}): empty window?")
    n_drifted = sum(f.drifted for f in comparable)
    share = n_drifted / len(comparable)
    return DriftResult(
        drifted=share >= drift_share_threshold,
        drift_share=share,
        n_features=len(comparable),
        n_drifted=n_drifted,
        features=dict(sorted(features.items())),
        drift_share_threshold=float(drift_share_threshold),
        skipped=skipped,
    )


def tfdv_drift(
    reference: pa.Table,
    current: pa.Table,
    columns: list[str],
    *,
    beam_pipeline_args: list[str] | None = None,
    drift_share_threshold: float = 0.5,
    tfdv_python: str | None = None,
    staging_uri: str | None = None,
) -> tuple[DriftResult, dict[str, Any]]:
    """Feature drift judged by TFDV's drift comparators, as a refit :class:`DriftResult`.

    A schema is inferred from the reference (refit's inference, as the parity tests use) and
    given ``infinity_norm`` (threshold :data:`TFDV_LINF_THRESHOLD`) on categorical features
    and ``jensen_shannon_divergence`` (:data:`TFDV_JS_DIVERGENCE_THRESHOLD`) on numeric ones;
    TFDV's ``validate_statistics(..., previous_statistics=reference)`` measures them. A
    Jensen-Shannon feature's ``statistic`` is the distance (the square root of TFDV's
    divergence, as refit's ``jensenshannon`` test reports it; threshold likewise), and a
    feature drifted when TFDV raised its ``COMPARATOR_*_HIGH`` anomaly.

    Args:
        reference: Reference data (the champion's training snapshot).
        current: The window.
        columns: Columns to compare (present on both sides).
        beam_pipeline_args: Beam flags for TFDV's statistics (None: in-process).
        drift_share_threshold: The dataset drifted when this share of features drifted.
        tfdv_python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        staging_uri: ``gs://`` location for a remote Beam runner's inputs and outputs
            (default: the ``--temp_location`` flag; see
            :func:`refit.tfdv.client.staging_location`).

    Returns:
        The drift result and the engine's metadata (TFDV version, Beam args, timings).

    Raises:
        DataError: No column can be compared. TfdvUnavailableError: no TFDV environment.
    """
    types, features, skipped = _feature_types(reference, current, columns)
    if not types:
        raise DataError(
            f"no feature can be compared for drift with TFDV (columns {columns}; skipped: "
            f"{skipped or 'none'})"
        )
    tested = list(types)
    ref = _for_tfdv(reference.select(tested))
    result = validate_tfdv(
        _for_tfdv(current.select(tested)),
        reference=ref,
        schema=_comparator_schema(ref, types),
        beam_pipeline_args=beam_pipeline_args,
        tfdv_python=tfdv_python,
        staging_uri=staging_uri,
    )
    measured = drift_measurements(result.anomalies)
    flagged = {
        name
        for name, info in result.anomalies.anomaly_info.items()
        if any(r.type in _COMPARATOR_REASONS for r in info.reason)
    }
    cur_stats = feature_stats(result.statistics)
    ref_stats = (
        feature_stats(result.reference_statistics)
        if result.reference_statistics is not None
        else {}
    )
    for name, ftype in types.items():
        features[name] = _feature_drift(
            name,
            ftype,
            measured.get(name),
            name in flagged,
            ref_stats.get(name),
            cur_stats.get(name),
        )
    return _drift_result(features, tested, drift_share_threshold, skipped), dict(result.metadata)
