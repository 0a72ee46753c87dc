"""Per-feature drift detection between a reference table and a current table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from refit.drift.base import TestSpec, available_tests, check_threshold, get_test
from refit.errors import DataError, DriftError

DEFAULT_TESTS: dict[str, str] = {"numeric": "ks", "categorical": "chisquare"}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift test result for one feature.

    Attributes:
        name: Column name.
        test: Registered test name.
        type: ``"numeric"`` or ``"categorical"``.
        statistic: Test statistic.
        p_value: p-value (``None`` for distance tests).
        threshold: Threshold the feature was judged against.
        drifted: Whether the feature drifted.
        kind: ``"p_value"`` or ``"distance"``.
        n_reference: Non-missing reference values tested.
        n_current: Non-missing current values tested.
        missing_reference: Missing (null or NaN) reference values dropped before the test.
        missing_current: Missing (null or NaN) current values dropped before the test.
        p_value_adjusted: p-value after the multiple-testing correction (what ``drifted`` is
            judged on for p-value tests); ``None`` for distance tests.
    """

    name: str
    test: str
    type: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    kind: str = "p_value"
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0
    p_value_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the name, which is the key in :meth:`DriftResult.to_dict`)."""
        data = asdict(self)
        del data["name"]
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureDrift:
        """Inverse of :meth:`to_dict`."""
        try:
            p_value = data["p_value"]
            return cls(
                name=name,
                test=str(data["test"]),
                type=str(data["type"]),
                statistic=float(data["statistic"]),
                p_value=None if p_value is None else float(p_value),
                threshold=float(data["threshold"]),
                drifted=bool(data["drifted"]),
                kind=str(data.get("kind", "distance" if p_value is None else "p_value")),
                n_reference=int(data.get("n_reference", 0)),
                n_current=int(data.get("n_current", 0)),
                missing_reference=int(data.get("missing_reference", 0)),
                missing_current=int(data.get("missing_current", 0)),
                p_value_adjusted=(
                    None
                    if data.get("p_value_adjusted") is None
                    else float(data["p_value_adjusted"])
                ),
            )
        except KeyError as exc:
            raise DataError(
                f"drift result for feature {name!r} lacks field {exc.args[0]!r}"
            ) from None

    def severity(self) -> float:
        """How far the feature is into (small) or away from (large) drift, relative to threshold.

        ``p_value / threshold`` for p-value tests, ``threshold / statistic`` for distances, so
        lower means more drift in both cases and the two kinds sort together.
        """
        if self.kind == "p_value" or self.p_value is not None:
            p = self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value
            return (p if p is not None else 1.0) / self.threshold
        return self.threshold / self.statistic if self.statistic > 0 else math.inf


@dataclass(frozen=True)
class DriftResult:
    """Drift over all compared features.

    Attributes:
        drifted: Whether the dataset drifted (``drift_share >= drift_share_threshold``).
        drift_share: Share of tested features that drifted.
        n_features: Number of tested features.
        n_drifted: Number of drifted features.
        features: Per-feature results by column name.
        drift_share_threshold: Share of drifted features at which the dataset counts as drifted.
        skipped: Columns left out because no test handles their type: name -> reason.
    """

    drifted: bool
    drift_share: float
    n_features: int
    n_drifted: int
    features: dict[str, FeatureDrift]
    drift_share_threshold: float = 0.5
    skipped: dict[str, str] = field(default_factory=dict)

    def drifted_features(self) -> list[str]:
        """Names of the drifted features, most drifted first."""
        return [f.name for f in self.sorted_features() if f.drifted]

    def sorted_features(self) -> list[FeatureDrift]:
        """Features ordered by drift, most drifted first.

        Drifted first, then by p-value ascending / distance descending (both relative to their
        threshold, see :meth:`FeatureDrift.severity`), then by name.
        """
        return sorted(self.features.values(), key=lambda f: (not f.drifted, f.severity(), f.name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (see docs/library-api.md)."""
        return {
            "drifted": self.drifted,
            "drift_share": self.drift_share,
            "n_features": self.n_features,
            "n_drifted": self.n_drifted,
            "drift_share_threshold": self.drift_share_threshold,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            DataError: If a required field is missing.
        """
        try:
            features = {
                name: FeatureDrift.from_dict(name, value)
                for name, value in dict(data["features"]).items()
            }
            return cls(
                drifted=bool(data["drifted"]),
                drift_share=float(data["drift_share"]),
                n_features=int(data["n_features"]),
                n_drifted=int(data["n_drifted"]),
                features=features,
                drift_share_threshold=float(data.get("drift_share_threshold", 0.5)),
                skipped={str(k): str(v) for k, v in dict(data.get("skipped", {})).items()},
            )
        except KeyError as exc:
            raise DataError(f"drift result lacks field {exc.args[0]!r}") from None


def feature_type(arrow_type: pa.DataType) -> str | None:
    """Map an Arrow type to ``"numeric"``, ``"categorical"`` or ``None`` (unsupported)."""
    if pa.types.is_boolean(arrow_type):
        return "categorical"
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    ):
        return "numeric"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_dictionary(arrow_type)
    ):
        return "categorical"
    return None


def column_values(column: pa.ChunkedArray | pa.Array, ftype: str) -> tuple[np.ndarray, int]:
    """Convert an Arrow column to a clean numpy array once, dropping missing values.

    Args:
        column: The Arrow column.
        ftype: ``"numeric"`` (-> float64, nulls and NaN dropped) or ``"categorical"``
            (-> object array of str, nulls dropped).

    Returns:
        ``(values, n_missing)``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    total = len(column)
    column = column.drop_null()
    if ftype == "numeric":
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        values = values[~np.isnan(values)]
    else:
        values = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(object)
    return values, total - len(values)


def _resolve_columns(
    reference: pa.Table, current: pa.Table, columns: Sequence[str] | None
) -> tuple[list[str], bool]:
    ref_names, cur_names = reference.column_names, current.column_names
    if columns is None:
        only_ref = [c for c in ref_names if c not in cur_names]
        only_cur = [c for c in cur_names if c not in ref_names]
        if only_ref or only_cur:
            parts = []
            if only_ref:
                parts.append(f"missing from current: {', '.join(only_ref)}")
            if only_cur:
                parts.append(f"missing from reference: {', '.join(only_cur)}")
            raise DataError(
                "reference and current tables have different columns (" + "; ".join(parts) + ")"
            )
        return list(ref_names), False
    if isinstance(columns, str):
        raise DataError(f"columns must be a list of column names, got the string {columns!r}")
    cols = list(dict.fromkeys(columns))
    missing_ref = [c for c in cols if c not in ref_names]
    missing_cur = [c for c in cols if c not in cur_names]
    if missing_ref or missing_cur:
        parts = []
        if missing_ref:
            parts.append(f"missing from reference: {', '.join(missing_ref)}")
        if missing_cur:
            parts.append(f"missing from current: {', '.join(missing_cur)}")
        raise DataError("requested drift columns not found (" + "; ".join(parts) + ")")
    return cols, True


#: Multiple-testing corrections :func:`detect_drift` accepts.
CORRECTIONS = ("bh", "bonferroni", "none")


def adjust_p_values(features: dict[str, FeatureDrift], correction: str) -> dict[str, FeatureDrift]:
    """Correct the p-values of the p-value tests for multiple testing and re-judge drift.

    Args:
        features: Per-feature results, drift judged on raw p-values.
        correction: One of :data:`CORRECTIONS`.

    Returns:
        The results with ``p_value_adjusted`` set and ``drifted`` judged on it.
    """
    names = [n for n, f in features.items() if f.p_value is not None]
    if not names:
        return features
    raw = np.array([features[n].p_value for n in names], dtype=float)
    if correction == "bh":
        adjusted = stats.false_discovery_control(raw, method="bh")
    elif correction == "bonferroni":
        adjusted = np.minimum(raw * len(raw), 1.0)
    else:
        adjusted = raw
    out = dict(features)
    for name, p in zip(names, adjusted, strict=True):
        f = features[name]
        out[name] = replace(f, p_value_adjusted=float(p), drifted=bool(p < f.threshold))
    return out


def detect_drift(
    reference: pa.Table,
    current: pa.Table,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share_threshold: float = 0.5,
    correction: str = "bh",
) -> DriftResult:
    """Test each feature of ``current`` for drift against ``reference``.

    Args:
        reference: Reference (training-time) data.
        current: Current window of data.
        columns: Columns to test; default all columns, which must then be the same in both
            tables. With ``None``, columns of a type no test handles (timestamps, lists, ...) are
            skipped and listed in :attr:`DriftResult.skipped`; named explicitly they raise.
        tests: Test name per column; default ``"ks"`` for numeric and ``"chisquare"`` for
            categorical columns (string, bool, dictionary).
        thresholds: Threshold per column name or per test name (a column entry wins); default
            the test's own default threshold. P-value tests drift when ``p_value < threshold``,
            distance tests when ``statistic >= threshold``.
        drift_share_threshold: The dataset drifted when the share of drifted features is at
            least this (in [0, 1]).
        correction: Multiple-testing correction over the p-value tests: ``"bh"``
            (Benjamini-Hochberg, the default), ``"bonferroni"`` or ``"none"``. Testing many
            features at 0.05 flags unshifted ones by chance; the correction keeps the share of
            false alarms near the threshold.

    Returns:
        The :class:`DriftResult`.

    Raises:
        DataError: Mismatched or missing columns, a column with no non-missing values on one
            side, ``tests``/``thresholds`` naming unknown columns, or no columns to test.
        DriftError: Unknown test name, a test applied to a type it does not handle, a column
            type no test handles, or a threshold out of range.
    """
    if isinstance(drift_share_threshold, bool) or not (
        isinstance(drift_share_threshold, int | float) and 0.0 <= drift_share_threshold <= 1.0
    ):
        raise DriftError(f"drift_share_threshold must be in [0, 1], got {drift_share_threshold!r}")
    if correction not in CORRECTIONS:
        raise DriftError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    names, explicit = _resolve_columns(reference, current, columns)
    tests = dict(tests or {})
    thresholds = dict(thresholds or {})
    unknown_tests = [c for c in tests if c not in names]
    if unknown_tests:
        raise DataError(f"tests names columns that are not compared: {', '.join(unknown_tests)}")
    for test_name in tests.values():
        get_test(test_name)
    known_tests = set(available_tests())
    unknown_thr = [k for k in thresholds if k not in names and k not in known_tests]
    if unknown_thr:
        raise DataError(
            "thresholds names neither a compared column nor a drift test: " + ", ".join(unknown_thr)
        )

    features: dict[str, FeatureDrift] = {}
    skipped: dict[str, str] = {}
    for name in names:
        ref_col, cur_col = reference.column(name), current.column(name)
        ref_type, cur_type = feature_type(ref_col.type), feature_type(cur_col.type)
        if ref_type is None or cur_type is None:
            reason = f"type {ref_col.type} / {cur_col.type} has no drift test"
            if explicit or name in tests:
                raise DriftError(f"column {name!r}: {reason}")
            skipped[name] = reason
            continue
        if ref_type != cur_type:
            raise DataError(
                f"column {name!r} is {ref_type} ({ref_col.type}) in the reference but "
                f"{cur_type} ({cur_col.type}) in the current data"
            )
        spec: TestSpec = get_test(tests.get(name, DEFAULT_TESTS[ref_type]))
        if ref_type not in spec.feature_types:
            raise DriftError(
                f"drift test {spec.name!r} does not handle {ref_type} features, but column "
                f"{name!r} is {ref_type} ({ref_col.type}); it handles "
                f"{', '.join(sorted(spec.feature_types))}"
            )
        raw_threshold = thresholds.get(name, thresholds.get(spec.name, spec.default_threshold))
        threshold = check_threshold(spec.kind, raw_threshold, f"column {name!r} ({spec.name})")
        ref_values, ref_missing = column_values(ref_col, ref_type)
        cur_values, cur_missing = column_values(cur_col, cur_type)
        for side, values in (("reference", ref_values), ("current", cur_values)):
            if len(values) == 0:
                raise DataError(
                    f"column {name!r} has no non-missing values in the {side} data "
                    f"({len(ref_col) if side == 'reference' else len(cur_col)} rows)"
                )
        outcome = spec.evaluate(ref_values, cur_values, ref_type)
        features[name] = FeatureDrift(
            name=name,
            test=spec.name,
            type=ref_type,
            statistic=float(outcome.statistic),
            p_value=None if outcome.p_value is None else float(outcome.p_value),
            threshold=threshold,
            drifted=bool(spec.is_drift(outcome, threshold)),
            kind=spec.kind,
            n_reference=len(ref_values),
            n_current=len(cur_values),
            missing_reference=ref_missing,
            missing_current=cur_missing,
        )
    if not features:
        raise DataError(
            "no columns to test for drift"
            + (f" (skipped: {', '.join(skipped)})" if skipped else "")
        )
    features = adjust_p_values(features, correction)
    n_drifted = sum(f.drifted for f in features.values())
    share = n_drifted / len(features)
    return DriftResult(
        drifted=share >= drift_share_threshold,
        drift_share=share,
        n_features=len(features),
        n_drifted=n_drifted,
        features=features,
        drift_share_threshold=float(drift_share_threshold),
        skipped=skipped,
    )
