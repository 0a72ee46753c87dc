"""Per-feature drift detection between a reference and a current window.

Both sides are reduced to mergeable profiles (:mod:`refit.drift.profile`) in one pass, and the
tests run on the profiles, so a stored reference profile and a streamed current window give the
same answers as two in-memory tables.

Automatic choice of test per feature (when ``tests`` names none for it), with ``n`` the smaller
side's count of non-missing, finite values and ``k`` the number of categories seen on either side:

* numeric: ``"ks"`` (Kolmogorov-Smirnov, p-value) when ``n <= LARGE_SAMPLE`` (100,000), else
  ``"wasserstein"`` (normalised by the reference std, threshold 0.1). At large samples every
  p-value test flags shifts too small to matter, and an effect size keeps its meaning;
* categorical: ``"chisquare"`` (p-value) when ``n <= LARGE_SAMPLE`` and ``n >= 5 * k`` (on average
  at least five expected rows per category, Cochran's rule of thumb), else ``"jensenshannon"``
  (distance, threshold 0.1), which stays meaningful for sparse, high-cardinality tables.

``tests`` overrides the choice per column (any registered test of the right type). P-value tests
are corrected for testing many features at once (Benjamini-Hochberg by default, Bonferroni or
none on request) before they are judged.

Besides distribution drift, checks of missing, infinite and new values are reported per
feature, apart from the drift share (:func:`_checks`).

Features that cannot be compared (a column on one side only, a changed type, no non-missing
values on a side) are reported as not comparable with the reason; they are left out of the drift
share. When no feature can be compared, :class:`~refit.errors.DataError` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.drift.accumulate import profile_table
from refit.drift.base import TestOutcome, TestSpec, available_tests, check_threshold, get_test
from refit.drift.binning import aligned_numeric
from refit.drift.profile import FeatureProfile, Profile, bucket_bounds, feature_type
from refit.drift.result import DriftResult, FeatureDrift, not_comparable_feature
from refit.errors import DataError, DriftError

__all__ = [
    "DEFAULT_TESTS",
    "LARGE_SAMPLE",
    "adjust_p_values",
    "choose_test",
    "column_values",
    "compare_profiles",
    "detect_drift",
    "feature_type",
]

#: Tests the automatic choice takes for samples up to :data:`LARGE_SAMPLE` values.
DEFAULT_TESTS: dict[str, str] = {"numeric": "ks", "categorical": "chisquare"}
#: Tests the automatic choice takes above :data:`LARGE_SAMPLE` values (effect sizes).
LARGE_SAMPLE_TESTS: dict[str, str] = {"numeric": "wasserstein", "categorical": "jensenshannon"}
#: Smaller side's sample size above which the automatic choice takes a distance.
LARGE_SAMPLE = 100_000
#: Minimum average expected count per category for chi-square in the automatic choice.
MIN_EXPECTED_PER_CATEGORY = 5
#: Default absolute rise in the missing (or infinite) share that raises a check alert.
MISSING_THRESHOLD = 0.05
#: Default share of current rows in categories unseen in the reference that raises an alert.
NEW_CATEGORY_THRESHOLD = 0.01
#: New categories listed by name in a result (the count is always exact).
MAX_LISTED_CATEGORIES = 20
#: Categories drawn per feature in the report (the rest are summed as "other").
MAX_DRAWN_CATEGORIES = 12


#: Multiple-testing corrections :func:`detect_drift` accepts.
CORRECTIONS = ("bh", "bonferroni", "none")


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (as ``scipy.stats.false_discovery_control``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


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
        adjusted = benjamini_hochberg(raw)
    elif correction == "bonferroni":
        adjusted = np.minimum(raw * len(raw), 1.0)
    else:
        adjusted = raw
    out = dict(features)
    for name, p in zip(names, adjusted, strict=True):
        f = features[name]
        out[name] = replace(f, p_value_adjusted=float(p), drifted=bool(p < f.threshold))
    return out


def column_values(column: pa.ChunkedArray | pa.Array, ftype: str) -> tuple[np.ndarray, int]:
    """Convert an Arrow column to a clean numpy array once, dropping missing values.

    Args:
        column: The Arrow column.
        ftype: ``"numeric"`` (-> float64, nulls, NaN and infinities dropped) or
            ``"categorical"`` (-> object array of str, nulls dropped).

    Returns:
        ``(values, n_dropped)``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    total = len(column)
    column = column.drop_null()
    if ftype == "numeric":
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        values = values[np.isfinite(values)]
    else:
        values = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(object)
    return values, total - len(values)


def choose_test(ftype: str, reference: Any, current: Any) -> str:
    """The automatic test for a feature (the rule is in the module docstring)."""
    n = min(reference.count, current.count)
    if ftype == "numeric":
        return DEFAULT_TESTS["numeric"] if n <= LARGE_SAMPLE else LARGE_SAMPLE_TESTS["numeric"]
    k = len(set(reference.counts) | set(current.counts))
    if n <= LARGE_SAMPLE and n >= MIN_EXPECTED_PER_CATEGORY * k:
        return DEFAULT_TESTS["categorical"]
    return LARGE_SAMPLE_TESTS["categorical"]


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _rise_check(ref_part: int, ref_rows: int, cur_part: int, cur_rows: int, limit: float) -> dict:
    ref_share, cur_share = _share(ref_part, ref_rows), _share(cur_part, cur_rows)
    return {
        "reference": ref_part,
        "current": cur_part,
        "reference_share": ref_share,
        "current_share": cur_share,
        "change": cur_share - ref_share,
        "threshold": limit,
        "alert": bool(cur_share - ref_share >= limit),
    }


def _checks(
    ftype: str, ref: Any, cur: Any, missing_threshold: float, new_category_threshold: float
) -> dict[str, dict[str, Any]]:
    """The checks reported per feature besides distribution drift, apart from the drift share.

    ``missing`` (the share of nulls/NaN rose by ``missing_threshold`` or more; missing values are
    dropped before the distribution test, so this is where a rise in nulls shows), ``infinite``
    (the share of +/-inf rose likewise) and, for categorical features, ``new_categories`` (the
    share of current rows whose category the reference never saw is ``new_category_threshold``
    or more).
    """
    checks = {
        "missing": _rise_check(ref.missing, ref.rows, cur.missing, cur.rows, missing_threshold)
    }
    if ftype == "numeric":
        checks["infinite"] = _rise_check(
            ref.pos_inf + ref.neg_inf,
            ref.rows,
            cur.pos_inf + cur.neg_inf,
            cur.rows,
            missing_threshold,
        )
    else:
        new = sorted(
            (c for c in cur.counts if c not in ref.counts), key=lambda c: (-cur.counts[c], c)
        )
        rows = sum(cur.counts[c] for c in new)
        share = _share(rows, cur.count)
        checks["new_categories"] = {
            "count": len(new),
            "categories": new[:MAX_LISTED_CATEGORIES],
            "rows": rows,
            "current_share": share,
            "threshold": new_category_threshold,
            "alert": bool(len(new) > 0 and share >= new_category_threshold),
        }
    return checks


def _distribution(ftype: str, ref: Any, cur: Any) -> dict[str, Any]:
    """Shares of both sides for the report: 30 equal-width bins or the top categories."""
    if ftype == "categorical":
        total_r, total_c = max(ref.count, 1), max(cur.count, 1)
        cats = sorted(
            set(ref.counts) | set(cur.counts),
            key=lambda c: (-(ref.counts.get(c, 0) / total_r + cur.counts.get(c, 0) / total_c), c),
        )
        shown, rest = cats[:MAX_DRAWN_CATEGORIES], cats[MAX_DRAWN_CATEGORIES:]
        r = [ref.counts.get(c, 0) / total_r for c in shown]
        c_ = [cur.counts.get(c, 0) / total_c for c in shown]
        if rest:
            shown = [*shown, f"other ({len(rest)})"]
            r.append(sum(ref.counts.get(c, 0) for c in rest) / total_r)
            c_.append(sum(cur.counts.get(c, 0) for c in rest) / total_c)
        return {"kind": "categories", "labels": shown, "reference": r, "current": c_}
    points, rc, cc, exact = aligned_numeric(ref, cur)
    values = points if exact else np.mean(bucket_bounds(points), axis=0)
    lo = min(ref.min, cur.min)
    hi = max(ref.max, cur.max)
    # clip to the central 99.8 % of the reference so one outlier does not squash the plot
    cdf = np.cumsum(rc) / rc.sum()
    lo = max(lo, float(values[min(int(np.searchsorted(cdf, 0.001)), len(values) - 1)]))
    hi = min(hi, float(values[min(int(np.searchsorted(cdf, 0.999)), len(values) - 1)]))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 31)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 29)
    r = np.bincount(idx, weights=rc, minlength=30) / max(rc.sum(), 1)
    c_ = np.bincount(idx, weights=cc, minlength=30) / max(cc.sum(), 1)
    return {
        "kind": "bins",
        "labels": [float(e) for e in edges],
        "reference": [float(v) for v in r],
        "current": [float(v) for v in c_],
    }


def _values_from_summary(summary: Any, ftype: str) -> np.ndarray | None:
    if ftype == "categorical":
        keys = list(summary.counts)
        return np.repeat(np.array(keys, dtype=object), [summary.counts[k] for k in keys])
    if summary.exact:
        return np.repeat(summary.points, summary.counts)
    return None


def compare_profiles(
    reference: Profile,
    current: Profile,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share_threshold: float = 0.5,
    correction: str = "bh",
    missing_threshold: float = MISSING_THRESHOLD,
    new_category_threshold: float = NEW_CATEGORY_THRESHOLD,
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> DriftResult:
    """Test each feature of ``current`` for drift against ``reference``, from their profiles.

    Arguments as for :func:`detect_drift`; ``raw`` optionally gives the cleaned values per column
    for tests registered without a ``summary_fn``.

    Raises:
        DataError, DriftError: As for :func:`detect_drift`.
    """
    _check_options(drift_share_threshold, correction, missing_threshold, new_category_threshold)
    for side, profile in (("reference", reference), ("current", current)):
        if profile.rows == 0:
            where = f" ({profile.source})" if profile.source else ""
            raise DataError(f"the {side} data{where} has no rows: there is nothing to compare")
    names, explicit = _compared_columns(reference.columns, current.columns, columns)
    settings = _Settings(
        tests=dict(tests or {}),
        thresholds=dict(thresholds or {}),
        explicit=explicit,
        missing_threshold=missing_threshold,
        new_category_threshold=new_category_threshold,
        raw=raw or {},
    )
    _check_overrides(names, settings)
    features: dict[str, FeatureDrift] = {}
    skipped: dict[str, str] = {}
    for name in names:
        verdict = _compare_feature(
            name, reference.features.get(name), current.features.get(name), settings
        )
        if isinstance(verdict, str):
            skipped[name] = verdict
        else:
            features[name] = verdict
    return _drift_result(features, skipped, correction, drift_share_threshold)


@dataclass(frozen=True)
class _Settings:
    """The per-feature options of one :func:`compare_profiles` call."""

    tests: dict[str, str]
    thresholds: dict[str, float]
    explicit: bool  # columns named by the caller (an untestable type raises)
    missing_threshold: float
    new_category_threshold: float
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]]


def _check_options(
    drift_share_threshold: Any, correction: Any, missing_threshold: Any, new_category_threshold: Any
) -> None:
    """Refuse a threshold out of range or an unknown correction, naming the argument."""
    if isinstance(drift_share_threshold, bool) or not (
        isinstance(drift_share_threshold, int | float) and 0.0 <= drift_share_threshold <= 1.0
    ):
        raise DriftError(f"drift_share_threshold must be in [0, 1], got {drift_share_threshold!r}")
    if correction not in CORRECTIONS:
        raise DriftError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    for label, value in (
        ("missing_threshold", missing_threshold),
        ("new_category_threshold", new_category_threshold),
    ):
        if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
            raise DriftError(f"{label} must be in (0, 1], got {value!r}")


def _compared_columns(
    ref_names: list[str], cur_names: list[str], columns: Sequence[str] | None
) -> tuple[list[str], bool]:
    """The columns to compare and whether the caller named them.

    Raises:
        DataError: Named columns missing from a side, or a string for ``columns``.
    """
    if columns is None:
        return ref_names + [c for c in cur_names if c not in ref_names], False
    if isinstance(columns, str):
        raise DataError(f"columns must be a list of column names, got the string {columns!r}")
    names = list(dict.fromkeys(columns))
    missing_ref = [c for c in names if c not in ref_names]
    missing_cur = [c for c in names if c not in cur_names]
    parts = []
    if missing_ref:
        parts.append(f"missing from reference: {', '.join(missing_ref)}")
    if missing_cur:
        parts.append(f"missing from current: {', '.join(missing_cur)}")
    if parts:
        raise DataError("requested drift columns not found (" + "; ".join(parts) + ")")
    return names, True


def _check_overrides(names: list[str], settings: _Settings) -> None:
    """``tests`` names compared columns and known tests; ``thresholds`` columns or tests."""
    unknown_tests = [c for c in settings.tests if c not in names]
    if unknown_tests:
        raise DataError(f"tests names columns that are not compared: {', '.join(unknown_tests)}")
    for test_name in settings.tests.values():
        get_test(test_name)
    known_tests = set(available_tests())
    unknown_thr = [k for k in settings.thresholds if k not in names and k not in known_tests]
    if unknown_thr:
        raise DataError(
            "thresholds names neither a compared column nor a drift test: " + ", ".join(unknown_thr)
        )


def _compare_feature(
    name: str, ref_f: FeatureProfile | None, cur_f: FeatureProfile | None, settings: _Settings
) -> FeatureDrift | str:
    """One feature's verdict, or the reason it is skipped (a type no test handles)."""
    if ref_f is None or cur_f is None:
        side = "reference" if ref_f is None else "current"
        present = cur_f if ref_f is None else ref_f
        assert present is not None
        return not_comparable_feature(name, present.type, f"column is missing from the {side} data")
    if ref_f.type == "unsupported" or cur_f.type == "unsupported":
        reason = f"type {ref_f.arrow_type} / {cur_f.arrow_type} has no drift test"
        if settings.explicit or name in settings.tests:
            raise DriftError(f"column {name!r}: {reason}")
        return reason
    if ref_f.type != cur_f.type:
        return not_comparable_feature(
            name,
            ref_f.type,
            f"type changed: {ref_f.type} ({ref_f.arrow_type}) in the reference, "
            f"{cur_f.type} ({cur_f.arrow_type}) in the current data",
        )
    return _test_feature(name, ref_f, cur_f, settings)


def _test_feature(
    name: str, ref_f: FeatureProfile, cur_f: FeatureProfile, settings: _Settings
) -> FeatureDrift:
    """Run the feature's drift test (both sides of one supported type)."""
    ftype = ref_f.type
    ref_s, cur_s = ref_f.summary, cur_f.summary
    assert ref_s is not None and cur_s is not None
    test_name = settings.tests.get(name) or choose_test(ftype, ref_s, cur_s)
    spec: TestSpec = get_test(test_name)
    if ftype not in spec.feature_types:
        raise DriftError(
            f"drift test {spec.name!r} does not handle {ftype} features, but column "
            f"{name!r} is {ftype} ({ref_f.arrow_type}); it handles "
            f"{', '.join(sorted(spec.feature_types))}"
        )
    thresholds = settings.thresholds
    raw_threshold = thresholds.get(name, thresholds.get(spec.name, spec.default_threshold))
    threshold = check_threshold(spec.kind, raw_threshold, f"column {name!r} ({spec.name})")
    common: dict[str, Any] = {
        "test": spec.name,
        "threshold": threshold,
        "kind": spec.kind,
        "n_reference": ref_s.count,
        "n_current": cur_s.count,
        "missing_reference": ref_s.missing,
        "missing_current": cur_s.missing,
        "checks": _checks(
            ftype, ref_s, cur_s, settings.missing_threshold, settings.new_category_threshold
        ),
    }
    empty = [
        f"no non-missing{' finite' if ftype == 'numeric' else ''} values in the {side} data "
        f"({s.rows} rows)"
        for side, s in (("reference", ref_s), ("current", cur_s))
        if s.count == 0
    ]
    if empty:
        return not_comparable_feature(name, ftype, "; ".join(empty), **common)
    outcome = _outcome(spec, name, ftype, ref_s, cur_s, settings.raw)
    if outcome is None:
        return not_comparable_feature(
            name,
            ftype,
            f"test {spec.name!r} needs the values, and the profile holds a histogram",
            **common,
        )
    return FeatureDrift(
        name=name,
        type=ftype,
        statistic=float(outcome.statistic),
        p_value=None if outcome.p_value is None else float(outcome.p_value),
        drifted=bool(spec.is_drift(outcome, threshold)),
        error_bound=outcome.error_bound,
        distribution=_distribution(ftype, ref_s, cur_s),
        **common,
    )


def _outcome(
    spec: TestSpec,
    name: str,
    ftype: str,
    ref_s: Any,
    cur_s: Any,
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> TestOutcome | None:
    """The test's outcome, from the summaries or the values (``None``: values needed, absent)."""
    if spec.summary_fn is not None:
        return spec.summary_fn(ref_s, cur_s, ftype)
    values = raw.get(name)
    if values is None:
        r, c = _values_from_summary(ref_s, ftype), _values_from_summary(cur_s, ftype)
        if r is None or c is None:
            return None
        values = (r, c)
    return spec.evaluate(values[0], values[1], ftype)


def _drift_result(
    features: dict[str, FeatureDrift],
    skipped: dict[str, str],
    correction: str,
    drift_share_threshold: float,
) -> DriftResult:
    """Correct the p-values and judge the dataset by the share of drifted features.

    Raises:
        DataError: If no feature could be compared, with every reason.
    """
    comparable = {n: f for n, f in features.items() if f.comparable}
    if not comparable:
        reasons = [f"{n}: {f.reason}" for n, f in features.items()]
        reasons += [f"{n}: {r}" for n, r in skipped.items()]
        raise DataError(
            "no columns could be compared for drift"
            + (f" ({'; '.join(reasons)})" if reasons else "")
        )
    features.update(adjust_p_values(comparable, correction))
    n_drifted = sum(f.drifted for f in features.values())
    share = n_drifted / len(comparable)
    return DriftResult(
        drifted=share >= drift_share_threshold,
        drift_share=share,
        n_features=len(comparable),
        n_drifted=n_drifted,
        features=features,
        drift_share_threshold=float(drift_share_threshold),
        skipped=skipped,
    )


def detect_drift(
    reference: pa.Table | Profile,
    current: pa.Table | Profile,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share_threshold: float = 0.5,
    correction: str = "bh",
    missing_threshold: float = MISSING_THRESHOLD,
    new_category_threshold: float = NEW_CATEGORY_THRESHOLD,
) -> DriftResult:
    """Test each feature of ``current`` for drift against ``reference``.

    Args:
        reference: Reference (training-time) data: a table or a stored :class:`Profile`.
        current: Current window of data: a table or a :class:`Profile`.
        columns: Columns to test; default every column of either side (a column on one side
            only is reported as not comparable). With ``None``, columns of a type no test
            handles (timestamps, lists, ...) are skipped and listed in
            :attr:`DriftResult.skipped`; named explicitly they raise, and named columns missing
            from a side raise :class:`DataError`.
        tests: Test name per column; default the automatic choice (module docstring).
        thresholds: Threshold per column name or per test name (a column entry wins); default
            the test's own default threshold. P-value tests drift when the adjusted
            ``p_value < threshold``, distance tests when ``statistic >= threshold``.
        drift_share_threshold: The dataset drifted when the share of drifted features is at
            least this (in [0, 1]).
        correction: Multiple-testing correction over the p-value tests: ``"bh"``
            (Benjamini-Hochberg, the default), ``"bonferroni"`` or ``"none"``. Testing many
            features at 0.05 flags unshifted ones by chance; the correction keeps the share of
            false alarms near the threshold.
        missing_threshold: Rise in the missing (or infinite) share that raises a check alert.
        new_category_threshold: Share of current rows in unseen categories that raises an alert.

    Returns:
        The :class:`DriftResult`.

    Raises:
        DataError: Named columns missing from a side, ``tests``/``thresholds`` naming unknown
            columns, or no column that can be compared.
        DriftError: Unknown test name, a test applied to a type it does not handle, a column
            type no test handles named explicitly, or a threshold out of range.
    """
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if isinstance(reference, pa.Table) and isinstance(current, pa.Table) and tests:
        for name, test_name in tests.items():
            if (
                get_test(test_name).summary_fn is None
                and name in reference.column_names
                and name in current.column_names
            ):
                ftype = feature_type(reference.column(name).type)
                if ftype is not None and ftype == feature_type(current.column(name).type):
                    raw[name] = (
                        column_values(reference.column(name), ftype)[0],
                        column_values(current.column(name), ftype)[0],
                    )
    ref_p = reference if isinstance(reference, Profile) else _profile(reference, columns)
    cur_p = current if isinstance(current, Profile) else _profile(current, columns)
    return compare_profiles(
        ref_p,
        cur_p,
        columns=columns,
        tests=tests,
        thresholds=thresholds,
        drift_share_threshold=drift_share_threshold,
        correction=correction,
        missing_threshold=missing_threshold,
        new_category_threshold=new_category_threshold,
        raw=raw,
    )


def _profile(table: pa.Table, columns: Sequence[str] | None) -> Profile:
    if not isinstance(table, pa.Table):
        raise DataError(f"drift input must be a pyarrow Table or a Profile, got {type(table)}")
    if columns is None or isinstance(columns, str):
        return profile_table(table)
    return profile_table(table, [c for c in columns if c in table.column_names])
