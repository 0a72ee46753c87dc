"""KFP component: challenger vs champion on the same holdout, through the promotion gate."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

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
    run_label: str = "",
) -> NamedTuple("Outputs", [("blessed", bool), ("reasons", str), ("metrics_json", str)]):
    """Score challenger and champion on the same holdout and apply the promotion gate.

    With no champion the gate judges absolute thresholds alone and says so; a gate with no
    thresholds fails closed.

    Args:
        model: The challenger.
        holdout: Held-out rows of the current window.
        store_uri: Root of refit's store.
        model_name: Model whose champion is compared.
        gate_json: Promotion gate (JSON): thresholds (metric -> minimum), max_degradation.
        run_label: Label of this run in the audit log.

    Returns:
        metrics: Challenger metrics, and the champion's as ``champion_*``.
        classification_metrics: Challenger confusion matrix and ROC curve.
        blessed: Whether the challenger may be promoted.
        reasons: JSON list of every check with its numbers.
        metrics_json: The challenger's scalar metrics (JSON).
    """
    import json
    from collections import namedtuple

    from refit import steps

    out = steps.evaluate_model(
        model.path, holdout.path, store_uri, model_name, json.loads(gate_json), run_label=run_label
    )
    scalars = steps.scalar_metrics(out.challenger)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    if out.champion is not None:
        for name, value in steps.scalar_metrics(out.champion).items():
            metrics.log_metric(f"champion_{name}", value)
    labels = [str(label) for label in out.challenger["labels"]]
    classification_metrics.log_confusion_matrix(labels, out.challenger["confusion_matrix"])
    roc = out.challenger.get("roc_curve")
    if roc:
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    return namedtuple("Outputs", ["blessed", "reasons", "metrics_json"])(
        out.blessed, json.dumps(out.reasons), json.dumps(scalars)
    )
