"""refit's KFP components, one folder each; import them from here or load ``component.yaml``."""

import os

__all__ = [
    "anonymize_data",
    "canary_rollout",
    "decide_retrain",
    "detect_drift",
    "evaluate_model",
    "merge_profiles",
    "plan_shards",
    "profile_drift",
    "profile_shard",
    "promote_model",
    "record_results",
    "register_model",
    "release_record",
    "resolve_champion",
    "select_training_windows",
    "snapshot_data",
    "start_run",
    "train_model",
    "validate_data",
]

# Inside a running KFP task (``_KFP_RUNTIME``) kfp.dsl has no ``component`` decorator; a task
# imports only the artifact types (refit.components.types), not the components.
if os.environ.get("_KFP_RUNTIME") != "true":
    from refit.components.anonymize_data.component import anonymize_data
    from refit.components.canary_rollout.component import canary_rollout
    from refit.components.decide_retrain.component import decide_retrain
    from refit.components.detect_drift.component import detect_drift
    from refit.components.evaluate_model.component import evaluate_model
    from refit.components.merge_profiles.component import merge_profiles
    from refit.components.plan_shards.component import plan_shards
    from refit.components.profile_drift.component import profile_drift
    from refit.components.profile_shard.component import profile_shard
    from refit.components.promote_model.component import promote_model
    from refit.components.record_results.component import record_results
    from refit.components.register_model.component import register_model
    from refit.components.release_record.component import release_record
    from refit.components.resolve_champion.component import resolve_champion
    from refit.components.select_training_windows.component import select_training_windows
    from refit.components.snapshot_data.component import snapshot_data
    from refit.components.start_run.component import start_run
    from refit.components.train_model.component import train_model
    from refit.components.validate_data.component import validate_data
