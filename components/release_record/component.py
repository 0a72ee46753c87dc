"""KFP component: the release record of one retraining run (Markdown and HTML)."""

from kfp import dsl
from kfp.dsl import HTML, Markdown, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def release_record(
    store_uri: str,
    model_name: str,
    run_label: str,
    record_markdown: Output[Markdown],
    record_html: Output[HTML],
) -> None:
    """Write the run's release record from the audit log, whatever the run decided.

    Trigger and reasons, data snapshot hashes and rows, validation and drift, training
    parameters, device and cost, evaluation, fairness and serving checks, approval, rollout
    steps and checks; each line cites the audit record that backs it, and the audit chain is
    verified. The retraining pipeline runs it as its exit handler, so a failed run gets one too.

    Args:
        store_uri: Root of refit's store.
        model_name: The model.
        run_label: The run's label in the audit log (empty: no record can be matched; the
            outputs say so).
        record_markdown: The record as Markdown.
        record_html: The record as a self-contained HTML page.
    """
    from refit import steps

    if not run_label:
        text = "No run_label was given to this run: its audit records cannot be told apart.\n"
        for path in (record_markdown.path, record_html.path):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return
    steps.write_release_record(
        store_uri, model_name, run_label, record_markdown.path, record_html.path
    )
