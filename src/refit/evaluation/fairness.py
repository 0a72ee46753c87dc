"""Fairness of a classifier across the groups of a sensitive attribute, challenger vs champion.

For a declared sensitive attribute (any column of the holdout: it need not be a model feature,
and usually should not be), each model's predictions are broken down by group:

- per group: row count, positives, **selection rate** (share predicted positive), **TPR** (share
  of actual positives predicted positive), **FPR** (share of actual negatives predicted positive)
  and **accuracy**, each with a Wilson score interval;
- **demographic-parity difference**: max - min selection rate across the groups;
- **equal-opportunity difference**: max - min TPR across the groups;
- with a champion, the **increase** of each difference (challenger - champion).

The differences get seeded percentile bootstrap intervals. The bootstrap is stratified (each group
is resampled to its own size) and paired (challenger and champion on the same resampled rows).
Every statistic depends only on the counts of the eight cells (challenger positive?, champion
positive?, actually positive?) of each group, and resampling ``n`` rows with replacement gives
multinomial cell counts, so the bootstrap draws those counts directly: the same distribution as
resampling rows, at a cost that does not grow with the rows.

Groups too small to say anything reliable are reported but left out of the differences (and so
of any blocking): a group needs ``min_group_size`` rows to count for the demographic-parity
difference, and ``min_group_size`` actual positives to count for the equal-opportunity
difference (a TPR measured on a handful of positives is noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError, PolicyError, RefitError
from refit.evaluation.fairness_config import DIFFERENCES, LABELS, FairnessConfig
from refit.evaluation.stats import wilson_interval
from refit.training.features import FeatureSpec, encode_target
from refit.training.trainers import TrainedModel

__all__ = [
    "MISSING_GROUP",
    "FairnessReport",
    "check_fairness",
    "compute_fairness",
    "fairness_report",
]

#: Label of the group of rows whose sensitive attribute is missing (null).
MISSING_GROUP = "<missing>"


@dataclass
class FairnessReport:
    """Per-group metrics and disparities of challenger (and champion) on one attribute.

    Attributes:
        attribute: The sensitive attribute.
        positive_label: The favourable outcome.
        min_group_size: Fewest rows / positives for a group to count.
        confidence: Confidence level of every interval.
        n_resamples: Bootstrap resamples of the differences.
        seed: Seed of the bootstrap.
        groups: One dictionary per group: ``group``, ``count``, ``positives``, ``used``
            (``{"demographic_parity_difference": bool, "equal_opportunity_difference": bool}``),
            ``challenger`` and ``champion`` (None without one): metric -> ``{"value", "low",
            "high"}`` (None where undefined, e.g. TPR of a group with no positives).
        challenger: Difference -> ``{"value", "low", "high", "max_group", "min_group"}``, or
            None when fewer than two groups count.
        champion: Likewise for the champion, or None without one.
        increase: Difference -> ``{"value", "low", "high"}`` of challenger - champion (paired
            bootstrap); empty without a champion.
        notes: Plain-language notes (small groups, missing values, undefined differences).
    """

    attribute: str
    positive_label: Any
    min_group_size: int
    confidence: float
    n_resamples: int
    seed: int
    groups: list[dict[str, Any]] = field(default_factory=list)
    challenger: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    champion: dict[str, dict[str, Any] | None] | None = None
    increase: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (the ``fairness`` entry of ``evaluation.json``)."""
        return {
            "attribute": self.attribute,
            "positive_label": self.positive_label,
            "min_group_size": self.min_group_size,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "method": "Wilson per group; stratified paired bootstrap (multinomial) for differences",
            "groups": [dict(g) for g in self.groups],
            "challenger": dict(self.challenger),
            "champion": None if self.champion is None else dict(self.champion),
            "increase": dict(self.increase),
            "notes": list(self.notes),
        }


def _interval(successes: int, n: int, confidence: float) -> dict[str, float] | None:
    if n <= 0:
        return None
    low, high = wilson_interval(successes, n, confidence)
    return {"value": successes / n, "low": low, "high": high}


def _group_metrics(
    y_pos: np.ndarray, y_true: np.ndarray, pred: np.ndarray, positive: int, confidence: float
) -> dict[str, dict[str, float] | None]:
    pred_pos = pred == positive
    n, positives = int(y_pos.size), int(y_pos.sum())
    return {
        "selection_rate": _interval(int(pred_pos.sum()), n, confidence),
        "tpr": _interval(int((pred_pos & y_pos).sum()), positives, confidence),
        "fpr": _interval(int((pred_pos & ~y_pos).sum()), n - positives, confidence),
        "accuracy": _interval(int((pred == y_true).sum()), n, confidence),
    }


def _group_labels(values: Sequence[Any]) -> list[str]:
    return [MISSING_GROUP if v is None else str(v) for v in values]


def _spread(values: dict[str, float]) -> tuple[float, str, str] | None:
    """Return (max - min, max group, min group) over at least two groups, else None."""
    if len(values) < 2:
        return None
    hi = max(values, key=lambda g: (values[g], g))
    lo = min(values, key=lambda g: (values[g], g))
    return values[hi] - values[lo], hi, lo


def _percentile(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    alpha = (1 - confidence) / 2
    low, high = np.percentile(finite, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def compute_fairness(
    groups: Sequence[Any],
    y_true: np.ndarray,
    challenger_pred: np.ndarray,
    champion_pred: np.ndarray | None = None,
    *,
    positive: int = 1,
    attribute: str = "group",
    positive_label: Any = None,
    min_group_size: int = 30,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> FairnessReport:
    """Per-group metrics and disparities from labels and predictions.

    Args:
        groups: The sensitive attribute's value of each row (None: missing).
        y_true: True class index of each row.
        challenger_pred: Challenger's predicted class index of each row.
        champion_pred: Champion's predicted class index of each row, or None.
        positive: Class index of the favourable outcome.
        attribute: Name of the attribute (for the report).
        positive_label: Label of the favourable outcome (for the report; default ``positive``).
        min_group_size: Fewest rows (demographic parity) or actual positives (equal
            opportunity) for a group to count in a difference.
        confidence: Two-sided confidence level of every interval.
        n_resamples: Bootstrap resamples of the differences.
        seed: Seed of the bootstrap.

    Returns:
        The :class:`FairnessReport`.

    Raises:
        DataError: No rows, or arrays of different lengths.
    """
    labels = _group_labels(groups)
    y_true = np.asarray(y_true)
    preds = {"challenger": np.asarray(challenger_pred)}
    if champion_pred is not None:
        preds["champion"] = np.asarray(champion_pred)
    _check_lengths(attribute, len(labels), y_true, preds)
    report = FairnessReport(
        attribute=attribute,
        positive_label=positive if positive_label is None else positive_label,
        min_group_size=int(min_group_size),
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        seed=int(seed),
    )
    y_pos = y_true == positive
    names = sorted(set(labels) - {MISSING_GROUP}) + (
        [MISSING_GROUP] if MISSING_GROUP in labels else []
    )
    label_array = np.asarray(labels, dtype=object)
    rows = {g: np.flatnonzero(label_array == g) for g in names}
    for g in names:
        idx = rows[g]
        entry = _group_entry(
            g, y_true[idx], y_pos[idx], preds, idx, positive, confidence, min_group_size
        )
        report.groups.append(entry)
        report.notes += _small_group_notes(entry, min_group_size)
    if MISSING_GROUP in rows:
        report.notes.append(
            f"{rows[MISSING_GROUP].size} rows have no {attribute!r} value: grouped as "
            f"{MISSING_GROUP!r}"
        )
    used = {d: [e["group"] for e in report.groups if e["used"][d]] for d in DIFFERENCES}
    for diff in DIFFERENCES:
        if len(used[diff]) < 2:
            need = "rows" if diff == "demographic_parity_difference" else "actual positives"
            report.notes.append(
                f"{LABELS[diff]} undefined: {len(used[diff])} group(s) with at least "
                f"{min_group_size} {need}; two are needed"
            )
    draws = _bootstrap(rows, used, y_pos, preds, positive, n_resamples, seed)
    report.challenger = _differences(report.groups, "challenger", draws, confidence)
    if "champion" in preds:
        report.champion = _differences(report.groups, "champion", draws, confidence)
        report.increase = _increases(report.challenger, report.champion, draws, confidence)
    return report


def _check_lengths(
    attribute: str, n: int, y_true: np.ndarray, preds: dict[str, np.ndarray]
) -> None:
    if n == 0:
        raise DataError(f"fairness on {attribute!r}: the holdout has no rows")
    if y_true.shape != (n,) or any(p.shape != (n,) for p in preds.values()):
        raise DataError(
            f"fairness on {attribute!r}: {n} attribute values, {y_true.size} labels and "
            f"{[p.size for p in preds.values()]} predictions: lengths differ"
        )


def _group_entry(
    group: str,
    y_true: np.ndarray,
    y_pos: np.ndarray,
    preds: dict[str, np.ndarray],
    idx: np.ndarray,
    positive: int,
    confidence: float,
    min_group_size: int,
) -> dict[str, Any]:
    """One group's row of the report: counts, the differences it counts in, each model's metrics."""
    count, positives = int(idx.size), int(y_pos.sum())
    entry: dict[str, Any] = {"group": group, "count": count, "positives": positives}
    entry["used"] = {
        "demographic_parity_difference": count >= min_group_size,
        "equal_opportunity_difference": positives >= min_group_size,
    }
    for side in ("challenger", "champion"):
        pred = preds.get(side)
        entry[side] = (
            None if pred is None else _group_metrics(y_pos, y_true, pred[idx], positive, confidence)
        )
    return entry


def _small_group_notes(entry: dict[str, Any], min_group_size: int) -> list[str]:
    """Why a group too small for a difference is reported but not used."""
    g, count, positives = entry["group"], entry["count"], entry["positives"]
    if count < min_group_size:
        return [
            f"group {g!r} has {count} rows (< min_group_size {min_group_size}): reported, "
            "not used in either difference or for blocking"
        ]
    if positives < min_group_size:
        return [
            f"group {g!r} has {positives} actual positives (< min_group_size "
            f"{min_group_size}): its TPR is reported, not used in the equal-opportunity "
            "difference or for blocking"
        ]
    return []


def _differences(
    groups: list[dict[str, Any]],
    side: str,
    draws: dict[str, dict[str, np.ndarray]],
    confidence: float,
) -> dict[str, dict[str, Any] | None]:
    """One model's differences over the groups used for each, with bootstrap intervals."""
    out: dict[str, dict[str, Any] | None] = {}
    for diff, metric in DIFFERENCES.items():
        points = {
            e["group"]: e[side][metric]["value"]
            for e in groups
            if e["used"][diff] and e[side][metric] is not None
        }
        spread = _spread(points)
        if spread is None:
            out[diff] = None
            continue
        low, high = _percentile(draws[side][diff], confidence)
        out[diff] = {
            "value": spread[0], "low": low, "high": high,
            "max_group": spread[1], "min_group": spread[2],
        }  # fmt: skip
    return out


def _increases(
    challenger: dict[str, dict[str, Any] | None],
    champion: dict[str, dict[str, Any] | None],
    draws: dict[str, dict[str, np.ndarray]],
    confidence: float,
) -> dict[str, dict[str, Any] | None]:
    """Each difference's increase, challenger minus champion, with its paired interval."""
    out: dict[str, dict[str, Any] | None] = {}
    for diff in DIFFERENCES:
        a, b = challenger.get(diff), champion.get(diff)
        if a is None or b is None:
            out[diff] = None
            continue
        low, high = _percentile(draws["challenger"][diff] - draws["champion"][diff], confidence)
        out[diff] = {"value": a["value"] - b["value"], "low": low, "high": high}
    return out


def _bootstrap(
    rows: dict[str, np.ndarray],
    used: dict[str, list[str]],
    y_pos: np.ndarray,
    preds: dict[str, np.ndarray],
    positive: int,
    n_resamples: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Stratified, paired bootstrap of every difference through multinomial cell counts."""
    rng = np.random.default_rng(seed)
    sides = list(preds)
    pos = {side: preds[side] == positive for side in sides}
    # Cell code per row: bit 0 = actually positive, bit 1 = challenger positive,
    # bit 2 = champion positive (0 without a champion).
    code = y_pos.astype(np.int64)
    for bit, side in enumerate(sides, start=1):
        code = code | (pos[side].astype(np.int64) << bit)
    stats: dict[str, dict[str, dict[str, np.ndarray]]] = {s: {} for s in sides}
    counted = used["demographic_parity_difference"]  # every group used anywhere counts here
    cells = np.arange(8)
    actual = (cells & 1).astype(bool)
    for g in counted:
        idx = rows[g]
        counts = np.bincount(code[idx], minlength=8)
        draw = rng.multinomial(idx.size, counts / idx.size, size=n_resamples)  # (B, 8)
        positives = draw[:, actual].sum(axis=1)
        for bit, side in enumerate(sides, start=1):
            chosen = ((cells >> bit) & 1).astype(bool)
            selected = draw[:, chosen].sum(axis=1)
            hits = draw[:, chosen & actual].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                tpr = np.where(positives > 0, hits / np.maximum(positives, 1), np.nan)
            stats[side].setdefault("selection_rate", {})[g] = selected / idx.size
            stats[side].setdefault("tpr", {})[g] = tpr
    out: dict[str, dict[str, np.ndarray]] = {}
    for side in sides:
        out[side] = {}
        for diff, metric in DIFFERENCES.items():
            groups = used[diff]
            if len(groups) < 2:
                out[side][diff] = np.full(n_resamples, np.nan)
                continue
            table = np.stack([stats[side][metric][g] for g in groups])  # (groups, B)
            finite = np.isfinite(table)
            top = np.where(finite, table, -np.inf).max(axis=0)
            bottom = np.where(finite, table, np.inf).min(axis=0)
            # A resample where fewer than two groups have a TPR gives no difference (NaN).
            out[side][diff] = np.where(finite.sum(axis=0) >= 2, top - bottom, np.nan)
    return out


def _positive_index(spec: FeatureSpec, label: Any) -> int:
    classes = [str(c) for c in spec.classes]
    if label is None:
        if len(classes) != 2:
            raise PolicyError(
                f"gate field 'fairness.positive_label' is required for a model with "
                f"{len(classes)} classes {list(spec.classes)}: name the favourable outcome"
            )
        return 1
    if str(label) not in classes:
        raise PolicyError(
            f"gate field 'fairness.positive_label' {label!r} is not one of the model's classes "
            f"{list(spec.classes)}"
        )
    return classes.index(str(label))


def fairness_report(
    challenger: TrainedModel,
    champion: TrainedModel | None,
    table: pa.Table,
    config: FairnessConfig,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> FairnessReport:
    """Fairness of challenger (and champion) on a holdout, by the configured attribute.

    Args:
        challenger: The challenger (a classifier).
        champion: The champion on the same classes, or None.
        table: Holdout rows: target, features and the sensitive attribute.
        config: The gate's fairness section.
        confidence: Two-sided confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.

    Returns:
        The :class:`FairnessReport`.

    Raises:
        DataError: The attribute is not a column of the table (the message lists the columns
            present), or the table has no rows.
        PolicyError: The model is a regressor, or the positive label is missing or unknown.
        TrainingError: Labels the model does not know, or missing feature columns.
    """
    if config.attribute not in table.column_names:
        raise DataError(
            f"sensitive attribute {config.attribute!r} (gate field 'fairness.attribute') is not "
            f"a column of the holdout; columns present: {table.column_names}"
        )
    spec = challenger.spec
    if spec.is_regression:
        raise PolicyError(
            f"gate field 'fairness' needs a classifier; the model predicts {spec.target!r} by "
            "regression"
        )
    positive = _positive_index(spec, config.positive_label)
    y_true = encode_target(table, spec)
    chal = np.argmax(challenger.predict_proba(table), axis=1)
    champ = None if champion is None else np.argmax(champion.predict_proba(table), axis=1)
    return compute_fairness(
        table.column(config.attribute).to_pylist(),
        y_true,
        chal,
        champ,
        positive=positive,
        attribute=config.attribute,
        positive_label=spec.classes[positive],
        min_group_size=config.min_group_size,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def check_fairness(
    challenger: TrainedModel,
    champion: TrainedModel | None,
    table: pa.Table,
    config: FairnessConfig,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`fairness_report` as the gate's input: a dictionary, with ``error`` on bad input.

    The gate fails closed on a result with ``error`` (e.g. the attribute is missing).

    Returns:
        ``FairnessReport.to_dict()``, or ``{"attribute": ..., "error": message}``.
    """
    try:
        return fairness_report(
            challenger, champion, table, config,
            confidence=confidence, n_resamples=n_resamples, seed=seed,
        ).to_dict()  # fmt: skip
    except RefitError as exc:
        return {"attribute": config.attribute, "error": str(exc)}
