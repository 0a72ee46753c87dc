"""The evaluation step: challenger vs champion on the same holdout, through the gate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from refit.errors import RefitError
from refit.evaluation.compare import compare_models
from refit.evaluation.fairness import check_fairness
from refit.evaluation.gate import GateConfig, GateResult, gate
from refit.evaluation.latency import serving_check
from refit.evaluation.render import (
    render_checks_markdown,
    render_fairness_markdown,
    render_serving_markdown,
)
from refit.io.tables import read_table
from refit.steps.common import dict_param, scalar_metrics
from refit.training.artifacts import load_model


@dataclass
class EvaluationOutput:
    """What ``evaluate_model`` reports.

    ``challenger`` is None only when the evaluation could not run (bad input); ``reasons`` then
    says why and ``blessed`` is False. ``fairness`` and ``serving`` are the results of the
    gate's optional sections (None when not configured or when the evaluation could not run);
    they are also in ``extra``. ``audit`` is the summary the ``evaluation`` audit record holds
    (recorded by the stateful ``record_results`` step).
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
    fairness: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    fairness_markdown: str = ""
    audit: dict[str, Any] = field(default_factory=dict)


def evaluate_model(
    model_dir: str,
    holdout_path: str,
    gate_config: dict[str, Any],
    *,
    baseline_dir: str | None = None,
    baseline_version: int | None = None,
) -> EvaluationOutput:
    """Score challenger and baseline on the same holdout rows and apply the promotion gate.

    The baseline is the model the challenger would replace (the champion). Without one (the
    first run) the gate judges absolute thresholds alone and says so.

    Bad input (models on different feature sets, unseen labels, a model file whose sha256 does
    not match, an unreadable holdout) closes the gate with the error as its reason.

    With a ``fairness`` section the gate also judges per-group fairness on the sensitive
    attribute (a holdout column; a missing one closes the gate with the columns present named);
    with a ``serving`` section both models are loaded as served and timed on the same sample
    requests (see `refit.evaluation.latency`).

    Args:
        model_dir: The challenger's model folder.
        holdout_path: Parquet file of held-out rows of the current window: unseen by the
            challenger, and newer than anything the champion trained on.
        gate_config: Gate configuration as a dict (see ``GateConfig``).
        baseline_dir: The baseline's model folder (the champion), or None.
        baseline_version: The baseline's registered version (recorded), or None.

    Returns:
        The blessing with every reason, both models' metrics, intervals and paired tests
        (in ``extra``), fairness and serving results, Markdown for the checks (with the
        serving table) and for fairness, and the summary the audit log records.
    """
    config = GateConfig.from_dict(dict_param(gate_config, "gate"))
    has_baseline = baseline_dir is not None
    challenger = champion = None
    fairness = serving = None
    extra: dict[str, Any] = {}
    try:
        holdout = read_table(holdout_path)
        champ_model = None if baseline_dir is None else load_model(baseline_dir)
        chal_model = load_model(model_dir)
        comparison = compare_models(chal_model, champ_model, holdout, config)
        gate_input = comparison.gate_input()
        if config.fairness is not None:
            fairness = check_fairness(
                chal_model, champ_model, holdout, config.fairness,
                confidence=config.confidence, n_resamples=config.n_resamples, seed=config.seed,
            )  # fmt: skip
            gate_input["fairness"] = fairness
        if config.serving is not None:
            baseline = baseline_dir
            try:
                serving = serving_check(
                    model_dir,
                    None if baseline is None else (lambda: load_model(baseline)),
                    holdout,
                    config.serving,
                    seed=config.seed,
                ).to_dict()
            except RefitError as exc:
                serving = {"error": str(exc)}
            gate_input["serving"] = serving
        champ_metrics = None if champ_model is None else comparison.metrics("champion")
        result = gate(
            comparison.metrics("challenger"), champ_metrics, config, comparison=gate_input
        )
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
            "fairness": fairness,
            "serving": serving,
        }
    except RefitError as exc:
        result = GateResult(
            blessed=False,
            reasons=[f"cannot evaluate: {exc}", "not blessed: gate closed on bad input"],
            first_run=not has_baseline,
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
    audit = _json_finite(
        {
            "blessed": result.blessed,
            "reasons": result.reasons,
            "first_run": result.first_run,
            "challenger": None if challenger is None else scalar_metrics(challenger),
            "champion": None if champion is None else scalar_metrics(champion),
            "champion_version": baseline_version if has_baseline else None,
            "tests": {
                k: v.get("p_value", v.get("error")) for k, v in extra.get("tests", {}).items()
            },
            "intervals": _json_finite(extra.get("intervals")),
            "paired": _json_finite(extra.get("paired")),
            "fairness": _fairness_audit(fairness),
            "serving": _serving_audit(serving),
        }
    )
    markdown = render_checks_markdown(result)
    not_run = "**Not run:** the evaluation could not run; the gate failed closed.\n"
    if config.serving is not None:
        markdown += "\n" + (
            render_serving_markdown(serving) if serving else f"## Serving check\n\n{not_run}"
        )
    if config.fairness is not None and fairness is None:
        fairness_md = f"# Fairness on `{config.fairness.attribute}`\n\n{not_run}"
    else:
        fairness_md = render_fairness_markdown(fairness)
    return EvaluationOutput(
        blessed=result.blessed,
        reasons=result.reasons,
        challenger=challenger,
        champion=champion,
        first_run=result.first_run,
        champion_version=baseline_version if has_baseline else None,
        extra=extra,
        checks=result.checks,
        markdown=markdown,
        fairness=fairness,
        serving=serving,
        fairness_markdown=fairness_md,
        audit=audit,
    )


def _fairness_audit(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fairness facts worth an audit line: attribute, differences, or the error."""
    if summary is None:
        return None
    if "error" in summary:
        return {"attribute": summary.get("attribute"), "error": summary["error"]}

    def values(side: dict[str, Any] | None) -> dict[str, float | None] | None:
        if side is None:
            return None
        return {k: None if v is None else v["value"] for k, v in side.items()}

    return {
        "attribute": summary["attribute"],
        "challenger": values(summary["challenger"]),
        "champion": values(summary["champion"]),
        "groups": {g["group"]: g["count"] for g in summary["groups"]},
    }


def _serving_audit(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The serving facts worth an audit line: p50/p99, errors, load failures."""
    if summary is None:
        return None
    if "error" in summary:
        return {"error": summary["error"]}
    keys = ("loaded", "load_error", "p50_ms", "p99_ms", "throughput_rps", "errors", "first_error")
    return {
        side: None if summary.get(side) is None else {k: summary[side][k] for k in keys}
        for side in ("challenger", "champion")
    }


def _json_finite(value: Any) -> Any:
    """Return ``value`` with NaN and infinities as None (the audit log's JSON refuses them)."""
    if isinstance(value, dict):
        return {str(k): _json_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _json_finite(value.item())
    return value
