"""The retraining pipeline.

start (name the run, refuse a deployment that cannot work) -> snapshot -> anonymize -> resolve the
champion -> validate -> drift -> decide -> select training windows -> train -> evaluate -> record ->
register -> promote (no rollout plan) or canary rollout (a plan given). The resolver reads the
registry once and hands the champion, its training data and profile to the pure steps (validate,
drift, evaluate, train) as artifacts; those are cached, the rest is not. With an approval policy
that requires it, the registered version waits for ``refit registry approve`` instead. The release
record is the exit handler: every run writes one, whatever it decided or wherever it failed (it
reads KFP's final status of the run's tasks). A run started without ``run_label`` is labelled by its
KFP run id, so every cluster run, each run of a recurring run included, gets its own release record.

Compiled YAML is committed beside this file (``retraining.yaml``, the ``cpu`` node profile) and
kept fresh by a test. The training task runs on a node profile (:mod:`refit.pipelines.profiles`)
applied at compile time: :func:`build_retraining_pipeline` builds the pipeline for any profile,
and ``refit compile --node-profile gpu-spot`` compiles it.
"""

from kfp import dsl, kubernetes

from refit.components import (
    anonymize_data,
    canary_rollout,
    decide_retrain,
    detect_drift,
    evaluate_model,
    promote_model,
    record_results,
    register_model,
    release_record,
    resolve_champion,
    select_training_windows,
    snapshot_data,
    start_run,
    train_model,
    validate_data,
)
from refit.defaults import (
    DEFAULT_GATE,
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_POLICY,
    DEFAULT_SEED,
    DEFAULT_TRAINER,
)
from refit.errors import SchemaError
from refit.images import engine_image
from refit.pipelines.profiles import BUILTIN_PROFILES, NodeProfile, apply_profile

#: Kubernetes Secret (key ``key``) holding the tokenization key of the privacy step.
TOKEN_KEY_SECRET = "refit-token-key"

# One set of defaults for every entry point (README, --help, CLI, backfill): refit.defaults


def _no_cache(task: dsl.PipelineTask) -> dsl.PipelineTask:
    # Steps that read or write state (the latest data, the registry, the policy state, the
    # audit log): KFP's cache keys on parameters and input artifacts, not on that state, so a
    # cached one could be stale. The pure steps (validate, drift, train, evaluate) keep caching
    # on.
    return task.set_caching_options(False)


def build_retraining_pipeline(
    profile: NodeProfile = BUILTIN_PROFILES["cpu"], engine: str = "native"
):
    """Build the retraining pipeline with its training task on a node profile.

    Args:
        profile: Node profile of the training task (resources, GPU, node selectors,
            tolerations, retries); its device and price go to the task as parameters.
        engine: Statistics engine of the validation and drift tasks: ``native``, ``auto`` or
            ``tfdv`` (those two tasks then run in the ``refit-tfdv`` image; the task image is
            fixed at compile time, so this is a compile-time choice).

    Returns:
        The pipeline function.
    """
    if engine not in ("native", "auto", "tfdv"):
        raise SchemaError(f"engine {engine!r} is not one of ['native', 'auto', 'tfdv']")

    def on_engine(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return task.set_container_image(engine_image(engine)) if engine == "tfdv" else task

    @dsl.pipeline(
        name="refit-retraining",
        description="Validate a window, detect drift, decide by policy, retrain, gate, promote.",
    )
    def retraining_pipeline(  # KFP parameter defaults below ({}, []) are never mutated
        data_uri: str,
        store_uri: str,
        model_name: str = "model",
        label_column: str = "label",
        time_column: str = "",
        policy: dict = DEFAULT_POLICY,
        gate: dict = DEFAULT_GATE,
        trainer: str = DEFAULT_TRAINER,
        params: dict = {},  # noqa: B006
        seed: int = DEFAULT_SEED,
        holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
        deploy_target: str = "local",
        now: str = "",
        run_label: str = "",
        privacy: dict = {},  # noqa: B006
        approval: dict = {},  # noqa: B006
        rollout_plan: dict = {},  # noqa: B006
        deploy_options: dict = {},  # noqa: B006
        beam_pipeline_args: list = [],  # noqa: B006
        distributed: dict = {},  # noqa: B006
        multivariate_drift: dict = {},  # noqa: B006
        holdout_split: str = "random",
        training_window: dict = {},  # noqa: B006
        warm_start: bool = False,
        late_labels: bool = False,
    ):
        """Run one retraining iteration over the window at ``data_uri``.

        Args:
            data_uri: CSV or Parquet window (local path or gs:// URI).
            store_uri: Root of refit's store: snapshots, registry, audit log.
            model_name: Registered model name.
            label_column: Label column.
            time_column: Optional event-time column (recorded, excluded from features).
            policy: Retrain policy (a dict).
            gate: Promotion gate (a dict).
            trainer: Trainer name (xgboost, random_forest, logistic_regression).
            params: Trainer hyper-parameters (a dict).
            seed: Seed for the holdout split and training.
            holdout_fraction: Share of the window held out for evaluation.
            deploy_target: Deployment target name (``local`` in the embedded mode, or
                ``kserve`` with a rollout plan); a target, plan and options that cannot work
                together are refused by the first task, before any work.
            now: Decision time (ISO 8601); empty means the current time.
            run_label: Label of this run in the audit log and the registry (each version it
                registers records it); empty: the KFP run's id, so each run (each run of a
                recurring run too) gets its own release record.
            privacy: Columns to drop, tokenize or generalise before anything else reads the
                window (a dict); empty: none. The tokenization key comes from the environment
                (``REFIT_TOKEN_KEY``) or a mounted Secret, never a parameter.
            approval: Human approval policy (a dict); empty: none.
            rollout_plan: Canary rollout plan (a dict); empty: promote directly.
            deploy_options: Options of the deployment target (a dict).
            beam_pipeline_args: Apache Beam arguments for the TFDV engine (a list), e.g.
                Dataflow's ``--runner``; ``[]`` runs TFDV in the task itself.
            distributed: Distributed XGBoost for the training task (a dict); empty: one
                process. ``{"executor": "trainjob", "namespace": ..., "allowed_namespaces":
                [...], "num_nodes": N, "profile": {...}}`` runs a Kubeflow Trainer TrainJob on
                the ``xgboost-distributed`` runtime (README, "Distributed training").
            multivariate_drift: The drift step's multivariate check (a dict, e.g.
                ``{"method": "pca_reconstruction"}``); ``{}``: off.
            holdout_split: ``random`` (seeded) or ``time`` (out-of-time: the window's latest
                rows by ``time_column`` are held out).
            training_window: Windows the challenger trains on (a dict: ``windows``, ``since``,
                ``recency_half_life``); ``{}``: the current window only.
            warm_start: Continue boosting from the champion (XGBoost), not from scratch.
            late_labels: Labels arrive after the window: a window whose label column is
                missing or all null passes validation (every other check unchanged) and the
                decision uses the champion's metric estimated without labels (CBPE); a retrain
                it calls for is deferred to the next labelled window (README, "Windows without
                labels").
        """
        record = _no_cache(
            release_record(
                store_uri=store_uri,
                model_name=model_name,
                run_label=run_label,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
        )
        with dsl.ExitHandler(record, name="release-record"):
            start = _no_cache(
                start_run(
                    store_uri=store_uri,
                    model_name=model_name,
                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    run_label=run_label,
                    deploy_target=deploy_target,
                    rollout_plan=rollout_plan,
                    deploy_options=deploy_options,
                )
            )
            # From here on, run_label is the label the first task resolved (the given one, or
            # the KFP run id): every task below records its audit records under it.
            run_label = start.outputs["label"]
            snap = _no_cache(
                snapshot_data(
                    data_uri=data_uri,
                    store_uri=store_uri,
                    model_name=model_name,
                    time_column=time_column,
                    run_label=run_label,
                )
            )
            anon = _no_cache(
                anonymize_data(
                    snapshot=snap.outputs["snapshot"],
                    store_uri=store_uri,
                    model_name=model_name,
                    privacy=privacy,
                    time_column=time_column,
                    run_label=run_label,
                )
            )
            # The tokenization key, from the Secret when the namespace has one (optional: a
            # pipeline without privacy rules runs without it). Never a parameter.
            kubernetes.use_secret_as_env(
                anon,
                secret_name=TOKEN_KEY_SECRET,
                secret_key_to_env={"key": "REFIT_TOKEN_KEY"},
                optional=True,
            )
            window = anon.outputs["anonymized"]
            # The resolver reads the registry once; the pure tasks get what it found as input
            # artifacts (the registry's own URIs: the same champion, the same artifacts), so
            # KFP caches them on the window's and the champion's identity.
            champ = _no_cache(resolve_champion(store_uri=store_uri, model_name=model_name))
            # The champion's schema is the native engine's inference from its training data;
            # the TFDV engine infers its own from the reference, so it gets none.
            schema = {"schema": champ.outputs["schema"]} if engine == "native" else {}
            valid = on_engine(
                validate_data(
                    window=window,
                    reference=champ.outputs["reference"],
                    label_column=label_column,
                    engine=engine,
                    beam_pipeline_args=beam_pipeline_args,
                    late_labels=late_labels,
                    **schema,
                )
            )
            # The branches test the components' bare "Output" booleans: kfp.local 2.17 reads a
            # condition on a named output (pipelinechannel--<task>-<name>) as a missing
            # pipeline input and skips the branch (see the components' docstrings).
            passed = valid.outputs["Output"]
            with dsl.If(passed == True, name="data-valid"):  # noqa: E712 (KFP condition)
                drift = on_engine(
                    detect_drift(
                        window=window,
                        reference_profile=champ.outputs["reference_profile"],
                        reference=champ.outputs["reference"],
                        baseline_model=champ.outputs["champion"],
                        label_column=label_column,
                        time_column=time_column,
                        engine=engine,
                        beam_pipeline_args=beam_pipeline_args,
                        policy=policy,
                        multivariate=multivariate_drift,
                    )
                )
                decision = _no_cache(
                    decide_retrain(
                        window=window,
                        drift=drift.outputs["drift"],
                        validation=valid.outputs["anomalies"],
                        champion=champ.outputs["champion"],
                        store_uri=store_uri,
                        model_name=model_name,
                        label_column=label_column,
                        policy=policy,
                        now=now,
                        run_label=run_label,
                    )
                )
                with dsl.If(decision.outputs["Output"] == True, name="retrain"):  # noqa: E712
                    # the earlier windows the training-window policy picks (none by default)
                    earlier = _no_cache(
                        select_training_windows(
                            window=window,
                            store_uri=store_uri,
                            model_name=model_name,
                            training_window=training_window,
                        )
                    )
                    trained = apply_profile(
                        train_model(
                            snapshot=window,
                            label_column=label_column,
                            trainer=trainer,
                            params=params,
                            seed=seed,
                            holdout_fraction=holdout_fraction,
                            time_column=time_column,
                            holdout_split=holdout_split,
                            earlier=earlier.outputs["earlier"],
                            warm_start=warm_start,
                            baseline_model=champ.outputs["champion"],
                            device=profile.device,
                            price_per_hour=profile.price_per_hour,
                            node_profile=profile.name,
                            distributed=distributed,
                        ),
                        profile,
                    )
                    # training is pure (cached with the window, like evaluation); what it
                    # did is recorded here, before evaluation, as the audit log's order has it
                    trained_record = _no_cache(
                        record_results(
                            store_uri=store_uri,
                            model_name=model_name,
                            model=trained.outputs["model"],
                            run_label=run_label,
                        )
                    )
                    evaluation = evaluate_model(
                        model=trained.outputs["model"],
                        holdout=trained.outputs["holdout"],
                        baseline_model=champ.outputs["champion"],
                        gate=gate,
                    )
                    recorded = _no_cache(
                        record_results(
                            store_uri=store_uri,
                            model_name=model_name,
                            evaluation=evaluation.outputs["evaluation"],
                            run_label=run_label,
                        ).after(trained_record)
                    )
                    with dsl.If(evaluation.outputs["Output"] == True, name="blessed"):  # noqa: E712
                        registered = _no_cache(
                            register_model(
                                model=trained.outputs["model"],
                                store_uri=store_uri,
                                model_name=model_name,
                                snapshot_sha256=anon.outputs["sha256"],
                                evaluation=evaluation.outputs["evaluation"],
                                run_label=run_label,
                                approval=approval,
                            ).after(recorded)
                        )
                        # start_run's "Output": a rollout plan was given (a dict parameter
                        # cannot be a KFP condition)
                        canary = start.outputs["Output"]
                        with dsl.If(canary == False, name="direct-promotion"):  # noqa: E712
                            _no_cache(
                                promote_model(
                                    store_uri=store_uri,
                                    model_name=model_name,
                                    version=registered.outputs["version"],
                                    deploy_target=deploy_target,
                                    run_label=run_label,
                                )
                            )
                        with dsl.Else(name="canary"):
                            _no_cache(
                                canary_rollout(
                                    store_uri=store_uri,
                                    model_name=model_name,
                                    version=registered.outputs["version"],
                                    plan=rollout_plan,
                                    deploy_target=deploy_target,
                                    options=deploy_options,
                                    run_label=run_label,
                                )
                            )
            with dsl.Else(name="data-invalid"):
                # A blocked window: no decision, no policy step; its anomalies are recorded.
                _no_cache(
                    record_results(
                        store_uri=store_uri,
                        model_name=model_name,
                        validation=valid.outputs["anomalies"],
                        run_label=run_label,
                    )
                )

    return retraining_pipeline


#: The retraining pipeline on the default ``cpu`` node profile (compiled to retraining.yaml).
retraining_pipeline = build_retraining_pipeline()
