"""The evaluation step: challenger vs champion on the same holdout, through the gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from refit.evaluation.gate import GateConfig, gate
from refit.evaluation.metrics import evaluate
from refit.io.tables import read_table
from refit.registry import ModelRegistry
from refit.steps.common import scalar_metrics
from refit.training.artifacts import load_model


@dataclass
class EvaluationOutput:
    """What ``evaluate_model`` reports."""

    blessed: bool
    reasons: list[str]
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    first_run: bool = False
    champion_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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

    Args:
        model_dir: The challenger's model folder.
        holdout_path: Parquet file of held-out rows of the current window: unseen by the
            challenger, and newer than anything the champion trained on.
        store_uri: Root of refit's store.
        model_name: Model whose champion is compared.
        gate_config: Gate configuration as a dict (see ``GateConfig``).
        run_label: Label of this pipeline run in the audit log.

    Returns:
        The blessing with every reason and both models' metrics.
    """
    config = GateConfig.from_dict(gate_config)
    registry = ModelRegistry(store_uri, model_name)
    holdout = read_table(holdout_path)
    challenger = evaluate(load_model(model_dir), holdout).to_dict()
    champion_version = registry.champion()
    champion = None
    if champion_version is not None:
        champion = evaluate(registry.load_model(champion_version.version), holdout).to_dict()
    result = gate(challenger, champion, config)
    registry.audit.append(
        "evaluation",
        {
            "run_label": run_label,
            "blessed": result.blessed,
            "reasons": result.reasons,
            "first_run": result.first_run,
            "challenger": scalar_metrics(challenger),
            "champion": None if champion is None else scalar_metrics(champion),
        },
    )
    return EvaluationOutput(
        blessed=result.blessed,
        reasons=result.reasons,
        challenger=challenger,
        champion=champion,
        first_run=result.first_run,
        champion_version=None if champion_version is None else champion_version.version,
    )
