"""One function per pipeline step: what each KFP component does, importable and testable.

Components in ``components/`` are thin wrappers: they pass their artifact paths and parameters to
the function of the same name here and copy the returned values into KFP outputs. Everything a
step finds (rows, anomalies, drift share, decisions, versions) also goes to the model's
append-only audit log, tagged with ``run_label``, so a timeline can be read back from the store.
The pure steps (validate, drift, evaluate) take no store: they return their summary
(``audit``) and a stateful step records it (``decide_retrain``, ``record_results``).

One module per area (data, privacy, resolve, drift, watch, decide, train, evaluate, release);
this package re-exports them.
"""

from refit.governance.record import write_release_record
from refit.steps.common import scalar_metrics, utc_now
from refit.steps.data import (
    RANGE_TOLERANCE,
    SnapshotOutput,
    ValidationOutput,
    snapshot_data,
    validate_data,
)
from refit.steps.decide import (
    POLICY_STATE_KEY,
    DecisionOutput,
    decide_retrain,
    decision_markdown,
)
from refit.steps.drift import DriftOutput, detect_drift
from refit.steps.evaluate import EvaluationOutput, evaluate_model
from refit.steps.privacy import AnonymizeOutput, anonymize_data
from refit.steps.release import (
    canary_rollout,
    canary_target,
    check_deploy,
    promote_model,
    register_model,
    run_label_for,
    start_run,
)
from refit.steps.resolve import ChampionOutput, record_results, resolve_champion
from refit.steps.train import (
    AUTO_CHECKPOINTS,
    TrainOutput,
    checkpoint_location,
    split_holdout,
    train_model,
)
from refit.steps.train_distributed import train_model_distributed

__all__ = [
    "AUTO_CHECKPOINTS",
    "POLICY_STATE_KEY",
    "RANGE_TOLERANCE",
    "AnonymizeOutput",
    "ChampionOutput",
    "DecisionOutput",
    "DriftOutput",
    "EvaluationOutput",
    "SnapshotOutput",
    "TrainOutput",
    "ValidationOutput",
    "anonymize_data",
    "canary_rollout",
    "canary_target",
    "check_deploy",
    "checkpoint_location",
    "decide_retrain",
    "decision_markdown",
    "detect_drift",
    "evaluate_model",
    "promote_model",
    "record_results",
    "register_model",
    "run_label_for",
    "resolve_champion",
    "scalar_metrics",
    "snapshot_data",
    "split_holdout",
    "start_run",
    "train_model",
    "train_model_distributed",
    "utc_now",
    "validate_data",
    "write_release_record",
]
