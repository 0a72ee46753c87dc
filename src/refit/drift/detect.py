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

Besides distribution drift, two checks are reported per feature, apart from the drift share:
``missing`` (the share of nulls/NaN rose by ``missing_threshold`` or more; missing values are
dropped before the distribution test, so this is where a rise in nulls shows), ``infinite`` (the
share of +/-inf rose likewise) and, for categorical features, ``new_categories`` (the share of
current rows whose category the reference never saw is ``new_category_threshold`` or more).

Features that cannot be compared (a column on one side only, a changed type, no non-missing
values on a side) are reported as not comparable with the reason; they are left out of the drift
share. When no feature can be compared, :class:`~refit.errors.DataError` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.drift.accumulate import profile_table
from refit.drift.base import TestOutcome, TestSpec, available_tests, check_threshold, get_test
from refit.drift.binning import aligned_numeric
from refit.drift.profile import FeatureProfile, Profile, bucket_bounds, feature_type
from refit.errors import DataError, DriftError

__all__ = [
    "DEFAULT_TESTS",
    "DriftResult",
    "FeatureDrift",
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
        comparable: Whether the feature could be compared at all.
        reason: Why it could not be compared (empty when comparable).
        error_bound: Bound on the statistic's approximation error from bucketed histograms
            (``0.0`` when exact, ``None`` when not stated).
        checks: Checks apart from distribution drift: ``"missing"``, ``"infinite"`` and, for
            categorical features, ``"new_categories"``; each a dict with ``alert`` (bool).
        distribution: Reference and current distributions for the report: ``{"kind":
            "bins"|"categories", "labels": [...], "reference": [...], "current": [...]}``
            (shares).
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
    comparable: bool = True
    reason: str = ""
    error_bound: float | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    distribution: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the name, which is the key in :meth:`DriftResult.to_dict`).

        A non-finite statistic (not comparable) is written as ``null``.
        """
        data = asdict(self)
        del data["name"]
        for key in ("statistic", "threshold", "error_bound"):
            value = data[key]
            if value is not None and not math.isfinite(value):
                data[key] = None
        return data

    @property
    def check_alerts(self) -> list[str]:
        """Names of the checks that raised an alert."""
        return [name for name, c in self.checks.items() if c.get("alert")]

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureDrift:
        """Inverse of :meth:`to_dict`."""
        try:
            p_value = data["p_value"]
            return cls(
                name=name,
                test=str(data["test"]),
                type=str(data["type"]),
                statistic=math.nan if data["statistic"] is None else float(data["statistic"]),
                p_value=None if p_value is None else float(p_value),
                threshold=math.nan if data["threshold"] is None else float(data["threshold"]),
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
                comparable=bool(data.get("comparable", True)),
                reason=str(data.get("reason", "")),
                error_bound=None if data.get("error_bound") is None else float(data["error_bound"]),
                checks=dict(data.get("checks", {})),
                distribution=dict(data.get("distribution", {})),
            )
        except KeyError as exc:
            raise DataError(
                f"drift result for feature {name!r} lacks field {exc.args[0]!r}"
            ) from None

    def severity(self) -> float:
        """How far the feature is into (small) or away from (large) drift, relative to threshold.

        ``p_value / threshold`` for p-value tests, ``threshold / statistic`` for distances, so
        lower means more drift in both cases and the two kinds sort together. Features that
        could not be compared sort first (``-1``).
        """
        if not self.comparable:
            return -1.0
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
        explanation: Optional attribution of the change in a model's predictions to features
            (see :mod:`refit.drift.explain`); empty when no model was given.
    """

    drifted: bool
    drift_share: float
    n_features: int
    n_drifted: int
    features: dict[str, FeatureDrift]
    drift_share_threshold: float = 0.5
    skipped: dict[str, str] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def not_comparable(self) -> dict[str, str]:
        """Features that could not be compared: name -> reason."""
        return {n: f.reason for n, f in self.features.items() if not f.comparable}

    @property
    def check_alerts(self) -> dict[str, list[str]]:
        """Features with check alerts (missing, infinite, new categories): name -> checks."""
        return {n: f.check_alerts for n, f in self.features.items() if f.check_alerts}

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
        """JSON-ready dict of the report, as the drift report artifact stores it."""
        return {
            "drifted": self.drifted,
            "drift_share": self.drift_share,
            "n_features": self.n_features,
            "n_drifted": self.n_drifted,
            "drift_share_threshold": self.drift_share_threshold,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "skipped": dict(self.skipped),
            "not_comparable": self.not_comparable,
            "check_alerts": self.check_alerts,
            "explanation": dict(self.explanation),
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
                explanation=dict(data.get("explanation", {})),
            )
        except KeyError as exc:
            raise DataError(f"drift result lacks field {exc.args[0]!r}") from None


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


def not_comparable_feature(name: str, ftype: str, reason: str, **extra: Any) -> FeatureDrift:
    """A feature result that says why the two sides cannot be compared (never drifted).

    ``extra`` may set ``test``, ``threshold``, ``kind`` and any other `FeatureDrift` field.
    """
    return FeatureDrift(
        name=name,
        test=str(extra.pop("test", "")),
        type=ftype,
        statistic=math.nan,
        p_value=None,
        threshold=float(extra.pop("threshold", math.nan)),
        drifted=False,
        kind=str(extra.pop("kind", "distance")),
        comparable=False,
        reason=reason,
        **extra,
    )


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
    for side, profile in (("reference", reference), ("current", current)):
        if profile.rows == 0:
            where = f" ({profile.source})" if profile.source else ""
            raise DataError(f"the {side} data{where} has no rows: there is nothing to compare")
    ref_names, cur_names = reference.columns, current.columns
    if columns is None:
        names = ref_names + [c for c in cur_names if c not in ref_names]
        explicit = False
    else:
        if isinstance(columns, str):
            raise DataError(f"columns must be a list of column names, got the string {columns!r}")
        names = list(dict.fromkeys(columns))
        missing_ref = [c for c in names if c not in ref_names]
        missing_cur = [c for c in names if c not in cur_names]
        if missing_ref or missing_cur:
            parts = []
            if missing_ref:
                parts.append(f"missing from reference: {', '.join(missing_ref)}")
            if missing_cur:
                parts.append(f"missing from current: {', '.join(missing_cur)}")
            raise DataError("requested drift columns not found (" + "; ".join(parts) + ")")
        explicit = True
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
        ref_f: FeatureProfile | None = reference.features.get(name)
        cur_f: FeatureProfile | None = current.features.get(name)
        if ref_f is None or cur_f is None:
            side = "reference" if ref_f is None else "current"
            present = cur_f if ref_f is None else ref_f
            assert present is not None
            features[name] = not_comparable_feature(
                name, present.type, f"column is missing from the {side} data"
            )
            continue
        if ref_f.type == "unsupported" or cur_f.type == "unsupported":
            reason = f"type {ref_f.arrow_type} / {cur_f.arrow_type} has no drift test"
            if explicit or name in tests:
                raise DriftError(f"column {name!r}: {reason}")
            skipped[name] = reason
            continue
        ftype = ref_f.type
        if ref_f.type != cur_f.type:
            features[name] = not_comparable_feature(
                name,
                ftype,
                f"type changed: {ref_f.type} ({ref_f.arrow_type}) in the reference, "
                f"{cur_f.type} ({cur_f.arrow_type}) in the current data",
            )
            continue
        ref_s, cur_s = ref_f.summary, cur_f.summary
        assert ref_s is not None and cur_s is not None
        test_name = tests.get(name) or choose_test(ftype, ref_s, cur_s)
        spec: TestSpec = get_test(test_name)
        if ftype not in spec.feature_types:
            raise DriftError(
                f"drift test {spec.name!r} does not handle {ftype} features, but column "
                f"{name!r} is {ftype} ({ref_f.arrow_type}); it handles "
                f"{', '.join(sorted(spec.feature_types))}"
            )
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
            "checks": _checks(ftype, ref_s, cur_s, missing_threshold, new_category_threshold),
        }
        empty = [
            f"no non-missing{' finite' if ftype == 'numeric' else ''} values in the {side} data "
            f"({s.rows} rows)"
            for side, s in (("reference", ref_s), ("current", cur_s))
            if s.count == 0
        ]
        if empty:
            features[name] = not_comparable_feature(name, ftype, "; ".join(empty), **common)
            continue
        outcome: TestOutcome
        if spec.summary_fn is not None:
            outcome = spec.summary_fn(ref_s, cur_s, ftype)
        else:
            values = raw.get(name) if raw else None
            if values is None:
                r, c = _values_from_summary(ref_s, ftype), _values_from_summary(cur_s, ftype)
                values = None if r is None or c is None else (r, c)
            if values is None:
                features[name] = not_comparable_feature(
                    name,
                    ftype,
                    f"test {spec.name!r} needs the values, and the profile holds a histogram",
                    **common,
                )
                continue
            outcome = spec.evaluate(values[0], values[1], ftype)
        statistic = float(outcome.statistic)
        features[name] = FeatureDrift(
            name=name,
            type=ftype,
            statistic=statistic,
            p_value=None if outcome.p_value is None else float(outcome.p_value),
            drifted=bool(spec.is_drift(outcome, threshold)),
            error_bound=outcome.error_bound,
            distribution=_distribution(ftype, ref_s, cur_s),
            **common,
        )
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
