"""Human approval of a blessed challenger before it is released to deployment.

A model whose `ApprovalPolicy` says ``required`` does not go live when the gate blesses it: the
pipeline calls `request_approval`, and the version waits in the registry with status
``awaiting_approval``. A person then calls `approve` (``refit registry approve``, or the trigger
service's ``POST /approvals/{model}/{version}/approve``) and `release_approved` promotes it, or
calls `reject`, which closes it for good. A request not decided within ``timeout_hours`` can no
longer be approved, and `expire_stale` turns it into ``rejected`` ("approval timed out after
N h"). Every step appends an audit record with who, why and when: ``approval_requested``,
``approval``, ``rejection``.

Storage (only `ModelRegistry`'s public API, so local and ``gs://`` registries behave alike):

- the version's status: ``awaiting_approval`` -> ``approved`` | ``rejected``;
- the request record in the registry's policy state under ``approval-v{N}`` (`ApprovalRequest`);
- an alias ``approval-pending-{N}`` -> N while the request is open. Deciding a request removes the
  alias in a compare-and-swap (`ModelRegistry.update_aliases` with ``expected``) that also writes
  the new status and the request record (one transaction with its audit record,
  `refit.registry.core`), so of two decisions racing on one request (two approvals, an approval
  and a rejection, an approval and the timeout) exactly one wins, on a file lock locally and on the
  object generation on GCS; the loser gets RegistryError naming the status the winner set.
  `pending` lists the open requests from these aliases (one read).

Over 600 lines because requesting, deciding, expiring and releasing share this storage protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from refit.audit.events import AuditEvent
from refit.errors import ConflictError, PolicyError, RegistryError
from refit.registry import ModelRegistry

AWAITING: Final = "awaiting_approval"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
#: The name recorded as ``by`` when a request times out.
TIMEOUT_ACTOR: Final = "refit"
PENDING_ALIAS_PREFIX: Final = "approval-pending-"
_MAX_NAME = 200


class NotAnApproverError(RegistryError):
    """The person deciding is not on the request's approvers allow-list."""


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class ApprovalPolicy:
    """Whether a blessed challenger needs a person's approval before release.

    Attributes:
        required: Hold blessed challengers for approval (False: release them at once).
        timeout_hours: Hours an approval request stays open (> 0); then it is rejected.
        approvers: Who may approve or reject (exact names); empty: anyone who can reach the
            registry or the authenticated endpoint.
    """

    required: bool = False
    timeout_hours: float = 72.0
    approvers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            PolicyError: Naming the field and what is wrong with it.
        """
        if not isinstance(self.required, bool):
            raise PolicyError(
                f"approval policy 'required' must be true or false, got {self.required!r}"
            )
        try:
            hours = _check_timeout(self.timeout_hours)
        except RegistryError as exc:
            raise PolicyError(f"approval policy {exc}") from None
        object.__setattr__(self, "timeout_hours", hours)
        if isinstance(self.approvers, str) or not isinstance(self.approvers, Sequence):
            raise PolicyError(
                f"approval policy 'approvers' must be a list of names, got {self.approvers!r}"
            )
        try:
            names = [_check_name(a, "approvers entry") for a in self.approvers]
        except RegistryError as exc:
            raise PolicyError(f"approval policy {exc}") from None
        object.__setattr__(self, "approvers", names)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the format `from_dict` reads)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalPolicy:
        """Build a policy from a dict; missing fields take their defaults.

        Raises:
            PolicyError: Not a mapping, unknown keys, or a value of the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"approval policy must be a mapping, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = [str(k) for k in data if k not in known]
        if unknown:
            raise PolicyError(
                f"approval policy has unknown field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(known)}"
            )
        return cls(**dict(data))


# --------------------------------------------------------------------------- request record


@dataclass(frozen=True)
class ApprovalRequest:
    """One version's approval request and, once decided, its decision.

    Attributes:
        model: The registry's model name.
        version: The version waiting for (or decided by) a person.
        status: "awaiting_approval", "approved" or "rejected".
        requested_at: When approval was requested (UTC, ISO 8601).
        expires_at: When the request stops being approvable (UTC, ISO 8601).
        timeout_hours: The timeout that gave ``expires_at``.
        run_label: The pipeline run that asked for approval.
        parent_version: The champion the version was evaluated against (None: first model).
        approvers: The allow-list in force for this request (empty: anyone).
        decided_by: Who approved or rejected it (``"refit"`` for a timeout); None while open.
        decided_at: When it was decided (UTC, ISO 8601); None while open.
        reason: Why it was approved or rejected.
        timed_out: Whether it was rejected because nobody decided in time.
    """

    model: str
    version: int
    status: str
    requested_at: str
    expires_at: str
    timeout_hours: float
    run_label: str = ""
    parent_version: int | None = None
    approvers: list[str] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str = ""
    timed_out: bool = False

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the request is past its ``expires_at`` at ``now`` (default: the clock)."""
        return _now(now) >= datetime.fromisoformat(self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        """Build a request from `to_dict` output (unknown keys ignored)."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise RegistryError(f"now must be a datetime, got {now!r}")
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _check_timeout(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise RegistryError(f"timeout_hours must be a number of hours > 0, got {value!r}")
    return float(value)


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{what} must be a non-empty name, got {value!r}")
    name = value.strip()
    if len(name) > _MAX_NAME:
        raise RegistryError(f"{what} {name[:40]!r}... is longer than {_MAX_NAME} characters")
    if not name.isprintable():
        raise RegistryError(f"{what} {name!r} must not hold control characters")
    return name


def _hours(hours: float) -> str:
    return f"{hours:g} h"


def state_key(version: int) -> str:
    """The registry state key of ``version``'s approval request."""
    return f"approval-v{version}"


def pending_alias(version: int) -> str:
    """The alias that marks ``version``'s approval request as open."""
    return f"{PENDING_ALIAS_PREFIX}{version}"


def _what(registry: ModelRegistry, version: int) -> str:
    return f"model {registry.model_name!r} version {version}"


def get_request(registry: ModelRegistry, version: int) -> ApprovalRequest | None:
    """Return ``version``'s approval request (open or decided), or None when it never had one.

    Raises:
        RegistryError: ``version`` is not a positive integer, or the record is not valid JSON.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"version must be a positive integer, got {version!r}")
    data = registry.read_state(state_key(version))
    return None if data is None else ApprovalRequest.from_dict(data)


# --------------------------------------------------------------------------- request


def request_approval(
    registry: ModelRegistry,
    version: int,
    *,
    timeout_hours: float,
    run_label: str,
    approvers: Sequence[str] | None = None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Hold a registered version for a person's approval.

    The version's status becomes ``awaiting_approval``; its request record (requested and expiry
    times, the run, the allow-list) is stored in the registry's state, and an
    ``approval_requested`` audit record is appended.

    Args:
        registry: The model's registry (local or ``gs://``).
        version: A version with status "registered" (a blessed challenger not yet released).
        timeout_hours: Hours the request stays open (> 0).
        run_label: The pipeline run asking (recorded in the audit log).
        approvers: Who may decide (`ApprovalPolicy.approvers`); None or empty: anyone.
        now: The request time (default: the clock).

    Returns:
        The open request.

    Raises:
        RegistryError: Unknown version, a status other than "registered" (already waiting,
            decided, or live), or an invalid timeout or approver name.
    """
    hours = _check_timeout(timeout_hours)
    allowed = [_check_name(a, "approvers entry") for a in (approvers or [])]
    if not isinstance(run_label, str):
        raise RegistryError(f"run_label must be a string, got {run_label!r}")
    mv = registry.get(version)
    if mv.status != "registered":
        raise RegistryError(
            f"cannot request approval for {_what(registry, version)}: its status is "
            f"{mv.status!r}, not 'registered'"
        )
    at = _now(now)
    request = ApprovalRequest(
        model=registry.model_name,
        version=version,
        status=AWAITING,
        requested_at=at.isoformat(),
        expires_at=(at + timedelta(hours=hours)).isoformat(),
        timeout_hours=hours,
        run_label=run_label,
        parent_version=mv.parent_version,
        approvers=allowed,
    )
    try:
        registry.update_aliases(
            {pending_alias(version): version},
            expected={pending_alias(version): None},
            statuses={version: AWAITING},
            state={state_key(version): request.to_dict()},
            event=AuditEvent.APPROVAL_REQUESTED,
            payload={
                "model": registry.model_name,
                "version": version,
                "requested_at": request.requested_at,
                "expires_at": request.expires_at,
                "timeout_hours": hours,
                "run_label": run_label,
                "parent_version": mv.parent_version,
                "approvers": allowed,
            },
        )
    except ConflictError:
        raise RegistryError(
            f"cannot request approval for {_what(registry, version)}: another request for it "
            "was opened concurrently"
        ) from None
    return request


# --------------------------------------------------------------------------- decisions


def _open_request(
    registry: ModelRegistry, version: int, action: str, at: datetime
) -> ApprovalRequest:
    """Return ``version``'s open request, or raise why ``action`` cannot decide it."""
    mv = registry.get(version)
    request = get_request(registry, version)
    if mv.status != AWAITING:
        detail = f"its status is {mv.status!r}, not {AWAITING!r}"
        if request is not None and request.decided_by is not None:
            detail += f" ({request.status} by {request.decided_by} at {request.decided_at}"
            detail += f": {request.reason})" if request.reason else ")"
        raise RegistryError(f"cannot {action} {_what(registry, version)}: {detail}")
    if request is None or request.status != AWAITING:
        raise RegistryError(
            f"cannot {action} {_what(registry, version)}: its status is {AWAITING!r} but it has "
            f"no open approval request (state {state_key(version)!r}); request approval again"
        )
    if request.expired(at):
        raise RegistryError(
            f"cannot {action} {_what(registry, version)}: its approval request expired at "
            f"{request.expires_at} ({_hours(request.timeout_hours)} after {request.requested_at}); "
            "it can no longer be approved or rejected, and expire_stale rejects it as timed out"
        )
    return request


def _decide(
    registry: ModelRegistry,
    version: int,
    *,
    decision: str,
    by: str,
    reason: str,
    at: datetime,
    request: ApprovalRequest,
    timed_out: bool = False,
    audit: Mapping[str, Any] | None = None,
) -> ApprovalRequest:
    """Close an open request with one compare-and-swap; append the audit record."""
    action = "approve" if decision == APPROVED else "reject"
    decided = ApprovalRequest.from_dict(
        {
            **request.to_dict(),
            "status": decision,
            "decided_by": by,
            "decided_at": at.isoformat(),
            "reason": reason,
            "timed_out": timed_out,
        }
    )
    try:
        registry.update_aliases(
            {pending_alias(version): None},
            expected={pending_alias(version): version},
            statuses={version: decision},
            state={state_key(version): decided.to_dict()},
            event=AuditEvent.APPROVAL if decision == APPROVED else AuditEvent.REJECTION,
            payload={
                "model": registry.model_name,
                "version": version,
                "by": by,
                "reason": reason,
                "at": decided.decided_at,
                "requested_at": request.requested_at,
                "expires_at": request.expires_at,
                "run_label": request.run_label,
                "timed_out": timed_out,
                **(audit or {}),
            },
        )
    except ConflictError:
        status = registry.get(version).status
        raise RegistryError(
            f"cannot {action} {_what(registry, version)}: it was decided concurrently "
            f"(its status is now {status!r})"
        ) from None
    return decided


def _decide_open(
    registry: ModelRegistry,
    version: int,
    decision: str,
    action: str,
    by: str,
    reason: str,
    now: datetime | None,
    audit: Mapping[str, Any] | None,
) -> ApprovalRequest:
    """Decide an open request as ``by``, who must be on its approvers list when it has one."""
    at = _now(now)
    request = _open_request(registry, version, action, at)
    if request.approvers and by not in request.approvers:
        raise NotAnApproverError(
            f"cannot {action} {_what(registry, request.version)}: {by!r} is not one of its "
            f"approvers ({', '.join(request.approvers)})"
        )
    return _decide(
        registry,
        version,
        decision=decision,
        by=by,
        reason=reason,
        at=at,
        request=request,
        audit=audit,
    )


def approve(
    registry: ModelRegistry,
    version: int,
    *,
    by: str,
    reason: str = "",
    now: datetime | None = None,
    audit: Mapping[str, Any] | None = None,
) -> ApprovalRequest:
    """Approve a version waiting for approval: its status becomes "approved".

    This does not deploy it: call `release_approved` next.

    Args:
        registry: The model's registry.
        version: A version with status "awaiting_approval" whose request has not expired.
        by: Who approves (a non-empty name; on the request's allow-list when it has one).
        reason: Why (recorded in the audit log).
        now: The decision time (default: the clock).
        audit: Extra fields for the "approval" audit record (e.g. ``{"via": "cli"}``).

    Returns:
        The decided request.

    Raises:
        NotAnApproverError: ``by`` is not on the request's approvers allow-list.
        RegistryError: Unknown version; its status is not "awaiting_approval" (the message
            names the status and, when decided, who decided it); the request has expired; it
            was decided concurrently; or ``by`` is empty.
    """
    who = _check_name(by, "by")
    if not isinstance(reason, str):
        raise RegistryError(f"reason must be a string, got {reason!r}")
    return _decide_open(registry, version, APPROVED, "approve", who, reason.strip(), now, audit)


def reject(
    registry: ModelRegistry,
    version: int,
    *,
    by: str,
    reason: str,
    now: datetime | None = None,
    audit: Mapping[str, Any] | None = None,
) -> ApprovalRequest:
    """Reject a version waiting for approval: its status becomes "rejected" (final).

    Args:
        registry: The model's registry.
        version: A version with status "awaiting_approval" whose request has not expired.
        by: Who rejects (a non-empty name; on the request's allow-list when it has one).
        reason: Why (required, recorded in the audit log).
        now: The decision time (default: the clock).
        audit: Extra fields for the "rejection" audit record.

    Returns:
        The decided request.

    Raises:
        NotAnApproverError: ``by`` is not on the request's approvers allow-list.
        RegistryError: As `approve`, or ``reason`` is empty.
    """
    who = _check_name(by, "by")
    if not isinstance(reason, str) or not reason.strip():
        raise RegistryError(f"reason for rejecting {_what(registry, version)} must not be empty")
    return _decide_open(registry, version, REJECTED, "reject", who, reason.strip(), now, audit)


# --------------------------------------------------------------------------- listing, timeouts


def pending(registry: ModelRegistry) -> list[ApprovalRequest]:
    """Return the open approval requests, by version (expired ones included until swept).

    Use `ApprovalRequest.expired` to tell which can no longer be approved.
    """
    versions = sorted(
        v
        for alias, v in registry.aliases().items()
        if alias.startswith(PENDING_ALIAS_PREFIX) and alias == pending_alias(v)
    )
    requests = []
    for version in versions:
        request = get_request(registry, version)
        if request is not None and request.status == AWAITING:
            requests.append(request)
    return requests


def expire_stale(registry: ModelRegistry, now: datetime | None = None) -> list[ApprovalRequest]:
    """Reject every open request past its expiry ("approval timed out after N h").

    Each gets a "rejection" audit record with ``by`` "refit" and ``timed_out`` true. A request
    decided by a person meanwhile is left as that person decided it.

    Returns:
        The requests rejected now.
    """
    at = _now(now)
    expired = []
    for request in pending(registry):
        if not request.expired(at):
            continue
        try:
            expired.append(
                _decide(
                    registry,
                    request.version,
                    decision=REJECTED,
                    by=TIMEOUT_ACTOR,
                    reason=f"approval timed out after {_hours(request.timeout_hours)}",
                    at=at,
                    request=request,
                    timed_out=True,
                )
            )
        except RegistryError:
            continue  # decided concurrently: that decision stands
    return expired


# --------------------------------------------------------------------------- release


def release_approved(
    registry: ModelRegistry,
    version: int,
    *,
    target: str = "local",
    reason: str = "",
    run_label: str = "",
) -> int:
    """Release an approved version to deployment (the one place approved versions go live).

    Promotes through the deployment target in one compare-and-swap against the champion the
    version was evaluated against (its ``parent_version``). For a canary rollout instead, approve
    with ``--no-release`` and run ``refit rollout``.

    Args:
        registry: The model's registry.
        version: A version with status "approved".
        target: The deployment target's name.
        reason: Why (audit log); default names the approver and their reason.
        run_label: Label of the run (or "approval") in the audit log.

    Returns:
        The live version after the release.

    Raises:
        RegistryError: Unknown version, or its status is not "approved".
        ConflictError: The champion moved since the version was evaluated; nothing was
            promoted and the approval stands.
        IntegrityError: The model file does not match its registered sha256.
    """
    from refit.deploy import get_target

    mv = registry.get(version)
    if mv.status != APPROVED:
        raise RegistryError(
            f"cannot release {_what(registry, version)}: its status is {mv.status!r}, "
            f"not {APPROVED!r}"
        )
    if not reason:
        request = get_request(registry, version)
        reason = "approved"
        if request is not None and request.decided_by:
            reason = f"approved by {request.decided_by}"
            if request.reason:
                reason += f": {request.reason}"
    try:
        rollout = get_target(target, registry).promote(
            version,
            reason=reason,
            audit={"run_label": run_label},
            expected_champion=mv.parent_version,
        )
        return int(rollout.version)
    except ConflictError as exc:
        live = registry.get_alias("champion")
        raise ConflictError(
            f"approved {_what(registry, version)} was not released: it was evaluated against "
            f"champion {_version_label(mv.parent_version)}, but the champion is now "
            f"{_version_label(live)}; the approval stands, but the version must be evaluated "
            f"against the new champion before it can go live ({exc})"
        ) from None


def _version_label(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
