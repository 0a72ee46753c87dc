"""The optional stages of a rollout plan: the shadow before the canary steps, the A/B test after.

Both are values inside a :class:`~refit.deploy.plan.RolloutPlan` (its ``shadow`` and
``ab_test``); the rollout controller runs them (:mod:`refit.deploy.shadow`,
:mod:`refit.deploy.abtest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from refit.deploy.abtest import SampleSizePlan, plan_sample_size
from refit.errors import DeployError
from refit.fields import FieldChecks

_CHECK = FieldChecks(DeployError)

__all__ = ["ABTestSpec", "ShadowSpec"]

_SHADOW_FIELDS = (
    "analyses",
    "min_pairs",
    "max_disagreement",
    "max_score_shift",
    "max_latency_ratio",
    "max_error_rate",
    "latency_quantile",
    "confidence",
)


@dataclass(frozen=True)
class ShadowSpec:
    """The shadow stage: the challenger answers copies of real requests before taking traffic.

    Every analysis reads the counts since the stage began. It fails *early* (decisively, before
    the planned analyses end) once ``min_pairs`` pairs are in and the disagreement or error
    rate's Wilson interval at ``confidence`` lies wholly above its ceiling, or the mean score
    difference or the latency ratio is over its ceiling; at the last analysis any value over its
    ceiling, or fewer than ``min_pairs`` pairs, fails the stage. Either failure rolls back
    before any traffic moves.

    Attributes:
        analyses: Analyses of the plan's ``interval_seconds`` the shadow runs for (>= 1).
        min_pairs: Compared requests needed before any verdict (>= 1).
        max_disagreement: Ceiling on the share of requests whose predicted label differs (a
            regressor's prediction differing by over 1% counts as a disagreement).
        max_score_shift: Ceiling on the mean absolute difference of the scores (class
            probabilities: half the L1 distance; regressors: the prediction).
        max_latency_ratio: Ceiling on challenger / champion model latency at
            ``latency_quantile``.
        max_error_rate: Ceiling on the share of copies the challenger fails to answer.
        latency_quantile: The latency quantile compared, in (0, 1).
        confidence: Confidence of the early stop's interval, in (0, 1).
    """

    analyses: int = 3
    min_pairs: int = 100
    max_disagreement: float = 0.05
    max_score_shift: float = 0.05
    max_latency_ratio: float = 2.0
    max_error_rate: float = 0.01
    latency_quantile: float = 0.99
    confidence: float = 0.95

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            DeployError: Naming the field and what is wrong with it.
        """
        set_ = object.__setattr__
        set_(self, "analyses", _CHECK.integer(self.analyses, "shadow.analyses", 1))
        set_(self, "min_pairs", _CHECK.integer(self.min_pairs, "shadow.min_pairs", 1))
        for name in ("max_disagreement", "max_score_shift", "max_error_rate"):
            set_(self, name, _CHECK.fraction(getattr(self, name), f"shadow.{name}"))
        ratio = _CHECK.number(self.max_latency_ratio, "shadow.max_latency_ratio")
        if ratio <= 0:
            raise DeployError(f"shadow.max_latency_ratio must be > 0, got {ratio}")
        set_(self, "max_latency_ratio", ratio)
        for name in ("latency_quantile", "confidence"):
            value = _CHECK.number(getattr(self, name), f"shadow.{name}")
            if not 0 < value < 1:
                raise DeployError(f"shadow.{name} must be in (0, 1), got {value}")
            set_(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {name: getattr(self, name) for name in _SHADOW_FIELDS}

    @classmethod
    def from_dict(cls, data: Any) -> ShadowSpec:
        """Build from a dict (missing fields take their defaults).

        Raises:
            DeployError: Unknown fields or invalid values.
        """
        return cls(**dict(_CHECK.check_keys(data, _SHADOW_FIELDS, "shadow")))


_AB_FIELDS = (
    "metric",
    "mde",
    "sd",
    "baseline_rate",
    "alpha",
    "power",
    "percent",
    "method",
    "on_inconclusive",
    "feedback_path",
    "min_units",
    "tau",
    "salt",
)

#: The A/B fields that take one of two words.
_AB_CHOICES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "metric": ("mean", "proportion"),
        "method": ("fixed", "sequential"),
        "on_inconclusive": ("keep", "rollback"),
    }
)


@dataclass(frozen=True)
class ABTestSpec:
    """The A/B stage after the canary steps: a business metric from feedback events.

    Attributes:
        metric: ``"mean"`` (Welch's t-test; values such as revenue) or ``"proportion"`` (the
            two-proportion z-test; 0/1 values such as a conversion).
        mde: Minimum detectable effect, absolute, in the metric's units (> 0).
        sd: The metric's standard deviation (``mean``; for the sample-size plan).
        baseline_rate: The champion's rate (``proportion``; for the sample-size plan).
        alpha: Two-sided level (false-positive rate) of the test.
        power: Chance of finding an effect of ``mde`` at the planned units.
        percent: The challenger's (treatment's) share of the units, 1..99.
        method: ``"fixed"`` (decide once, at the planned units) or ``"sequential"`` (mSPRT,
            always valid: may stop at any analysis).
        on_inconclusive: What a non-significant result does: ``"keep"`` (the champion stays,
            the challenger is not marked) or ``"rollback"`` (the challenger is rolled back).
        feedback_path: The JSON Lines file of feedback events the model server appends to
            (``refit serve-model --feedback-file``).
        min_units: Units per arm before the sequential test may decide (>= 2).
        tau: The mSPRT's mixture scale (default: ``mde``).
        salt: The arm assignment's salt ("" : the model, version and start time).
    """

    metric: str = "mean"
    mde: float = 0.0
    sd: float | None = None
    baseline_rate: float | None = None
    alpha: float = 0.05
    power: float = 0.8
    percent: int = 50
    method: str = "fixed"
    on_inconclusive: str = "keep"
    feedback_path: str = ""
    min_units: int = 100
    tau: float | None = None
    salt: str = ""

    def __post_init__(self) -> None:
        """Validate every field (and that a sample size can be planned).

        Raises:
            DeployError: Naming the field and what is wrong with it.
        """
        for name, choices in _AB_CHOICES.items():
            if getattr(self, name) not in choices:
                raise DeployError(
                    f"ab_test.{name} must be {choices[0]!r} or {choices[1]!r}, "
                    f"got {getattr(self, name)!r}"
                )
        self._set_numbers()
        if not isinstance(self.feedback_path, str) or not self.feedback_path.strip():
            raise DeployError(
                "ab_test.feedback_path must name the JSON Lines file of feedback events "
                "(refit serve-model --feedback-file)"
            )
        if not isinstance(self.salt, str) or len(self.salt) > 200:
            raise DeployError(
                f"ab_test.salt must be a string of <= 200 characters, got {self.salt!r}"
            )
        try:
            self.sample_size()
        except DeployError as exc:
            raise DeployError(f"ab_test: {exc}") from None

    def _set_numbers(self) -> None:
        """Check the numeric fields, and the ones the metric's sample-size plan needs."""
        set_ = object.__setattr__
        percent = _CHECK.integer(self.percent, "ab_test.percent", 1)
        if percent > 99:
            raise DeployError(f"ab_test.percent must be in 1..99, got {percent}")
        set_(self, "percent", percent)
        set_(self, "min_units", _CHECK.integer(self.min_units, "ab_test.min_units", 2))
        for name in ("mde", "alpha", "power"):
            set_(self, name, _CHECK.number(getattr(self, name), f"ab_test.{name}"))
        for name in ("sd", "baseline_rate", "tau"):
            set_(self, name, _CHECK.number(getattr(self, name), f"ab_test.{name}", optional=True))
        if self.metric == "mean" and self.sd is None:
            raise DeployError("ab_test.sd is needed for metric 'mean' (to plan the sample size)")
        if self.metric == "proportion" and self.baseline_rate is None:
            raise DeployError(
                "ab_test.baseline_rate is needed for metric 'proportion' (to plan the sample size)"
            )
        if self.tau is not None and self.tau <= 0:
            raise DeployError(f"ab_test.tau must be > 0, got {self.tau}")

    def sample_size(self) -> SampleSizePlan:
        """The planned units per arm."""
        return plan_sample_size(
            self.mde,
            alpha=self.alpha,
            power=self.power,
            treatment_percent=self.percent,
            sd=self.sd if self.metric == "mean" else None,
            baseline_rate=self.baseline_rate if self.metric == "proportion" else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (fields left at None are left out)."""
        out = {name: getattr(self, name) for name in _AB_FIELDS}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> ABTestSpec:
        """Build from a dict (missing fields take their defaults).

        Raises:
            DeployError: Unknown fields or invalid values.
        """
        data = _CHECK.check_keys(data, _AB_FIELDS, "ab_test")
        if "mde" not in data:
            raise DeployError("ab_test is missing the required field 'mde'")
        return cls(**dict(data))
