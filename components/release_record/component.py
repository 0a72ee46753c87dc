"""KFP component: the release record of one retraining run (Markdown and HTML)."""

from kfp import dsl
from kfp.dsl import HTML, Markdown, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def release_record(
    store_uri: str,
    model_name: str,
    run_id: str,
    status: dsl.PipelineTaskFinalStatus,
    record_markdown: Output[Markdown],
    record_html: Output[HTML],
    run_label: str = "",
) -> None:
    """Write the run's release record from the audit log, whatever the run decided.

    Trigger and reasons, data snapshot hashes and rows, validation and drift, training
    parameters, device and cost, evaluation, fairness and serving checks, approval, rollout
    steps and checks; each line cites the audit record that backs it, and the audit chain is
    verified. The retraining pipeline runs it as its exit handler, so a failed run gets one too:
    KFP's final status opens the record of a failed or cancelled run with the task that failed
    and KFP's error, even when the run failed before its first audit record.

    Args:
        store_uri: Root of refit's store.
        model_name: The model.
        run_id: The KFP run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        status: How the run's tasks ended (KFP fills it in for an exit handler).
        record_markdown: The record as Markdown.
        record_html: The record as a self-contained HTML page.
        run_label: The run's label in the audit log; empty: the KFP run's id, as the run's
            first task resolves it.
    """
    from refit import steps
    from refit.governance.record import RunStatus

    final = RunStatus(
        state=status.state or "UNKNOWN",
        task=status.pipeline_task_name or "",
        error=status.error_message or "",
    )
    steps.write_release_record(
        store_uri,
        model_name,
        steps.run_label_for(run_label, run_id),
        record_markdown.path,
        record_html.path,
        final,
    )
