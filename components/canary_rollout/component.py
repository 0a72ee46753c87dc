"""KFP component: roll a registered version out as a canary, with analysis and rollback."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def canary_rollout(
    store_uri: str,
    model_name: str,
    version: int,
    plan: dict,
    timeline: Output[Markdown],
    metrics: Output[Metrics],
    deploy_target: str = "local",
    options: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    run_label: str = "",
) -> NamedTuple("Outputs", live_version=int):
    """Shift traffic to ``version`` step by step, check it, then promote it or roll it back.

    Each step gives the canary a share of the traffic, waits one analysis interval and runs the
    plan's checks against Prometheus (error rate, latency quantile, a sequential test of the
    error rate). A decisive failure, too many failed analyses, the deadline, an unreachable
    Prometheus or a target error roll the canary back; otherwise it is promoted (the champion
    alias moves). Every step and check goes to the audit log. A version awaiting human approval
    is left alone.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to roll out.
        version: Registered version to roll out.
        plan: Rollout plan (a dict): steps, interval_seconds, checks, failures_allowed,
            deadline_seconds, prometheus_url, query_preset, and the optional shadow (before
            the steps) and ab_test (after them) stages of the local target.
        timeline: Markdown timeline of the steps and every check.
        metrics: promoted, rolled_back, steps_completed, failed_analyses, seconds.
        deploy_target: ``local`` (the ``refit serve-model`` server) or ``kserve``.
        options: The target's options (a dict), e.g. ``{"server_url": ...}`` for local or
            ``{"namespace": ..., "service": ...}`` for KServe.
        run_label: Label of this run in the audit log.

    Returns:
        live_version: The live version afterwards (the canary when promoted, else the champion).
    """
    from collections import namedtuple

    from refit import steps

    outputs = namedtuple("Outputs", ["live_version"])

    result = steps.canary_rollout(
        store_uri,
        model_name,
        version,
        plan,
        target=deploy_target,
        options=options,
        run_label=run_label,
    )
    if result is None:
        text = f"Version {version} awaits human approval: nothing was rolled out.\n"
        with open(timeline.path, "w", encoding="utf-8") as f:
            f.write(text)
        metrics.log_metric("awaiting_approval", 1.0)
        from refit.registry import open_registry

        return outputs(open_registry(store_uri, model_name).get_alias("champion") or 0)
    with open(timeline.path, "w", encoding="utf-8") as f:
        f.write(result.to_markdown())
    for key, value in result.metrics().items():
        metrics.log_metric(key, value)
    return outputs(result.live_version or 0)
