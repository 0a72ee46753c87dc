"""The evaluation step: challenger vs champion on the same holdout, through the gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from refit.errors import RefitError
from refit.evaluation.compare import compare_models
from refit.evaluation.gate import GateConfig, GateResult, render_checks_markdown
from refit.io.tables import read_table
from refit.registry import ModelRegistry
from refit.steps.common import scalar_metrics
from refit.training.artifacts import load_model


@dataclass
class EvaluationOutput:
    """What ``evaluate_model`` reports.

    ``challenger`` is None only when the evaluation could not run (bad input); ``reasons`` then
    says why and ``blessed`` is False.
    """

    blessed: bool
    reasons: list[str]
    challenger: dict[str, Any] | None
    champion: dict[str, Any] | None
    first_run: bool = False
    champion_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""


def evaluate_model(
    model_dir: str,
    holdout_path: str,
    store_uri: str,
    model_name: str,
    gate_config: dict[str, Any],
    *,
    run_label: str = "",
) -> EvaluationOutput:
    """Score challenger and champion on the same holdout rows and apply the promotion gate.

    Bad input (models on different feature sets, unseen labels, a model file whose sha256 does
    not match, an unreadable holdout) closes the gate with the error as its reason.

    Args:
        model_dir: The challenger's model folder.
        holdout_path: Parquet file of held-out rows of the current window: unseen by the
            challenger, and newer than anything the champion trained on.
        store_uri: Root of refit's store.
        model_name: Model whose champion is compared.
        gate_config: Gate configuration as a dict (see ``GateConfig``).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The blessing with every reason, both models' metrics, intervals and paired tests
        (in ``extra``), and a Markdown table of the checks.
    """
    config = GateConfig.from_dict(gate_config)
    registry = ModelRegistry(store_uri, model_name)
    champion_version = registry.champion()
    challenger = champion = None
    extra: dict[str, Any] = {}
    try:
        holdout = read_table(holdout_path)
        champ_model = (
            None if champion_version is None else registry.load_model(champion_version.version)
        )
        comparison = compare_models(load_model(model_dir), champ_model, holdout, config)
        result = comparison.judge(config)
        base = comparison.challenger
        challenger = {**(base.to_dict() if base else {}), **comparison.metrics("challenger")}
        if champ_model is not None:
            base = comparison.champion
            champion = {**(base.to_dict() if base else {}), **comparison.metrics("champion")}
        extra = {
            "n_rows": comparison.n_rows,
            "intervals": comparison.intervals,
            "paired": comparison.paired,
            "tests": comparison.tests,
            "slices": comparison.slices,
        }
    except RefitError as exc:
        result = GateResult(
            blessed=False,
            reasons=[f"cannot evaluate: {exc}", "not blessed: gate closed on bad input"],
            first_run=champion_version is None,
            checks=[
                {
                    "metric": "-",
                    "kind": "input",
                    "value": None,
                    "reference": None,
                    "passed": False,
                    "detail": f"cannot evaluate: {exc}",
                }  # fmt: skip
            ],
        )
    registry.audit.append(
        "evaluation",
        {
            "run_label": run_label,
            "blessed": result.blessed,
            "reasons": result.reasons,
            "first_run": result.first_run,
            "challenger": None if challenger is None else scalar_metrics(challenger),
            "champion": None if champion is None else scalar_metrics(champion),
            "champion_version": None if champion_version is None else champion_version.version,
            "tests": {
                k: v.get("p_value", v.get("error")) for k, v in extra.get("tests", {}).items()
            },
        },
    )
    return EvaluationOutput(
        blessed=result.blessed,
        reasons=result.reasons,
        challenger=challenger,
        champion=champion,
        first_run=result.first_run,
        champion_version=None if champion_version is None else champion_version.version,
        extra=extra,
        checks=result.checks,
        markdown=render_checks_markdown(result),
    )
