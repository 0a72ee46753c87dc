"""Multivariate drift: a change in how features move together, which per-feature tests miss.

Per-feature tests compare each column's distribution on its own, so a window whose columns keep
their marginal distributions but change their joint one (two features that moved together no
longer do, or move against each other) passes all of them. This check compares the joint
distribution through the reconstruction error of a low-rank (PCA) model of the reference:

1. The numeric features on both sides are taken (up to ``max_rows`` rows per side, a seeded
   sample), missing values filled with the reference's medians, and standardised with the
   reference's means and standard deviations (a constant column is left out).
2. The reference rows are split in two halves (seeded): a principal component model is fitted
   on one, keeping the fewest components that explain ``variance`` of its variance (at least
   one, at most all but one feature, so something is left to reconstruct).
3. Each row of the other half and of the window is projected onto those components and back;
   its error is the squared distance to its reconstruction. The window's mean error over the
   held-out half's is the statistic (1.0: no change; a broken correlation puts rows off the
   reference's principal subspace and raises it).
4. A one-sided permutation test (``permutations`` seeded shuffles of the pooled errors of the
   held-out half and the window, which are exchangeable when the window is drawn like the
   reference) gives the p-value: the share of shuffles whose mean difference is at least the
   observed one, counted with the observed one.

The window drifted when the p-value is below ``alpha`` and the error ratio is at least
``min_error_ratio`` (at tens of thousands of rows a negligible change is significant; the ratio
keeps the verdict about a change that matters). The cost is bounded by ``max_rows``: one
singular value decomposition of at most ``max_rows / 2`` rows and ``permutations`` means of at
most ``1.5 * max_rows`` errors. Categorical features are not part of the model (they are listed
as skipped); their drift is the per-feature tests' business.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.drift.profile import feature_type
from refit.errors import DataError, DriftError

__all__ = [
    "METHODS",
    "MultivariateConfig",
    "MultivariateDrift",
    "multivariate_drift",
    "render_multivariate_html",
]

#: The methods this module implements.
METHODS = ("pca_reconstruction",)

#: Fewest rows per side the check runs on.
MIN_ROWS = 20


@dataclass(frozen=True)
class MultivariateConfig:
    """Settings of the multivariate check (the drift step's ``multivariate`` dict).

    Attributes:
        method: ``pca_reconstruction``.
        max_rows: Row cap per side (a seeded sample above it), at least 100.
        variance: Share of the reference's variance the kept components explain, in (0, 1).
        permutations: Shuffles of the permutation test, 99 to 100,000.
        alpha: The p-value below which the window drifted, in (0, 1).
        min_error_ratio: Smallest error ratio that counts as drift, at least 1.
        seed: Seed of the samples, the reference split and the shuffles.
    """

    method: str = "pca_reconstruction"
    max_rows: int = 5000
    variance: float = 0.9
    permutations: int = 999
    alpha: float = 0.01
    min_error_ratio: float = 1.1
    seed: int = 0

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> MultivariateConfig:
        """Build and check a config from a dict; ``{}`` gives the defaults.

        Raises:
            DriftError: An unknown key, or a value of the wrong type or out of range (the
                message names it).
        """
        if not isinstance(value, Mapping):
            raise DriftError(f"multivariate must be a dict, got {type(value).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise DriftError(
                f"multivariate has unknown key(s) {unknown}; known keys: {sorted(known)}"
            )
        config = cls(**dict(value))
        config.check()
        return config

    def check(self) -> None:
        """Raise :class:`DriftError` naming the first setting that is wrong."""

        def integer(name: str, low: int, high: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise DriftError(
                    f"multivariate.{name} must be an integer in [{low}, {high}], got {v!r}"
                )

        def number(name: str, low: float, high: float, closed_low: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if ok:
                ok = (low <= v if closed_low else low < v) and v < high
            if not ok:
                bracket = "[" if closed_low else "("
                raise DriftError(
                    f"multivariate.{name} must be a number in {bracket}{low}, {high}), got {v!r}"
                )

        if self.method not in METHODS:
            raise DriftError(f"multivariate.method {self.method!r} is not one of {list(METHODS)}")
        integer("max_rows", 100, 10_000_000)
        integer("permutations", 99, 100_000)
        integer("seed", 0, 2**32 - 1)
        number("variance", 0.0, 1.0)
        number("alpha", 0.0, 1.0)
        number("min_error_ratio", 1.0, float("inf"), closed_low=True)


@dataclass
class MultivariateDrift:
    """The multivariate check's result.

    Attributes:
        method: The method that ran.
        drifted: Whether the joint distribution changed (False when not run).
        statistic: The window's mean reconstruction error over the reference's held-out half's.
        p_value: The permutation test's one-sided p-value.
        features: The numeric features in the model.
        components: Principal components kept.
        explained_variance: Share of the fitted half's variance they explain.
        reference_error: Mean error of the reference's held-out half.
        current_error: Mean error of the window.
        rows: Rows used: ``reference_fit``, ``reference_holdout``, ``current``.
        config: The settings it ran with.
        skipped: Columns left out, with the reason.
        note: Why the check did not run ("" when it ran).
    """

    method: str
    drifted: bool = False
    statistic: float | None = None
    p_value: float | None = None
    features: list[str] = field(default_factory=list)
    components: int = 0
    explained_variance: float | None = None
    reference_error: float | None = None
    current_error: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _sample(table: pa.Table, max_rows: int, rng: np.random.Generator) -> pa.Table:
    if table.num_rows <= max_rows:
        return table
    return table.take(np.sort(rng.choice(table.num_rows, size=max_rows, replace=False)))


def _matrix(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    out = np.empty((table.num_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        column = table.column(name).cast(pa.float64())
        out[:, j] = column.to_numpy(zero_copy_only=False)
    out[~np.isfinite(out)] = np.nan
    return out


def multivariate_drift(
    reference: pa.Table,
    current: pa.Table,
    columns: Sequence[str],
    config: MultivariateConfig | Mapping[str, Any] | None = None,
) -> MultivariateDrift:
    """Test whether the window's features move together as the reference's do.

    Args:
        reference: Reference rows (the champion's training data).
        current: The window.
        columns: Candidate feature columns (present on both sides); the numeric ones on both
            sides are modelled, the rest are listed in ``skipped``.
        config: Settings (a :class:`MultivariateConfig` or its dict); None: the defaults.

    Returns:
        The result. Fewer than two usable numeric features, or fewer than :data:`MIN_ROWS`
        rows on a side, give a result that did not run (``note`` says why), never an error.

    Raises:
        DriftError: The config is invalid.
        DataError: A column is missing from a side.
    """
    config = _config(config)
    out = MultivariateDrift(method=config.method, config=asdict(config))
    numeric = _numeric_columns(reference, current, columns, out.skipped)
    rng = np.random.default_rng(config.seed)
    ref = _matrix(_sample(reference.select(numeric), config.max_rows, rng), numeric)
    cur = _matrix(_sample(current.select(numeric), config.max_rows, rng), numeric)
    if len(ref) < MIN_ROWS or len(cur) < MIN_ROWS:
        out.note = (
            f"not run: {len(ref)} reference and {len(cur)} window rows; "
            f"at least {MIN_ROWS} a side are needed"
        )
        return out
    keep = _impute(ref, cur, numeric, out.skipped)
    out.features = [numeric[j] for j in keep]
    if len(keep) < 2:
        out.note = f"not run: {len(keep)} usable numeric feature(s); at least 2 are needed"
        return out
    ref, cur = ref[:, keep], cur[:, keep]
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    ref, cur = (ref - mean) / std, (cur - mean) / std
    order = rng.permutation(len(ref))
    half = len(ref) // 2
    fit, held = ref[order[:half]], ref[order[half:]]
    center = fit.mean(axis=0)
    _, singular, vt = np.linalg.svd(fit - center, full_matrices=False)
    energy = singular**2
    share = np.cumsum(energy) / energy.sum() if energy.sum() > 0 else np.ones(len(energy))
    k = int(np.searchsorted(share, config.variance) + 1)
    k = max(1, min(k, len(keep) - 1))
    basis = vt[:k]

    def errors(x: np.ndarray) -> np.ndarray:
        z = x - center
        residual = z - (z @ basis.T) @ basis
        return np.einsum("ij,ij->i", residual, residual)

    e_ref, e_cur = errors(held), errors(cur)
    ref_mean, cur_mean = float(e_ref.mean()), float(e_cur.mean())
    p_value = _permutation_p_value(e_ref, e_cur, config.permutations, rng)
    ratio = cur_mean / ref_mean if ref_mean > 0 else float("inf")
    out.statistic = ratio
    out.p_value = p_value
    out.components = k
    out.explained_variance = float(share[k - 1])
    out.reference_error = ref_mean
    out.current_error = cur_mean
    out.rows = {"reference_fit": len(fit), "reference_holdout": len(held), "current": len(e_cur)}
    out.drifted = bool(p_value < config.alpha and ratio >= config.min_error_ratio)
    return out


def _config(config: MultivariateConfig | Mapping[str, Any] | None) -> MultivariateConfig:
    """The settings, checked (None: the defaults)."""
    if config is None:
        return MultivariateConfig()
    if not isinstance(config, MultivariateConfig):
        return MultivariateConfig.from_dict(config)
    config.check()
    return config


def _numeric_columns(
    reference: pa.Table, current: pa.Table, columns: Sequence[str], skipped: dict[str, str]
) -> list[str]:
    """The columns numeric on both sides; the others go to ``skipped`` with the reason.

    Raises:
        DataError: A column is missing from a side.
    """
    for name in columns:
        for side, table in (("reference", reference), ("window", current)):
            if name not in table.column_names:
                raise DataError(f"multivariate drift: column {name!r} is not in the {side}")
    numeric = []
    for name in columns:
        types = {feature_type(t.column(name).type) for t in (reference, current)}
        if types != {"numeric"}:
            skipped[name] = "not numeric on both sides (categorical features are not modelled)"
        else:
            numeric.append(name)
    return numeric


def _impute(
    ref: np.ndarray, cur: np.ndarray, numeric: list[str], skipped: dict[str, str]
) -> list[int]:
    """Fill missing values with the reference median, in place; the usable columns' indices.

    A column with no finite reference value or constant in the reference goes to ``skipped``.
    """
    with np.errstate(all="ignore"):
        median = np.nanmedian(ref, axis=0)
    keep = []
    for j, name in enumerate(numeric):
        if not np.isfinite(median[j]):
            skipped[name] = "no finite reference value"
            continue
        ref[np.isnan(ref[:, j]), j] = median[j]
        cur[np.isnan(cur[:, j]), j] = median[j]
        if float(np.std(ref[:, j])) == 0.0:
            skipped[name] = "constant in the reference"
            continue
        keep.append(j)
    return keep


def _permutation_p_value(
    e_ref: np.ndarray, e_cur: np.ndarray, permutations: int, rng: np.random.Generator
) -> float:
    """One-sided permutation p-value of the window's mean error exceeding the reference's."""
    pooled = np.concatenate([e_ref, e_cur])
    n_cur = len(e_cur)
    observed = float(e_cur.mean()) - float(e_ref.mean())
    total = pooled.sum()
    hits = 0
    for _ in range(permutations):
        picked = rng.permutation(len(pooled))[:n_cur]
        s = pooled[picked].sum()
        diff = s / n_cur - (total - s) / (len(pooled) - n_cur)
        hits += diff >= observed - 1e-12 * max(1.0, abs(observed))
    return (hits + 1) / (permutations + 1)


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def render_multivariate_html(result: MultivariateDrift | Mapping[str, Any]) -> str:
    """The drift report's section on the multivariate check (an HTML fragment).

    Args:
        result: The check's result or its dict.
    """
    r = result.to_dict() if isinstance(result, MultivariateDrift) else dict(result)
    config = r.get("config") or {}
    head = '<h2>Multivariate drift (features together)</h2><div id="multivariate">'
    if r.get("note"):
        return f'{head}<p class="note">{html.escape(str(r["note"]))}</p></div>'
    verdict = (
        '<span class="yes">drifted</span>' if r.get("drifted") else '<span class="no">no</span>'
    )
    rows = r.get("rows") or {}
    skipped = r.get("skipped") or {}
    skipped_html = (
        '<p class="note">Not in the model: '
        + "; ".join(f"{html.escape(n)} ({html.escape(w)})" for n, w in sorted(skipped.items()))
        + "</p>"
        if skipped
        else ""
    )
    return (
        f"{head}<table><thead><tr><th>method</th><th>error ratio (window / reference)</th>"
        "<th>p-value</th><th>alpha</th><th>min ratio</th><th>drifted</th><th>features</th>"
        "<th>components (variance)</th><th>rows (ref fit / ref held out / window)</th>"
        "</tr></thead><tbody><tr>"
        f"<td>{html.escape(str(r.get('method', '')))}</td>"
        f'<td class="num">{_num(r.get("statistic"))}</td>'
        f'<td class="num">{_num(r.get("p_value"))}</td>'
        f'<td class="num">{_num(config.get("alpha"))}</td>'
        f'<td class="num">{_num(config.get("min_error_ratio"))}</td>'
        f"<td>{verdict}</td>"
        f"<td>{html.escape(', '.join(r.get('features') or []))}</td>"
        f'<td class="num">{r.get("components", 0)} ({_num(r.get("explained_variance"), 3)})</td>'
        f'<td class="num">{rows.get("reference_fit", 0)} / {rows.get("reference_holdout", 0)}'
        f" / {rows.get('current', 0)}</td></tr></tbody></table>{skipped_html}"
        '<p class="note">A principal component model of half the reference (numeric features, '
        "standardised) reconstructs the other half and the window; the window drifted when its "
        "mean reconstruction error exceeds the reference's by the minimum ratio with a "
        "permutation p-value below alpha. It sees a change in how features move together "
        "(a broken correlation) that the per-feature tests above cannot.</p></div>"
    )
