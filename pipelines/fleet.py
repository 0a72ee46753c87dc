"""A fleet of models in one run: the retraining pipeline for each model, a ParallelFor with a limit.

Teams that run one model per region or product have two layouts on KFP (see the README's
"A fleet of models"): one recurring run per model (``refit schedule create`` per model), or
this pipeline: one run, scheduled once, that fans out over the models with ``dsl.ParallelFor``
and runs the whole retraining pipeline (a nested pipeline) for each, at most
:data:`PARALLELISM` at once. Every model keeps its own registry entry, audit log and release
record in the one store; a model's failure fails its iteration, not the others'.

``models`` is a list of objects, one per model::

    [{"model_name": "credit-emea", "data_uri": "gs://b/emea/latest.parquet"}, ...]

Every other setting (label column, policy, gate, trainer, ...) is the fleet's, shared.
"""

from kfp import dsl

from refit.pipelines.retraining import DEFAULT_GATE, DEFAULT_POLICY, retraining_pipeline

#: Models retrained at once in the committed pipeline.
PARALLELISM = 20


def build_fleet_pipeline(parallelism: int = PARALLELISM):
    """Build the fleet pipeline with a ParallelFor parallelism limit.

    Args:
        parallelism: Most models retrained at once (1 or more; fixed at compile time).

    Returns:
        The pipeline function.

    Raises:
        ValueError: ``parallelism`` is not a positive integer.
    """
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")

    @dsl.pipeline(
        name="refit-fleet",
        description="Retrain a fleet of models in one run, a limited number at once.",
    )
    def fleet_pipeline(  # KFP parameter defaults below ({}) are never mutated
        models: list,
        store_uri: str,
        label_column: str = "label",
        time_column: str = "",
        policy: dict = DEFAULT_POLICY,
        gate: dict = DEFAULT_GATE,
        trainer: str = "xgboost",
        params: dict = {},  # noqa: B006
        deploy_target: str = "local",
    ):
        """Run the retraining pipeline once per model, at most ``parallelism`` at once.

        Args:
            models: One object per model: ``model_name`` and ``data_uri`` (its window).
            store_uri: Root of refit's store, shared by the fleet.
            label_column: Label column.
            time_column: Optional event-time column.
            policy: Retrain policy (a dict), the fleet's.
            gate: Promotion gate (a dict), the fleet's.
            trainer: Trainer name.
            params: Trainer hyper-parameters (a dict).
            deploy_target: Deployment target name.
        """
        with dsl.ParallelFor(models, parallelism=parallelism) as model:
            retraining_pipeline(
                data_uri=model.data_uri,
                model_name=model.model_name,
                store_uri=store_uri,
                label_column=label_column,
                time_column=time_column,
                policy=policy,
                gate=gate,
                trainer=trainer,
                params=params,
                deploy_target=deploy_target,
            )

    return fleet_pipeline


fleet_pipeline = build_fleet_pipeline()
