"""The names of the events refit writes to a model's audit log, in one place.

Writers append ``AuditEvent.X`` and readers (run history, release record, metrics exporter,
timelines, lineage) compare against the members and the groups below instead of keeping their own
lists. `AuditEvent` is a `StrEnum`: a member equals its name as a string, so the JSON in the log is
unchanged and records written with the bare strings read the same.

Which part of refit writes each event (the ``payload`` keys are the writer's):

========================  ==========================================================
``snapshot``              the data snapshot step (rows, sha256, source)
``anonymization``         the anonymization step (`refit.privacy`)
``validation``            data validation (passed, anomalies)
``drift``                 drift detection (drift_share, drifted)
``decision``              the retrain decision (retrain, reasons)
``training``              training (trainer, params, holdout)
``evaluation``            evaluation and the promotion gate (blessed, reasons, checks)
``registration``          the model registry, for every new version
``approval_requested``    the approval gate holds a version for a person
``approval``              a person approved it
``rejection``             a person rejected it, or the request timed out
``canary_started``        a canary rollout began
``canary_step``           it moved traffic to the next percentage
``canary_check``          one analysis of a step (or of the shadow or A/B stage)
``ab_test``               the A/B stage's result: effect, interval, units, decision
``promotion``             a version became champion
``rollback``              the previous champion was restored
``trigger_decision``      the trigger service decided whether to launch a run
``run_refused``           the pipeline's first task refused the run (reason)
``performance_realised``  labels landed for a window: realised against estimated
                          performance (`refit.monitoring.labels`)
``registry_update``       any other change of aliases, statuses or policy state
========================  ==========================================================

Every record that changes the registry's mutable state (promotion, rollback, approval, the
retrain decision's policy state, ``registry_update``...) also carries a ``txn`` field: the change
itself, bound to the state object (`refit.registry.transactions`, `refit.audit.txn`).
"""

from enum import StrEnum
from typing import Final


class AuditEvent(StrEnum):
    """Every event name written to a model's audit log."""

    SNAPSHOT = "snapshot"
    ANONYMIZATION = "anonymization"
    VALIDATION = "validation"
    DRIFT = "drift"
    DECISION = "decision"
    TRAINING = "training"
    EVALUATION = "evaluation"
    REGISTRATION = "registration"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL = "approval"
    REJECTION = "rejection"
    CANARY_STARTED = "canary_started"
    CANARY_STEP = "canary_step"
    CANARY_CHECK = "canary_check"
    AB_TEST = "ab_test"
    PROMOTION = "promotion"
    ROLLBACK = "rollback"
    TRIGGER_DECISION = "trigger_decision"
    RUN_REFUSED = "run_refused"
    PERFORMANCE_REALISED = "performance_realised"
    REGISTRY_UPDATE = "registry_update"
    AUDIT_REPAIR = "audit_repair"


#: Written by the pipeline's steps, once per run (labelled with the run's ``run_label``).
RUN_EVENTS: Final = frozenset(
    {
        AuditEvent.SNAPSHOT,
        AuditEvent.ANONYMIZATION,
        AuditEvent.VALIDATION,
        AuditEvent.DRIFT,
        AuditEvent.DECISION,
        AuditEvent.TRAINING,
        AuditEvent.EVALUATION,
        AuditEvent.REGISTRATION,
        AuditEvent.RUN_REFUSED,
    }
)
#: The human approval of a version.
APPROVAL_EVENTS: Final = frozenset(
    {AuditEvent.APPROVAL_REQUESTED, AuditEvent.APPROVAL, AuditEvent.REJECTION}
)
#: The steps of a canary rollout.
CANARY_EVENTS: Final = frozenset(
    {
        AuditEvent.CANARY_STARTED,
        AuditEvent.CANARY_STEP,
        AuditEvent.CANARY_CHECK,
        AuditEvent.AB_TEST,
    }
)
#: Moves of the champion alias (the payload names the live ``version`` and the ``previous`` one).
LIVE_EVENTS: Final = frozenset({AuditEvent.PROMOTION, AuditEvent.ROLLBACK})
#: Events that concern one registered version (they carry its ``version``).
VERSION_EVENTS: Final = APPROVAL_EVENTS | CANARY_EVENTS | LIVE_EVENTS
#: Written outside a pipeline run: by the trigger service, or a bare registry change (a status or
#: alias set by hand, the local canary's traffic split), or the note of a torn audit line cut off,
#: or `refit labels join` once a window's labels are in.
SERVICE_EVENTS: Final = frozenset(
    {
        AuditEvent.TRIGGER_DECISION,
        AuditEvent.REGISTRY_UPDATE,
        AuditEvent.AUDIT_REPAIR,
        AuditEvent.PERFORMANCE_REALISED,
    }
)
