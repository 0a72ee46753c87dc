"""KFP component: challenger vs champion on the same holdout, through the promotion gate."""

from kfp import dsl
from kfp.dsl import (
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    store_uri: str,
    model_name: str,
    gate_json: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    gate_report: Output[Markdown],
    fairness: Output[Markdown],
    run_label: str = "",
) -> bool:
    """Score challenger and champion on the same holdout and apply the promotion gate.

    With no champion the gate judges absolute thresholds alone and says so; a gate with no
    thresholds fails closed. Optional gate sections add a fairness check on a sensitive
    attribute (a holdout column) and a serving check (both models loaded as served, timed on
    the same KServe V2 requests).

    Args:
        model: The challenger.
        holdout: Held-out rows of the current window.
        store_uri: Root of refit's store.
        model_name: Model whose champion is compared.
        gate_json: Promotion gate (JSON): thresholds, max_degradation, and optionally mode
            (superior / non-inferior), margin, changes, slices, fairness (attribute,
            max_demographic_parity_difference, max_equal_opportunity_difference,
            max_increase_over_champion, min_group_size) and serving (requests, batch_size,
            max_p99_ms, max_p99_increase) (see refit.evaluation.gate).
        run_label: Label of this run in the audit log.

    Returns:
        metrics: Challenger metrics, and the champion's as ``champion_*``.
        classification_metrics: Challenger confusion matrix and ROC curve.
        evaluation: JSON with ``blessed``, ``reasons`` (every check with its numbers), both
            models' scalar metrics, confidence ``intervals``, paired ``tests`` (McNemar,
            DeLong p-values), ``paired`` bootstrap intervals of each difference, and the
            ``fairness`` and ``serving`` results (null when not configured).
        gate_report: Markdown table of the gate's checks, with the serving check's latencies.
        fairness: Markdown table per group (challenger vs champion) with the disparities.
        Output: Whether the challenger may be promoted (``blessed``).
    """
    import json

    from refit import steps

    out = steps.evaluate_model(
        model.path, holdout.path, store_uri, model_name, json.loads(gate_json), run_label=run_label
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
    evaluation.metadata.update({"blessed": out.blessed, "reasons": out.reasons})
    return out.blessed
