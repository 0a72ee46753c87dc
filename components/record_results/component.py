"""KFP component: record what the pure steps found in the model's audit log."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from refit.components.types import Anomalies, DriftReport, Evaluation
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def record_results(
    store_uri: str,
    model_name: str,
    validation: Input[Anomalies] = None,
    drift: Input[DriftReport] = None,
    model: Input[Model] = None,
    evaluation: Input[Evaluation] = None,
    run_label: str = "",
) -> NamedTuple("Outputs", events=list):
    """Append the summaries of the pure steps (validate, drift, train, evaluate) to the audit log.

    The pure components take no store, so they do not write the audit log: each puts the
    summary to record in its artifact's ``audit`` metadata (JSON), and this stateful step (caching
    off) appends it, as the ``validation``, ``drift``, ``training`` and ``evaluation`` events that
    ``refit report`` and the release record read.

    Args:
        store_uri: Root of refit's store.
        model_name: Model whose audit log is appended to.
        validation: Output ``anomalies`` of validate_data; optional.
        drift: Output ``drift`` of detect_drift; optional.
        model: Output ``model`` of train_model (recorded as the ``training`` event); optional.
        evaluation: Output ``evaluation`` of evaluate_model; optional.
        run_label: Label of this run in the audit log.

    Returns:
        events: The events recorded, in order.
    """
    import json
    from collections import namedtuple

    from refit import steps

    results = {
        event: json.loads(artifact.metadata["audit"])
        for event, artifact in (
            ("validation", validation),
            ("drift", drift),
            ("training", model),
            ("evaluation", evaluation),
        )
        if artifact is not None
    }
    recorded = steps.record_results(store_uri, model_name, results, run_label=run_label)
    return namedtuple("Outputs", ["events"])([str(e) for e in recorded])
