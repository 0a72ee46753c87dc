"""Steps that change what is live: register a version, promote it or roll it out as a canary.

A version held for human approval (status ``awaiting_approval``, see
`refit.governance.approval`) is never promoted or rolled out by these steps: they leave the
champion as it is and say so; ``refit registry approve`` releases it later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from refit.audit import AuditEvent
from refit.deploy import available_targets, get_target
from refit.deploy.abtest import feedback_analyzer
from refit.deploy.analyzers import prometheus_analyzer, shadow_prometheus_analyzer
from refit.deploy.local_server_target import LocalCanaryTarget
from refit.deploy.plan import RolloutPlan
from refit.deploy.rollout import run_canary
from refit.deploy.rollout_types import RolloutResult
from refit.errors import DeployError, SchemaError
from refit.governance.approval import AWAITING, ApprovalPolicy, expire_stale, request_approval
from refit.registry import ANY, ModelRegistry, open_registry
from refit.steps.common import dict_param, scalar_metrics
from refit.training.artifacts import METADATA_FILE

log = logging.getLogger(__name__)

#: Longest run label accepted (it names the run in the audit log and in file names).
MAX_RUN_LABEL = 200


def run_label_for(run_label: str, run_id: str) -> str:
    """Return the label a run's audit records carry: ``run_label``, else the KFP run's id.

    A run started without a label (a cluster run from a notebook, every run of a recurring
    run, whose parameters are fixed) is labelled by its own KFP run id, so each run gets its
    own release record.

    Args:
        run_label: The label the run was given; empty: none.
        run_id: The KFP run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` in the pipeline).

    Raises:
        DeployError: Neither is given, a placeholder was not filled in, or the label is too
            long or has a line break.
    """
    label = (run_label or "").strip() or (run_id or "").strip()
    if not label:
        raise DeployError("run_label is empty and no KFP run id was given: the run has no label")
    if label.startswith("{{$"):
        raise DeployError(
            f"run label {label!r} is a KFP placeholder that was not filled in; pass run_label"
        )
    if len(label) > MAX_RUN_LABEL or any(c in label for c in "\r\n\t\0"):
        raise DeployError(
            f"run_label {label[:40]!r}... must be one line of at most {MAX_RUN_LABEL} characters"
        )
    return label


def _mapping(value: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    try:
        return dict_param(value, name)
    except SchemaError as exc:
        raise DeployError(str(exc)) from None


def check_deploy(
    registry: ModelRegistry,
    target: str,
    rollout_plan: Mapping[str, Any] | None = None,
    deploy_options: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a deployment target, rollout plan and options that cannot work together.

    The retraining pipeline's first task calls this, so a run that could never deploy fails
    before it snapshots, trains, evaluates and registers anything.

    Without a plan the version is promoted directly, through a registered target (``local``);
    ``kserve`` is only ever rolled out as a canary and needs a plan. With a plan the target is
    ``local`` or ``kserve``, the plan must be valid and the options must be ones the target
    knows (``kserve`` needs ``namespace``).

    Args:
        registry: The model's registry (nothing is read from it: its name is the default
            InferenceService name).
        target: The pipeline's ``deploy_target``.
        rollout_plan: The pipeline's ``rollout_plan`` (a dict); empty or None: direct
            promotion.
        deploy_options: The pipeline's ``deploy_options`` (a dict).

    Raises:
        DeployError: What cannot work, naming the pipeline parameter.
    """
    options = _mapping(deploy_options, "deploy_options")
    plan = _mapping(rollout_plan, "rollout_plan")
    if not plan:
        if target == "kserve":
            raise DeployError(
                "deploy_target 'kserve' needs a rollout plan (rollout_plan): KServe is "
                "rolled out as a canary; without a plan the run would train, evaluate and "
                "register, then fail at promotion"
            )
        if target not in available_targets():
            raise DeployError(
                f"deploy_target {target!r} is not a known target; without a rollout plan use "
                f"one of {available_targets()}, with one 'local' or 'kserve'"
            )
        if options:
            raise DeployError(
                f"deploy_options {sorted(options)} are read only by a canary rollout; give "
                "rollout_plan as well, or leave the options {}"
            )
        return
    try:
        parsed = RolloutPlan.from_dict(plan)
    except DeployError as exc:
        raise DeployError(f"rollout_plan: {exc}") from None
    if target not in ("local", "kserve"):
        raise DeployError(
            f"deploy_target {target!r} cannot run a canary rollout; use 'local' or 'kserve'"
        )
    if target != "local" and (parsed.shadow is not None or parsed.ab_test is not None):
        raise DeployError(
            "rollout_plan: the shadow and ab_test stages run on deploy_target 'local' (refit's "
            "model server); on KServe mirror with manifests/snippets/shadow-mirror instead"
        )
    try:
        canary_target(target, registry, options)
    except DeployError as exc:
        raise DeployError(f"deploy_options: {exc}") from None


def start_run(
    store_uri: str,
    model_name: str,
    run_label: str,
    run_id: str,
    *,
    deploy_target: str = "local",
    rollout_plan: Mapping[str, Any] | None = None,
    deploy_options: Mapping[str, Any] | None = None,
) -> str:
    """Pipeline step: name the run and refuse a deployment that cannot work, before any work.

    Args:
        store_uri: Root of refit's store (a refusal is recorded in the model's audit log).
        model_name: The model.
        run_label: The label the run was given; empty: the KFP run id (see `run_label_for`).
        run_id: The KFP run's id.
        deploy_target: The pipeline's ``deploy_target``.
        rollout_plan: The pipeline's ``rollout_plan`` (a dict; empty: direct promotion).
        deploy_options: The pipeline's ``deploy_options`` (a dict).

    Returns:
        The run's label.

    Raises:
        DeployError: The deployment settings cannot work (recorded as a ``run_refused`` audit
            record first, so the run's release record says why), or the run has no label.
    """
    label = run_label_for(run_label, run_id)
    registry = open_registry(store_uri, model_name)
    try:
        check_deploy(registry, deploy_target, rollout_plan, deploy_options)
    except DeployError as exc:
        registry.audit.append(
            AuditEvent.RUN_REFUSED, {"run_label": label, "task": "start-run", "reason": str(exc)}
        )
        raise
    return label


def _training_data(model_dir: str) -> dict[str, Any] | None:
    """What the model trained on (windows, holdout, warm start), from its card, for lineage.

    The registry registers any folder of files (it checks their digests itself); a folder
    whose ``model.json`` has no card, or is not a refit model's, has nothing to add here.
    """
    try:
        metadata = json.loads((Path(model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    card = metadata.get("card") if isinstance(metadata, dict) else None
    found = card.get("training_data") if isinstance(card, dict) else None
    return found if isinstance(found, dict) else None


def register_model(
    model_dir: str,
    store_uri: str,
    model_name: str,
    snapshot_sha256: str,
    metrics: dict[str, Any],
    *,
    run_label: str = "",
    parent_version: Any = ANY,
    approval: ApprovalPolicy | None = None,
) -> int:
    """Register a blessed challenger as a new immutable version.

    With an approval policy that requires it, the version is then held for approval (status
    ``awaiting_approval``); expired requests of earlier versions are closed first.

    Args:
        model_dir: The challenger's model folder.
        store_uri: Root of refit's store.
        model_name: Model to register under.
        snapshot_sha256: Snapshot the challenger was trained on (its lineage and drift reference).
        metrics: The challenger's evaluation metrics.
        run_label: Label of the pipeline run that produced it, recorded with the version and
            in its registration record.
        parent_version: The champion the challenger was evaluated against (None: there was
            none); `ANY` (default) takes the current champion. Promotion later requires the
            champion to still be this version.
        approval: Human approval policy; None or not ``required``: no hold.

    Returns:
        The new version number.
    """
    registry = open_registry(store_uri, model_name)
    if parent_version is ANY:
        champion = registry.champion()
        parent_version = None if champion is None else champion.version
    training_data = _training_data(model_dir)
    version = registry.register(
        model_dir,
        metrics=scalar_metrics(metrics),
        snapshot_sha256=snapshot_sha256,
        parent_version=parent_version,
        run_label=run_label,
        **({"extra": {"training_data": training_data}} if training_data else {}),
    )
    if approval is not None and approval.required:
        expire_stale(registry)
        request_approval(
            registry,
            version.version,
            timeout_hours=approval.timeout_hours,
            approvers=approval.approvers,
            run_label=run_label,
        )
    return version.version


def _held_for_approval(registry: ModelRegistry, version: int) -> bool:
    if registry.get(version).status != AWAITING:
        return False
    log.warning(
        "model %r version %d awaits approval: nothing is promoted now; release it with "
        "`refit registry --store %s --model %s approve %d --by NAME`",
        registry.model_name,
        version,
        registry.store_uri,
        registry.model_name,
        version,
    )
    return True


def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    *,
    target: str = "local",
    reason: str = "",
    run_label: str = "",
) -> int:
    """Promote a registered version through a deployment target.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to promote.
        version: Registered version to make live.
        target: Name of a registered deployment target.
        reason: Why (recorded in the audit log).
        run_label: Label of this pipeline run in the audit log.

    The promotion is a compare-and-swap on the champion the version was evaluated against
    (its ``parent_version``): if another run promoted meanwhile, this one raises ConflictError
    rather than replace a champion it was never compared with.

    Returns:
        The live version after promotion (the unchanged champion, or 0 when there is none, when
        the version awaits approval).

    Raises:
        ConflictError: The champion moved since this version was evaluated.
    """
    registry = open_registry(store_uri, model_name)
    if _held_for_approval(registry, version):
        return registry.get_alias("champion") or 0
    deploy = get_target(target, registry)
    expected = registry.get(version).parent_version
    rollout = deploy.promote(
        version,
        reason=reason or f"blessed in run {run_label}",
        audit={"run_label": run_label},
        expected_champion=expected,
    )
    return int(rollout.version)


def canary_target(name: str, registry: ModelRegistry, options: dict[str, Any]) -> Any:
    """Build the canary target named ``name`` with its options.

    Args:
        name: ``"local"`` (options: ``server_url``, ``wait_seconds``) or ``"kserve"`` (options:
            ``namespace`` (required), ``service`` (default: the model's name),
            ``allowed_namespaces`` (default: ``$REFIT_ALLOWED_NAMESPACES``, comma-separated;
            none allowed when both are unset), ``runtime``, ``protocol_version``,
            ``service_account``, ``min_replicas``, ``timeout_seconds``, ``poll_seconds``).
        registry: The model's registry.
        options: The target's options (from the pipeline's ``deploy_options``).

    Raises:
        DeployError: Unknown target, or unknown or invalid options.
    """
    if name == "local":
        unknown = sorted(set(options) - {"server_url", "wait_seconds"})
        if unknown:
            raise DeployError(
                f"deploy options {unknown} are not known to the local target; "
                "allowed: ['server_url', 'wait_seconds']"
            )
        return LocalCanaryTarget(
            registry,
            server_url=str(options.get("server_url", "")),
            wait_seconds=float(options.get("wait_seconds", 15.0)),
        )
    if name == "kserve":
        return _kserve_target(registry, options)
    raise DeployError(f"unknown canary target {name!r}; known: ['kserve', 'local']")


def canary_rollout(
    store_uri: str,
    model_name: str,
    version: int,
    plan: RolloutPlan | Mapping[str, Any],
    *,
    target: str = "local",
    options: Mapping[str, Any] | None = None,
    reason: str = "",
    run_label: str = "",
    check_parent: bool = True,
) -> RolloutResult | None:
    """Roll a registered version out as a canary; promote it or roll it back.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to roll out.
        version: Registered version.
        plan: The rollout plan (a `refit.deploy.plan.RolloutPlan` or its dict).
        target: ``"local"`` or ``"kserve"``.
        options: The target's options (a dict).
        reason: Why (recorded with the promotion).
        run_label: Label of this run in the audit log.
        check_parent: Refuse unless the champion is still the one the version was evaluated
            against (its ``parent_version``), as a pipeline run must; a person rolling out a
            version by hand (``refit rollout``) decides that themselves.

    Returns:
        The rollout's result, or None when the version awaits approval (nothing moved).

    Raises:
        DeployError: Bad plan or options, or the target refuses the version; nothing moved.
        ConflictError: The champion moved since this version was evaluated.
    """
    registry = open_registry(store_uri, model_name)
    if not isinstance(plan, RolloutPlan):
        plan = RolloutPlan.from_dict(_mapping(plan, "plan"))
    options = _mapping(options, "options")
    if _held_for_approval(registry, version):
        return None
    canary = canary_target(target, registry, options)
    analyze = prometheus_analyzer(
        plan, model=model_name, namespace=str(options.get("namespace", ""))
    )
    return run_canary(
        registry,
        version,
        canary,
        plan,
        analyze,
        reason=reason or f"blessed in run {run_label}",
        run_label=run_label,
        expected_champion=registry.get(version).parent_version if check_parent else ANY,
        shadow_analyze=None
        if plan.shadow is None
        else shadow_prometheus_analyzer(plan, model=model_name),
        ab_analyze=None if plan.ab_test is None else feedback_analyzer(plan.ab_test),
    )


_KSERVE_OPTIONS = (
    "namespace",
    "service",
    "allowed_namespaces",
    "runtime",
    "protocol_version",
    "service_account",
    "min_replicas",
    "timeout_seconds",
    "poll_seconds",
)


def _kserve_target(registry: ModelRegistry, options: dict[str, Any]) -> Any:
    import os

    from refit.deploy.kserve import KServeTarget

    unknown = sorted(set(options) - set(_KSERVE_OPTIONS))
    if unknown:
        raise DeployError(
            f"deploy options {unknown} are not known to the kserve target; "
            f"allowed: {list(_KSERVE_OPTIONS)}"
        )
    if not options.get("namespace"):
        raise DeployError("deploy option 'namespace' is required by the kserve target")
    allowed = options.get("allowed_namespaces")
    if allowed is None:
        env = os.environ.get("REFIT_ALLOWED_NAMESPACES", "")
        allowed = [n.strip() for n in env.split(",") if n.strip()]
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise DeployError(
            f"deploy option 'allowed_namespaces' must be a list of names: {allowed!r}"
        )
    kw: dict[str, Any] = {
        k: options[k]
        for k in ("runtime", "service_account", "min_replicas", "timeout_seconds", "poll_seconds")
        if k in options
    }
    if "protocol_version" in options:
        kw["protocol_version"] = options["protocol_version"]
    return KServeTarget(
        str(options.get("service") or registry.model_name).lower().replace("_", "-"),
        str(options["namespace"]),
        allowed_namespaces=allowed,
        **kw,
    )
