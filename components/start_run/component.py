"""KFP component: the retraining run's first task; names the run, refuses what cannot work."""

from typing import NamedTuple

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def start_run(
    store_uri: str,
    model_name: str,
    run_id: str,
    run_label: str = "",
    deploy_target: str = "local",
    rollout_plan: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
    deploy_options: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
) -> NamedTuple("Outputs", Output=bool, label=str):
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
        rollout_plan: Canary rollout plan (a dict); empty: promote directly.
        deploy_options: Options of the deployment target (a dict).

    Returns:
        label: The run's label, which every later task records.
        Output: Whether the version will be rolled out as a canary (a rollout plan was given);
            False: promoted directly. A bare boolean because the pipeline branches on it, and
            kfp.local 2.17 skips a branch on a named output (it resolves
            ``pipelinechannel--<task>-<name>`` as a pipeline input).
    """
    from collections import namedtuple

    from refit import steps

    label = steps.start_run(
        store_uri,
        model_name,
        run_label,
        run_id,
        deploy_target=deploy_target,
        rollout_plan=rollout_plan,
        deploy_options=deploy_options,
    )
    return namedtuple("Outputs", ["Output", "label"])(bool(rollout_plan), label)
