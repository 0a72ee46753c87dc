"""The live model's confidence on recent windows, recomputed from their snapshots.

The audit log records no per-prediction output, so `live_confidence` scores the snapshots of a
model's last iterations (`refit.governance.history`) with the live model and summarises its
max-class probability per window and pooled (`refit report --confidence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from refit.errors import RefitError

if TYPE_CHECKING:  # pragma: no cover
    from refit.governance.history import History
    from refit.registry import ModelRegistry

__all__ = [
    "LOW_CONFIDENCE",
    "ConfidenceSummary",
    "WindowConfidence",
    "confidence_stats",
    "live_confidence",
]


@dataclass
class WindowConfidence:
    """The live model's confidence on one window.

    Attributes:
        run_label: The window's run.
        snapshot_sha256: The window's snapshot.
        rows: Rows scored.
        mean: Mean of the max-class probability.
        quantiles: ``{"p10", "p25", "p50", "p75", "p90"}`` of the max-class probability.
        low_share: Share of rows whose max-class probability is under `LOW_CONFIDENCE`.
        histogram: Counts per bin of `ConfidenceSummary.edges`.
        error: Why the window could not be scored ("" when it was).
    """

    run_label: str
    snapshot_sha256: str | None
    rows: int = 0
    mean: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    low_share: float | None = None
    histogram: list[int] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "run_label": self.run_label,
            "snapshot_sha256": self.snapshot_sha256,
            "rows": self.rows,
            "mean": self.mean,
            "quantiles": dict(self.quantiles),
            "low_share": self.low_share,
            "histogram": list(self.histogram),
            "error": self.error,
        }


@dataclass
class ConfidenceSummary:
    """The live model's max-class probability on recent windows (see `live_confidence`).

    Attributes:
        version: The live version that was scored (None: nothing live).
        edges: Bin edges of every histogram, from 1/classes to 1.
        windows: One entry per window, oldest first.
        pooled: All scored rows together (``run_label`` "all").
        note: What the numbers are, or why there are none.
    """

    version: int | None
    edges: list[float] = field(default_factory=list)
    windows: list[WindowConfidence] = field(default_factory=list)
    pooled: WindowConfidence | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "version": self.version,
            "edges": list(self.edges),
            "windows": [w.to_dict() for w in self.windows],
            "pooled": None if self.pooled is None else self.pooled.to_dict(),
            "note": self.note,
        }


#: A max-class probability under this counts as a low-confidence prediction.
LOW_CONFIDENCE: Final = 0.6
_QUANTILES: Final = {"p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9}


def confidence_stats(
    confidence: np.ndarray, edges: Sequence[float], run_label: str, sha256: str | None
) -> WindowConfidence:
    """Summarise max-class probabilities: mean, quantiles, low-confidence share, histogram.

    Args:
        confidence: One max-class probability per row.
        edges: Histogram bin edges (increasing).
        run_label: The window's run.
        sha256: The window's snapshot.

    Returns:
        The summary (no quantiles for an empty array).
    """
    values = np.asarray(confidence, dtype=np.float64)
    out = WindowConfidence(run_label=run_label, snapshot_sha256=sha256, rows=int(values.size))
    if values.size == 0:
        out.histogram = [0] * (len(edges) - 1)
        return out
    out.mean = float(values.mean())
    out.quantiles = {k: float(np.quantile(values, q)) for k, q in _QUANTILES.items()}
    out.low_share = float(np.mean(values < LOW_CONFIDENCE))
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=np.asarray(edges))
    out.histogram = [int(c) for c in counts]
    return out


def live_confidence(
    registry: ModelRegistry, history: History, last: int = 5, bins: int = 10
) -> ConfidenceSummary:
    """Score the snapshots of the last windows with the live model; summarise its confidence.

    The audit log records no per-prediction output, so the distribution is recomputed: the live
    (``champion``) model's max-class probability on every row of the snapshot each of the last
    ``last`` iterations stored. A window that cannot be scored (snapshot missing, schema the
    model cannot read: a blocked window) is listed with its error and left out of the pooled
    figures.

    Args:
        registry: The model's registry (the store holds the snapshots).
        history: The model's history (`read_history`).
        last: How many of the most recent iterations to score.
        bins: Histogram bins between 1/classes and 1.

    Returns:
        The summary; without a live model, or for a regressor, only a note says why.
    """
    from refit.io.snapshot import load_snapshot

    champion = registry.champion()
    if champion is None:
        return ConfidenceSummary(version=None, note="no live model: nothing to score")
    try:
        model = registry.load_model(champion.version)
    except RefitError as exc:
        return ConfidenceSummary(
            version=champion.version, note=f"cannot load live v{champion.version}: {exc}"
        )
    if model.task != "classification":
        return ConfidenceSummary(
            version=champion.version,
            note=f"live v{champion.version} is a regressor: it has no class confidence",
        )
    n_classes = max(len(model.classes), 2)
    edges = [round(float(x), 6) for x in np.linspace(1.0 / n_classes, 1.0, bins + 1)]
    summary = ConfidenceSummary(
        version=champion.version,
        edges=edges,
        note=(
            f"max-class probability of live v{champion.version} on the snapshots of the last "
            f"{last} windows, recomputed now (the audit log holds no prediction outputs)"
        ),
    )
    pooled: list[np.ndarray] = []
    for it in history.last(last):
        sha = it.snapshot_sha256
        if not sha:
            summary.windows.append(
                WindowConfidence(run_label=it.run_label, snapshot_sha256=None, error="no snapshot")
            )
            continue
        try:
            table, _ = load_snapshot(registry.store_uri, sha)
            confidence = model.predict_proba(table).max(axis=1)
        except (RefitError, OSError) as exc:
            summary.windows.append(
                WindowConfidence(run_label=it.run_label, snapshot_sha256=sha, error=str(exc))
            )
            continue
        summary.windows.append(confidence_stats(confidence, edges, it.run_label, sha))
        pooled.append(confidence)
    if pooled:
        summary.pooled = confidence_stats(np.concatenate(pooled), edges, "all", None)
    return summary
