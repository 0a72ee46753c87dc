"""A short ``@dsl.pipeline`` example and the prerequisites of each component, for its README.

``python -m refit.pipelines.compile`` puts them into ``components/<name>/README.md``; a test
compiles every example, so they stay runnable.
"""

from dataclasses import dataclass

STORE = "a refit store (`store_uri`: a folder or `gs://bucket/prefix`)"


@dataclass(frozen=True)
class Example:
    """What a component needs, and a pipeline that uses it."""

    prerequisites: str
    code: str


_IMPORTS = "from kfp import components, dsl\nfrom kfp.dsl import Dataset, Model\n\n"
_LOAD = '{name} = components.load_component_from_file("components/{name}/component.yaml")\n'

EXAMPLES: dict[str, Example] = {
    "start_run": Example(
        f"{STORE} (a refusal is recorded in the model's audit log).",
        """
@dsl.pipeline
def first_task(store_uri: str, deploy_target: str = "local", rollout_plan: dict = {}) -> str:
    start = start_run(
        store_uri=store_uri, model_name="credit", run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        deploy_target=deploy_target, rollout_plan=rollout_plan,
    )
    start.set_caching_options(False)  # names this run
    # its "Output" says whether a canary rollout follows (a plan was given)
    return start.outputs["label"]  # the run label: run_label, or the KFP run id
""",
    ),
    "resolve_champion": Example(
        f"{STORE} with a registered model (before the first promotion it says there is none).",
        """
@dsl.pipeline
def which_champion(store_uri: str, model_name: str) -> int:
    champ = resolve_champion(store_uri=store_uri, model_name=model_name)
    champ.set_caching_options(False)  # the champion changes between runs
    return champ.outputs["champion_version"]
""",
    ),
    "snapshot_data": Example(
        f"A CSV or Parquet file (local, `file://` or `gs://`) and {STORE}.",
        """
@dsl.pipeline
def snapshot(data_uri: str, store_uri: str) -> str:
    snap = snapshot_data(data_uri=data_uri, store_uri=store_uri, model_name="credit")
    snap.set_caching_options(False)  # reads the latest data
    return snap.outputs["sha256"]  # the snapshot's content address
""",
    ),
    "anonymize_data": Example(
        f"A Parquet window and {STORE}; a tokenization key in the task's environment "
        "(`REFIT_TOKEN_KEY`) when the config tokenizes.",
        """
@dsl.pipeline
def anonymize(window_uri: str, store_uri: str) -> str:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    anon = anonymize_data(
        snapshot=window.output, store_uri=store_uri, model_name="credit",
        privacy={"drop": ["email"]},
    )
    return anon.outputs["sha256"]
""",
    ),
    "validate_data": Example(
        "A Parquet window; optionally reference data (Parquet) or a schema (text proto). No store.",
        """
@dsl.pipeline
def check_window(window_uri: str, reference_uri: str) -> bool:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Dataset, reimport=False)
    valid = validate_data(window=window.output, reference=reference.output, label_column="default")
    # "Output" (passed) is a bare boolean: kfp.local branches (dsl.If) on no named output
    return valid.outputs["Output"]  # anomalies in valid.outputs["anomalies"]
""",
    ),
    "detect_drift": Example(
        "A Parquet window and reference data (Parquet) or its refit drift profile; optionally "
        "the model trained on the reference (SHAP explanation). No store.",
        """
@dsl.pipeline
def drift_share(window_uri: str, reference_uri: str, model_uri: str) -> float:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Dataset, reimport=False)
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    drift = detect_drift(
        window=window.output, reference=reference.output, baseline_model=model.output,
        label_column="default",
    )
    return drift.outputs["drift_share"]  # the report is drift.outputs["drift"]
""",
    ),
    "plan_shards": Example(
        "A Parquet window: a file (split by row groups), a folder, or a `gs://` prefix of "
        "Parquet objects (split by object). No store.",
        """
@dsl.pipeline
def how_many_shards(window_uri: str) -> list:
    plan = plan_shards(window_uri=window_uri, shards=10)
    plan.set_caching_options(False)  # reads the data as it is now
    return plan.output  # one JSON item per shard: dsl.ParallelFor(plan.output)
""",
    ),
    "profile_shard": Example(
        "A shard description from `plan_shards` (its Parquet files must be readable). No store.",
        """
@dsl.pipeline
def profile_in_parallel(window_uri: str) -> int:
    plan = plan_shards(window_uri=window_uri, shards=4)
    with dsl.ParallelFor(plan.output, parallelism=4) as shard:
        part = profile_shard(shard=shard)
    merged = merge_profiles(profiles=dsl.Collected(part.outputs["profile"]))
    return merged.outputs["rows"]
""",
    ),
    "merge_profiles": Example(
        "Profiles of the shards of one window (`profile_shard`, collected with `dsl.Collected`).",
        """
@dsl.pipeline
def merged_profile(window_uri: str) -> int:
    plan = plan_shards(window_uri=window_uri, shards=8)
    with dsl.ParallelFor(plan.output, parallelism=8) as shard:
        part = profile_shard(shard=shard)
    merged = merge_profiles(profiles=dsl.Collected(part.outputs["profile"]))
    return merged.outputs["rows"]  # the window's profile: merged.outputs["profile"]
""",
    ),
    "profile_drift": Example(
        "The window's refit drift profile (`merge_profiles`) and the reference's (e.g. the "
        "champion's, `resolve_champion`). No store.",
        """
@dsl.pipeline
def sharded_drift_share(window_uri: str, reference_profile_uri: str) -> float:
    plan = plan_shards(window_uri=window_uri, shards=10)
    with dsl.ParallelFor(plan.output, parallelism=10) as shard:
        part = profile_shard(shard=shard)
    merged = merge_profiles(profiles=dsl.Collected(part.outputs["profile"]))
    reference = dsl.importer(
        artifact_uri=reference_profile_uri, artifact_class=dsl.Artifact, reimport=False
    )
    drift = profile_drift(
        window_profile=merged.outputs["profile"], reference_profile=reference.output,
        label_column="default",
    )
    return drift.outputs["drift_share"]  # the report is drift.outputs["drift"]
""",
    ),
    "decide_retrain": Example(
        f"A window, a drift report (detect_drift) and {STORE}, where the policy's state lives; "
        "optionally the champion (resolve_champion).",
        """
@dsl.pipeline
def decide(window_uri: str, store_uri: str) -> bool:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    drift = detect_drift(window=window.output, label_column="default")
    decision = decide_retrain(
        window=window.output, drift=drift.outputs["drift"], store_uri=store_uri,
        model_name="credit", label_column="default", policy={"drift_share_threshold": 0.3},
    )
    decision.set_caching_options(False)  # keeps state
    return decision.outputs["Output"]  # retrain (a bare boolean, for dsl.If)
""",
    ),
    "select_training_windows": Example(
        f"A Parquet window and {STORE} whose audit log lists the model's earlier windows "
        "(anonymize_data records them); their snapshots are read from the store.",
        """
@dsl.pipeline
def train_on_four_weeks(window_uri: str, store_uri: str) -> Model:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    earlier = select_training_windows(
        window=window.output, store_uri=store_uri, model_name="credit",
        training_window={"windows": 4, "recency_half_life": 2},
    )
    earlier.set_caching_options(False)  # reads the store
    trained = train_model(
        snapshot=window.output, earlier=earlier.outputs["earlier"], label_column="default",
    )
    return trained.outputs["model"]  # its model card lists the windows and their weights
""",
    ),
    "train_model": Example(
        "A Parquet window with the label column. No store: checkpoints go beside the output "
        "model (a retried task resumes); PII marks on the window's metadata (snapshot_data, "
        "anonymize_data) are checked.",
        """
@dsl.pipeline
def train(window_uri: str) -> Model:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    trained = train_model(
        snapshot=window.output, label_column="default", params={"max_depth": 4},
    )
    return trained.outputs["model"]  # sha256, trainer, device, cost in its metadata
""",
    ),
    "evaluate_model": Example(
        "A challenger model folder (refit's safe format) and a Parquet holdout; optionally the "
        "baseline model it would replace. No store.",
        """
@dsl.pipeline
def gate(challenger_uri: str, baseline_uri: str, holdout_uri: str) -> bool:
    challenger = dsl.importer(artifact_uri=challenger_uri, artifact_class=Model, reimport=False)
    baseline = dsl.importer(artifact_uri=baseline_uri, artifact_class=Model, reimport=False)
    holdout = dsl.importer(artifact_uri=holdout_uri, artifact_class=Dataset, reimport=False)
    evaluation = evaluate_model(
        model=challenger.output, holdout=holdout.output, baseline_model=baseline.output,
        gate={"thresholds": {"accuracy": 0.7}, "max_degradation": 0.03},
    )
    return evaluation.outputs["Output"]  # blessed; the verdict is evaluation.outputs["blessing"]
""",
    ),
    "record_results": Example(
        f"{STORE}; the outputs of validate_data, detect_drift, train_model or evaluate_model "
        "to record.",
        """
@dsl.pipeline
def record(window_uri: str, store_uri: str) -> list:
    window = dsl.importer(artifact_uri=window_uri, artifact_class=Dataset, reimport=False)
    valid = validate_data(window=window.output, label_column="default")
    rec = record_results(
        store_uri=store_uri, model_name="credit", validation=valid.outputs["anomalies"],
    )
    rec.set_caching_options(False)  # appends to the audit log
    return rec.outputs["events"]
""",
    ),
    "register_model": Example(
        f"A blessed model, its evaluation (evaluate_model) and {STORE}.",
        """
@dsl.pipeline
def register(model_uri: str, evaluation_uri: str, store_uri: str, snapshot_sha256: str) -> int:
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    evaluation = dsl.importer(artifact_uri=evaluation_uri, artifact_class=dsl.Artifact)
    registered = register_model(
        model=model.output, evaluation=evaluation.output, store_uri=store_uri,
        model_name="credit", snapshot_sha256=snapshot_sha256,
        run_label=dsl.PIPELINE_JOB_ID_PLACEHOLDER,  # the run's label: here the KFP run id
    )
    return registered.outputs["version"]
""",
    ),
    "promote_model": Example(
        f"{STORE} with a registered version.",
        """
@dsl.pipeline
def promote(store_uri: str, version: int) -> int:
    promoted = promote_model(store_uri=store_uri, model_name="credit", version=version)
    return promoted.outputs["live_version"]
""",
    ),
    "canary_rollout": Example(
        f"{STORE} with a registered version, a deployment target (local or KServe) and a "
        "rollout plan; Prometheus for the plan's checks.",
        """
@dsl.pipeline
def canary(store_uri: str, version: int, plan: dict) -> int:
    rollout = canary_rollout(
        store_uri=store_uri, model_name="credit", version=version, plan=plan,
    )
    return rollout.outputs["live_version"]
""",
    ),
    "release_record": Example(
        f"{STORE} whose audit log holds the run's records; used as the exit handler.",
        """
@dsl.pipeline
def with_a_release_record(store_uri: str, run_label: str = ""):
    # An exit handler only: it reads KFP's final status of the tasks it wraps.
    record = release_record(
        store_uri=store_uri, model_name="credit", run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        run_label=run_label,
    )
    record.set_caching_options(False)
    with dsl.ExitHandler(record):
        start_run(
            store_uri=store_uri, model_name="credit", run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_label=run_label,
        ).set_caching_options(False)
""",
    ),
}


def example_code(name: str) -> str:
    """The example of component ``name``, with the lines that load the components it uses."""
    code = EXAMPLES[name].code
    used = [n for n in EXAMPLES if f"{n}(" in code]
    return _IMPORTS + "".join(_LOAD.format(name=n) for n in used) + code
