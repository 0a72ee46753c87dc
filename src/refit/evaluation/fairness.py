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

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
import pyarrow as pa

from refit.errors import DataError, PolicyError, RefitError
from refit.evaluation.stats import wilson_interval
from refit.training.features import FeatureSpec, encode_target
from refit.training.trainers import TrainedModel

__all__ = [
    "DIFFERENCES",
    "GROUP_METRICS",
    "MISSING_GROUP",
    "FairnessConfig",
    "FairnessReport",
    "check_fairness",
    "compute_fairness",
    "fairness_report",
    "LABELS",
    "is_number",
]

#: Per-group metrics, each a proportion with a Wilson interval.
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")

#: Disparity measures: name -> the per-group metric whose spread they measure.
DIFFERENCES = {
    "demographic_parity_difference": "selection_rate",
    "equal_opportunity_difference": "tpr",
}

#: Label of the group of rows whose sensitive attribute is missing (null).
MISSING_GROUP = "<missing>"

#: Readable names of the differences and per-group metrics, for reasons and reports.
LABELS = {
    "demographic_parity_difference": "demographic-parity difference",
    "equal_opportunity_difference": "equal-opportunity difference",
    "selection_rate": "selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "accuracy": "accuracy",
}


def is_number(value: Any) -> TypeGuard[float]:
    """Return whether ``value`` is a real number (int, float, numpy number), bools excluded."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bound(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not math.isfinite(value) or not 0 <= value <= 1:
        raise PolicyError(f"gate field 'fairness.{what}' must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass
class FairnessConfig:
    """The gate's ``fairness`` section.

    Attributes:
        attribute: The sensitive attribute: a column of the holdout.
        max_demographic_parity_difference: Ceiling on the challenger's demographic-parity
            difference, or None.
        max_equal_opportunity_difference: Ceiling on the challenger's equal-opportunity
            difference, or None.
        max_increase_over_champion: Largest increase of either difference over the champion's
            on the same rows (point values), or None. Ignored without a champion.
        min_group_size: Fewest rows (for demographic parity) or actual positives (for equal
            opportunity) a group needs to count; smaller groups are reported only.
        positive_label: The favourable outcome ("selected"). Default: the second of two sorted
            classes (the class F1 and ROC AUC treat as positive); required for more classes.
    """

    attribute: str
    max_demographic_parity_difference: float | None = None
    max_equal_opportunity_difference: float | None = None
    max_increase_over_champion: float | None = None
    min_group_size: int = 30
    positive_label: Any = None

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        if not isinstance(self.attribute, str) or not self.attribute:
            raise PolicyError(
                f"gate field 'fairness.attribute' must be a column name, got {self.attribute!r}"
            )
        for what in (
            "max_demographic_parity_difference",
            "max_equal_opportunity_difference",
            "max_increase_over_champion",
        ):
            setattr(self, what, _bound(getattr(self, what), what))
        size = self.min_group_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PolicyError(
                f"gate field 'fairness.min_group_size' must be a positive integer, got {size!r}"
            )
        label = self.positive_label
        if label is not None and (isinstance(label, (dict, list)) or label == ""):
            raise PolicyError(
                f"gate field 'fairness.positive_label' must be a class label, got {label!r}"
            )

    @classmethod
    def from_dict(cls, data: Any) -> FairnessConfig:
        """Build the section from ``{"attribute": ..., "max_...": ..., "min_group_size": ...}``.

        Raises:
            PolicyError: Not a mapping, no ``attribute``, unknown keys or invalid values.
        """
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise PolicyError(f"gate field 'fairness' must be a mapping, got {data!r}")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyError(
                f"gate field 'fairness' has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        if "attribute" not in data:
            raise PolicyError("gate field 'fairness' needs 'attribute': the sensitive column")
        kwargs = {k: v for k, v in data.items() if v is not None or k == "positive_label"}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "attribute": self.attribute,
            "max_demographic_parity_difference": self.max_demographic_parity_difference,
            "max_equal_opportunity_difference": self.max_equal_opportunity_difference,
            "max_increase_over_champion": self.max_increase_over_champion,
            "min_group_size": self.min_group_size,
            "positive_label": self.positive_label,
        }

    def ceiling(self, difference: str) -> float | None:
        """Return the ceiling on one of :data:`DIFFERENCES`, or None."""
        return getattr(self, f"max_{difference}")

    @property
    def has_limits(self) -> bool:
        """Whether the section can block (a ceiling or a champion margin is set)."""
        return any(
            v is not None
            for v in (
                self.max_demographic_parity_difference,
                self.max_equal_opportunity_difference,
                self.max_increase_over_champion,
            )
        )


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
    n = len(labels)
    if n == 0:
        raise DataError(f"fairness on {attribute!r}: the holdout has no rows")
    if y_true.shape != (n,) or any(p.shape != (n,) for p in preds.values()):
        raise DataError(
            f"fairness on {attribute!r}: {n} attribute values, {y_true.size} labels and "
            f"{[p.size for p in preds.values()]} predictions: lengths differ"
        )
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
    points: dict[str, dict[str, dict[str, float]]] = {side: {} for side in preds}
    used: dict[str, list[str]] = {d: [] for d in DIFFERENCES}
    for g in names:
        idx = rows[g]
        count, positives = int(idx.size), int(y_pos[idx].sum())
        entry: dict[str, Any] = {"group": g, "count": count, "positives": positives}
        entry["used"] = {
            "demographic_parity_difference": count >= min_group_size,
            "equal_opportunity_difference": positives >= min_group_size,
        }
        for side in ("challenger", "champion"):
            if side not in preds:
                entry[side] = None
                continue
            pred = preds[side][idx]
            metrics = _group_metrics(y_pos[idx], y_true[idx], pred, positive, confidence)
            entry[side] = metrics
            for diff, metric in DIFFERENCES.items():
                group_metric = metrics[metric]
                if entry["used"][diff] and group_metric is not None:
                    points[side].setdefault(diff, {})[g] = group_metric["value"]
        for diff in DIFFERENCES:
            if entry["used"][diff]:
                used[diff].append(g)
        report.groups.append(entry)
        if count < min_group_size:
            report.notes.append(
                f"group {g!r} has {count} rows (< min_group_size {min_group_size}): reported, "
                "not used in either difference or for blocking"
            )
        elif positives < min_group_size:
            report.notes.append(
                f"group {g!r} has {positives} actual positives (< min_group_size "
                f"{min_group_size}): its TPR is reported, not used in the equal-opportunity "
                "difference or for blocking"
            )
    if MISSING_GROUP in rows:
        report.notes.append(
            f"{rows[MISSING_GROUP].size} rows have no {attribute!r} value: grouped as "
            f"{MISSING_GROUP!r}"
        )
    for diff in DIFFERENCES:
        if len(used[diff]) < 2:
            need = "rows" if diff == "demographic_parity_difference" else "actual positives"
            report.notes.append(
                f"{LABELS[diff]} undefined: {len(used[diff])} group(s) with at least "
                f"{min_group_size} {need}; two are needed"
            )
    draws = _bootstrap(rows, used, y_pos, preds, positive, n_resamples, seed)
    for side in preds:
        out: dict[str, dict[str, Any] | None] = {}
        for diff in DIFFERENCES:
            spread = _spread(points[side].get(diff, {}))
            if spread is None:
                out[diff] = None
                continue
            low, high = _percentile(draws[side][diff], confidence)
            out[diff] = {
                "value": spread[0], "low": low, "high": high,
                "max_group": spread[1], "min_group": spread[2],
            }  # fmt: skip
        if side == "challenger":
            report.challenger = out
        else:
            report.champion = out
    if report.champion is not None:
        for diff in DIFFERENCES:
            a, b = report.challenger.get(diff), report.champion.get(diff)
            if a is None or b is None:
                report.increase[diff] = None
                continue
            low, high = _percentile(draws["challenger"][diff] - draws["champion"][diff], confidence)
            report.increase[diff] = {"value": a["value"] - b["value"], "low": low, "high": high}
    return report


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
