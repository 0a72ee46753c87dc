"""KFP component: challenger vs champion on the same holdout, through the promotion gate."""

from kfp import dsl
from kfp.dsl import (
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from refit.components.types import Blessing, Evaluation
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    gate: dict,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    evaluation: Output[Evaluation],
    blessing: Output[Blessing],
    gate_report: Output[Markdown],
    fairness: Output[Markdown],
    baseline_model: Input[Model] = None,
) -> bool:
    """Score a challenger and its baseline on the same holdout and apply the promotion gate.

    A function of its inputs alone (no store), so KFP caches it; like TFX's Evaluator, the
    baseline comes in as an input (refit's ``resolve_champion`` gives the champion). With no
    baseline (the first run) the gate judges absolute thresholds alone and says so; a gate with
    no thresholds fails closed. Optional gate sections add a fairness check on a sensitive
    attribute (a holdout column) and a serving check (both models loaded as served, timed on
    the same KServe V2 requests).

    Args:
        model: The challenger.
        holdout: Held-out rows of the current window.
        gate: Promotion gate (a dict): thresholds, max_degradation, and optionally mode
            (superior / non-inferior), margin, changes, slices, fairness (attribute,
            max_demographic_parity_difference, max_equal_opportunity_difference,
            max_increase_over_champion, min_group_size) and serving (requests, batch_size,
            max_p99_ms, max_p99_increase) (see refit.evaluation.gate).
        baseline_model: The model the challenger would replace (the champion); optional.

    Returns:
        metrics: Challenger metrics, and the champion's as ``champion_*``.
        classification_metrics: Challenger confusion matrix and ROC curve.
        evaluation: JSON with ``blessed``, ``reasons`` (every check with its numbers), both
            models' scalar metrics, confidence ``intervals``, paired ``tests`` (McNemar,
            DeLong p-values), ``paired`` bootstrap intervals of each difference, and the
            ``fairness`` and ``serving`` results (null when not configured); metadata
            ``blessed``, ``reasons`` and ``audit`` (JSON: the summary a stateful step records).
        blessing: The verdict alone (JSON ``blessed``, ``reasons``, ``first_run``), as TFX's
            ModelBlessing; metadata ``blessed``.
        gate_report: Markdown table of the gate's checks, with the serving check's latencies.
        fairness: Markdown table per group (challenger vs champion) with the disparities.
        Output: ``blessed``: whether the challenger may be promoted (a single boolean return,
            as kfp.local 2.17 branches on no other output).
    """
    import json

    from refit import steps

    absent = baseline_model is None or baseline_model.metadata.get("absent")
    version = None if absent else baseline_model.metadata.get("version")  # a registry's
    out = steps.evaluate_model(
        model.path,
        holdout.path,
        gate,
        baseline_dir=None if absent else baseline_model.path,
        baseline_version=None if version is None else int(version),
    )
    scalars = {} if out.challenger is None else steps.scalar_metrics(out.challenger)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    if out.champion is not None:
        for name, value in steps.scalar_metrics(out.champion).items():
            metrics.log_metric(f"champion_{name}", value)
    if out.challenger is not None and "labels" in out.challenger:
        labels = [str(label) for label in out.challenger["labels"]]
        classification_metrics.log_confusion_matrix(labels, out.challenger["confusion_matrix"])
        roc = out.challenger.get("roc_curve")
        if roc:
            classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    # files too: kfp.local's cache reuses only outputs whose files exist
    for artifact in (metrics, classification_metrics):
        with open(artifact.path, "w", encoding="utf-8") as f:
            json.dump(artifact.metadata, f)
    summary = {
        "blessed": out.blessed,
        "reasons": out.reasons,
        "first_run": out.first_run,
        "metrics": scalars,
        "champion_version": out.champion_version,
        "champion_metrics": None if out.champion is None else steps.scalar_metrics(out.champion),
        "checks": out.checks,
        **out.extra,
    }
    with open(gate_report.path, "w", encoding="utf-8") as f:
        f.write(out.markdown)
    with open(fairness.path, "w", encoding="utf-8") as f:
        f.write(out.fairness_markdown)
    with open(evaluation.path, "w", encoding="utf-8") as f:
        json.dump(summary, f, sort_keys=True)
    evaluation.metadata.update(
        {
            "refit_type": "Evaluation",
            "blessed": out.blessed,
            "reasons": out.reasons,
            "audit": json.dumps(out.audit, sort_keys=True),
        }
    )
    verdict = {"blessed": out.blessed, "reasons": out.reasons, "first_run": out.first_run}
    with open(blessing.path, "w", encoding="utf-8") as f:
        json.dump(verdict, f, sort_keys=True)
    blessing.metadata.update({"refit_type": "ModelBlessing", **verdict})
    return out.blessed
