"""KFP component: record what the pure steps found in the model's audit log."""

from kfp import dsl
from kfp.dsl import Input

from refit.components.types import Anomalies, DriftReport, Evaluation
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def record_results(
    store_uri: str,
    model_name: str,
    validation: Input[Anomalies] = None,
    drift: Input[DriftReport] = None,
    evaluation: Input[Evaluation] = None,
    run_label: str = "",
) -> str:
    """Append the summaries of validate_data, detect_drift and evaluate_model to the audit log.

    The pure components take no store, so they do not write the audit log: each puts the
    summary to record in its artifact's ``audit`` metadata (JSON), and this stateful step (caching
    off) appends it, as the ``validation``, ``drift`` and ``evaluation`` events that
    ``refit report`` and the release record read.

    Args:
        store_uri: Root of refit's store.
        model_name: Model whose audit log is appended to.
        validation: Output ``anomalies`` of validate_data; optional.
        drift: Output ``drift`` of detect_drift; optional.
        evaluation: Output ``evaluation`` of evaluate_model; optional.
        run_label: Label of this run in the audit log.

    Returns:
        Output: The events recorded, comma-separated.
    """
    import json

    from refit import steps

    results = {
        event: json.loads(artifact.metadata["audit"])
        for event, artifact in (
            ("validation", validation),
            ("drift", drift),
            ("evaluation", evaluation),
        )
        if artifact is not None
    }
    return ",".join(steps.record_results(store_uri, model_name, results, run_label=run_label))
