"""The gate's fairness section: its settings, and the names of the measures it limits.

`FairnessConfig` is the ``fairness`` entry of a gate config (`refit.evaluation.gate`);
`refit.evaluation.fairness` computes the measures it names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from refit.errors import PolicyError
from refit.evaluation.stats import is_number

__all__ = ["DIFFERENCES", "GROUP_METRICS", "LABELS", "FairnessConfig"]

#: Per-group metrics, each a proportion with a Wilson interval.
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")

#: Disparity measures: name -> the per-group metric whose spread they measure.
DIFFERENCES = {
    "demographic_parity_difference": "selection_rate",
    "equal_opportunity_difference": "tpr",
}

#: Readable names of the differences and per-group metrics, for reasons and reports.
LABELS = {
    "demographic_parity_difference": "demographic-parity difference",
    "equal_opportunity_difference": "equal-opportunity difference",
    "selection_rate": "selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "accuracy": "accuracy",
}


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
