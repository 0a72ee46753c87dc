"""The analyses `run_canary` runs, built from a rollout plan and read from Prometheus.

`prometheus_analyzer` runs the plan's canary checks (:mod:`refit.deploy.analysis`);
`shadow_prometheus_analyzer` judges its shadow stage (:mod:`refit.deploy.shadow`).
"""

from __future__ import annotations

from refit.deploy.analysis import CheckContext, CheckResult, build_checks, run_analysis
from refit.deploy.plan import RolloutPlan
from refit.deploy.prometheus import MetricsClient, PrometheusClient
from refit.deploy.rollout_types import Analyzer, ShadowAnalyze
from refit.deploy.target import TrafficSplit
from refit.errors import DeployError

__all__ = ["prometheus_analyzer", "shadow_prometheus_analyzer"]


def prometheus_analyzer(
    plan: RolloutPlan,
    *,
    model: str,
    namespace: str = "",
    client: MetricsClient | None = None,
) -> Analyzer:
    """Build the `Analyzer` that runs a plan's checks against Prometheus.

    Args:
        plan: The rollout plan (its checks, query preset and ``prometheus_url``).
        model: The model's name (``{model}`` in the queries).
        namespace: The serving namespace (``{namespace}`` in the queries).
        client: A metrics client; default: `PrometheusClient` on ``plan.prometheus_url``.

    Raises:
        DeployError: No client was given and the plan names no ``prometheus_url``.
    """
    if client is None:
        if not plan.prometheus_url:
            raise DeployError(
                "rollout plan has no prometheus_url: the canary checks cannot read any metrics "
                "(set prometheus_url in the plan)"
            )
        client = PrometheusClient(plan.prometheus_url)
    checks = build_checks(plan)
    metrics = client

    def analyze(
        split: TrafficSplit, elapsed: float, percent: int, window: float
    ) -> list[CheckResult]:
        ctx = CheckContext(
            model=model,
            namespace=namespace,
            primary_revision=split.primary_revision,
            canary_revision=split.canary_revision,
            window_seconds=max(1, round(window)),
            step_percent=percent,
            elapsed_seconds=elapsed,
        )
        return run_analysis(metrics, checks, ctx)

    return analyze


def shadow_prometheus_analyzer(
    plan: RolloutPlan, *, model: str, client: MetricsClient | None = None
) -> ShadowAnalyze:
    """Build the `ShadowAnalyze` that judges a plan's shadow stage on Prometheus.

    Raises:
        DeployError: The plan has no shadow stage, or no client and no ``prometheus_url``.
    """
    from refit.deploy.shadow import shadow_analysis

    spec = plan.shadow
    if spec is None:
        raise DeployError("the rollout plan has no shadow stage")
    if client is None:
        if not plan.prometheus_url:
            raise DeployError(
                "rollout plan has no prometheus_url: the shadow stage cannot read any metrics"
            )
        client = PrometheusClient(plan.prometheus_url)
    metrics = client

    def analyze(split: TrafficSplit, elapsed: float, last: bool) -> list[CheckResult]:
        try:
            return shadow_analysis(
                metrics,
                spec,
                model=model,
                shadow_revision=split.canary_revision,
                champion_revision=split.primary_revision,
                elapsed_seconds=elapsed,
                last=last,
            )
        except DeployError as exc:
            return [
                CheckResult(
                    name="shadow",
                    kind="shadow",
                    passed=False,
                    value=None,
                    primary_value=None,
                    threshold=None,
                    detail=f"metrics unavailable: {exc}",
                    decisive=True,
                )
            ]

    return analyze
