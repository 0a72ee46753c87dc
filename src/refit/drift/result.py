"""Drift results: a feature's verdict (:class:`FeatureDrift`), the dataset's (:class:`DriftResult`).

Plain values with their JSON form; :mod:`refit.drift.detect` computes them and
:mod:`refit.drift.report` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from refit.errors import DataError


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
