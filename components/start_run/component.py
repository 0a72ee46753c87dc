"""KFP component: the retraining run's first task; names the run, refuses what cannot work."""

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def start_run(
    store_uri: str,
    model_name: str,
    run_id: str,
    run_label: str = "",
    deploy_target: str = "local",
    rollout_plan_json: str = "",
    deploy_options_json: str = "",
) -> str:
    """Name the run and refuse a deployment that cannot work, before any other task runs.

    The run's label is ``run_label``, or the KFP run's id when it is empty, so every cluster
    run (each run of a recurring run too) gets its own audit records and release record. A
    deploy target, rollout plan and options that could never deploy (``kserve`` without a plan,
    an invalid plan, options the target does not know) fail this task, with a ``run_refused``
    audit record saying why, instead of failing after training and registration.

    Args:
        store_uri: Root of refit's store (a refusal is recorded in the model's audit log).
        model_name: The model.
        run_id: The KFP run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        run_label: The run's label; empty: the KFP run's id.
        deploy_target: Deployment target: ``local``, or ``kserve`` with a rollout plan.
        rollout_plan_json: Canary rollout plan (JSON); empty: promote directly.
        deploy_options_json: Options of the deployment target (JSON object).

    Returns:
        The run's label, which every later task records.
    """
    from refit import steps

    return steps.start_run(
        store_uri,
        model_name,
        run_label,
        run_id,
        deploy_target=deploy_target,
        rollout_plan_json=rollout_plan_json,
        deploy_options_json=deploy_options_json,
    )
