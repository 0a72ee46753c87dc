"""What a canary-capable deployment target offers (the rollout controller drives it).

A target only moves traffic and serving infrastructure; the rollout controller
(:mod:`refit.deploy.rollout`) moves the registry aliases and writes the audit log, so the local
and the KServe targets share one alias and audit behaviour.

Call order for one rollout of ``version`` while ``previous`` is live:

1. ``preflight(version, previous)``: every check that can fail before traffic moves (model
   format the target can serve, namespace allowed, canary mode supported...). Raises DeployError.
2. ``start(version, previous, percent)``: deploy ``version`` as the canary with ``percent`` of
   the traffic (``previous`` None: there is no live model, the target deploys ``version`` alone).
3. ``set_traffic(percent)`` for every later step (percent < 100).
4. ``promote()`` (the canary takes all traffic and becomes the primary) or ``rollback()``
   (the primary takes all traffic again; the canary is removed). ``rollback`` must work after a
   failed ``start`` or ``set_traffic`` too.

Each call returns the `TrafficSplit` after it, once the target has observably applied it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from refit.registry import ModelVersion


@dataclass(frozen=True)
class TrafficSplit:
    """Who serves how much traffic, and how each side is labelled in the metrics.

    Attributes:
        primary_version: The registry version serving ``100 - canary_percent`` percent (None
            when there is no primary).
        canary_version: The registry version under rollout (None after promote or rollback).
        canary_percent: Percent of requests the canary receives (0-100).
        primary_revision: The primary's label in metrics queries (KServe: the predictor's
            revision name; local: the version's label).
        canary_revision: The canary's label in metrics queries ("" when there is no canary).
    """

    primary_version: int | None
    canary_version: int | None
    canary_percent: int
    primary_revision: str = ""
    canary_revision: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


class CanaryTarget(Protocol):
    """A deployment target that can split traffic between a primary and a canary."""

    #: The target's name as recorded in audit records ("local", "kserve").
    name: str

    def preflight(self, version: ModelVersion, previous: ModelVersion | None) -> None:
        """Check that ``version`` can roll out here; raise DeployError before traffic moves."""
        ...

    def start(
        self, version: ModelVersion, previous: ModelVersion | None, percent: int
    ) -> TrafficSplit:
        """Deploy ``version`` as the canary with ``percent`` of the traffic."""
        ...

    def set_traffic(self, percent: int) -> TrafficSplit:
        """Give the canary ``percent`` of the traffic (0 < percent < 100)."""
        ...

    def promote(self) -> TrafficSplit:
        """Give the canary all traffic; it becomes the primary."""
        ...

    def rollback(self) -> TrafficSplit:
        """Give the primary all traffic again and remove the canary."""
        ...
