"""The rollout controller's value types: what it asks of analyses and what it returns.

`run_canary` (:mod:`refit.deploy.rollout`) takes an `Analyzer` (and for the optional stages a
`ShadowAnalyze` and an `ABAnalyze`) and returns a `RolloutResult` of `StepRecord` entries,
which renders itself as metrics and Markdown for the KFP UI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from refit.deploy.target import TrafficSplit

__all__ = [
    "KEPT",
    "PROMOTED",
    "ROLLED_BACK",
    "ABAnalyze",
    "Analyzer",
    "CheckOutcome",
    "RolloutResult",
    "ShadowAnalyze",
    "StepRecord",
]

#: Outcomes of `run_canary`.
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
KEPT = "kept"


class CheckOutcome(Protocol):
    """What the controller needs from one check result (see `refit.deploy.analysis`).

    Read-only properties, so that frozen dataclasses satisfy it.
    """

    @property
    def name(self) -> str:
        """The check's name."""
        ...

    @property
    def passed(self) -> bool:
        """Whether the canary passed."""
        ...

    @property
    def decisive(self) -> bool:
        """A failure that rolls back now."""
        ...

    @property
    def detail(self) -> str:
        """What was found, in words."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        ...


#: Analyse the canary: (traffic split, seconds since the rollout started, step percent,
#: analysis window in seconds) -> check results.
Analyzer = Callable[[TrafficSplit, float, int, float], Sequence[CheckOutcome]]

#: Analyse the shadow: (split with the shadow as canary, seconds since the stage began, last
#: analysis?) -> check results (`refit.deploy.shadow`).
ShadowAnalyze = Callable[[TrafficSplit, float, bool], Sequence[CheckOutcome]]

#: Look at the A/B test: (salt, final look?, wall time the split started) ->
#: `refit.deploy.abtest.ABLook` (feedback events older than the split are not counted).
ABAnalyze = Callable[[str, bool, float], Any]


@dataclass
class StepRecord:
    """One step of a rollout and the analyses run while it held.

    Attributes:
        percent: Canary traffic percent of this step (0 for the shadow).
        started_at: When the step was applied (UTC, ISO 8601).
        analyses: Each analysis's check results (dicts), in order.
        outcome: "passed", "failed" (rollback from this step), "kept" or "promoted".
        stage: "shadow", "canary" or "ab_test".
    """

    percent: int
    started_at: str
    analyses: list[list[dict[str, Any]]] = field(default_factory=list)
    outcome: str = "passed"
    stage: str = "canary"


@dataclass
class RolloutResult:
    """How a rollout ended and what happened on the way.

    Attributes:
        model: The model's name.
        version: The version rolled out.
        previous: The champion when the rollout started (None: there was none).
        live_version: The champion after the rollout.
        outcome: "promoted", "rolled_back" or "kept" (an A/B test without a significant
            effect, under ``on_inconclusive: keep``).
        reason: Why, in words.
        target: The target's name.
        steps: The steps, in order.
        failed_analyses: How many analyses had a failed check.
        started_at: Start time (UTC, ISO 8601).
        finished_at: End time (UTC, ISO 8601).
        seconds: Wall time of the rollout.
    """

    model: str
    version: int
    previous: int | None
    live_version: int | None
    outcome: str
    reason: str
    target: str
    steps: list[StepRecord]
    failed_analyses: int
    started_at: str
    finished_at: str
    seconds: float
    ab_test: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for KFP's Output[Metrics]."""
        checks = [c for s in self.steps for a in s.analyses for c in a]
        return {
            "promoted": float(self.outcome == PROMOTED),
            "rolled_back": float(self.outcome == ROLLED_BACK),
            "version": float(self.version),
            "live_version": float(self.live_version or 0),
            "steps_completed": float(sum(s.outcome != "failed" for s in self.steps)),
            "analyses": float(sum(len(s.analyses) for s in self.steps)),
            "failed_analyses": float(self.failed_analyses),
            "checks_failed": float(sum(not c.get("passed", False) for c in checks)),
            "seconds": round(self.seconds, 3),
        }

    def to_markdown(self) -> str:
        """Render the timeline of steps and checks as Markdown (KFP's Output[Markdown])."""
        verdict = {PROMOTED: "promoted", KEPT: "kept (champion stays)"}.get(
            self.outcome, "**rolled back**"
        )
        lines = [
            f"# Canary rollout of {self.model} v{self.version}: {verdict}",
            "",
            f"- Reason: {_md(self.reason)}",
            f"- Target: `{self.target}`; champion before: "
            f"{'none' if self.previous is None else f'v{self.previous}'}; live after: "
            f"{'none' if self.live_version is None else f'v{self.live_version}'}",
            f"- Failed analyses: {self.failed_analyses}; duration {self.seconds:.1f} s "
            f"({self.started_at} -> {self.finished_at})",
            "",
            "| step | canary % | analysis | check | passed | value | primary | threshold "
            "| detail |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for i, step in enumerate(self.steps, 1):
            pct = {"shadow": "shadow", "ab_test": f"A/B {step.percent}"}.get(
                step.stage, str(step.percent)
            )
            if not step.analyses:
                lines.append(f"| {i} | {pct} | — | — | — | — | — | — | {step.outcome} |")
            for j, analysis in enumerate(step.analyses, 1):
                for c in analysis:
                    lines.append(
                        f"| {i} | {pct} | {j} | {_md(str(c.get('name', '')))} | "
                        f"{'yes' if c.get('passed') else '**no**'} | {_num(c.get('value'))} | "
                        f"{_num(c.get('primary_value'))} | {_num(c.get('threshold'))} | "
                        f"{_md(str(c.get('detail', '')))} |"
                    )
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
