"""Deployment targets: a small registry of target classes and the local target.

The local target serves whatever the registry's ``champion`` alias points at. A promotion moves
``champion`` to the new version and ``previous`` to the old champion in one compare-and-swap step
(a concurrent promotion makes the loser raise ConflictError), updates the versions' statuses and
appends a hash-chained audit record. The audit log (``{store}/models/{name}/audit.jsonl``) is the
rollout history: `LocalTarget.history` reads it back; there is no separate rollouts file.

Statuses and aliases:

- ``promote(v)``: v -> "champion"; the old champion -> "previous" (alias ``previous``); the
  version that was ``previous`` before (if any, and not v) -> "retired".
- ``rollback()``: the ``previous`` version becomes champion again (status "champion"); the
  champion being rolled back -> "rolled_back"; the ``previous`` alias is cleared, so a second
  rollback without a new promotion raises RegistryError. In the returned `Rollout` (and the audit
  payload), ``version`` is the restored champion and ``previous`` the rolled-back version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from refit.audit.events import LIVE_EVENTS, AuditEvent
from refit.errors import ConflictError, RegistryError
from refit.registry import ANY, ModelRegistry

CHAMPION = "champion"
PREVIOUS = "previous"


@dataclass(frozen=True)
class Rollout:
    """One deployment action.

    Attributes:
        version: The version live after the action.
        previous: The version live before it (None on the first promotion).
        action: "promotion" or "rollback".
        at: When it happened (UTC, ISO 8601).
        reason: Why, in words.
    """

    version: int
    previous: int | None
    action: str
    at: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        """Build a Rollout from `to_dict` output (unknown keys ignored)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


class DeployTarget(Protocol):
    """What every deployment target offers."""

    def promote(self, version: int, *, reason: str, audit: dict[str, Any] | None = None) -> Rollout:
        """Make ``version`` the live model."""
        ...

    def rollback(self, *, reason: str, audit: dict[str, Any] | None = None) -> Rollout:
        """Restore the previous live model."""
        ...

    def live_version(self) -> int | None:
        """Return the live version, or None."""
        ...


_TARGETS: dict[str, type] = {}


def register_target(name: str, cls: type) -> None:
    """Register a deployment target class under a name.

    Args:
        name: The target's name, e.g. ``"local"`` or ``"kserve"``.
        cls: A class constructed as ``cls(registry, **kw)``.

    Raises:
        RegistryError: Empty name, or the name is already taken by another class.
    """
    if not isinstance(name, str) or not name:
        raise RegistryError(f"deploy target name must be a non-empty string, got {name!r}")
    if not callable(cls):
        raise RegistryError(f"deploy target {name!r}: {cls!r} is not a class")
    existing = _TARGETS.get(name)
    if existing is not None and existing is not cls:
        raise RegistryError(f"deploy target {name!r} is already registered as {existing!r}")
    _TARGETS[name] = cls


def available_targets() -> list[str]:
    """Return the registered target names, sorted."""
    return sorted(_TARGETS)


def get_target(name: str, registry: ModelRegistry, **kw: Any) -> Any:
    """Construct the target registered under ``name`` for ``registry``.

    Raises:
        RegistryError: Unknown target name (the message lists the known ones).
    """
    try:
        cls = _TARGETS[name]
    except KeyError:
        raise RegistryError(
            f"unknown deploy target {name!r}; known targets: {available_targets()}"
        ) from None
    return cls(registry, **kw)


def promotion_statuses(version: int, old: int | None, old_prev: int | None) -> dict[int, str]:
    """Statuses after promoting ``version`` over champion ``old`` (``old_prev`` was previous)."""
    statuses = {version: "champion"}
    if old is not None:
        statuses[old] = "previous"
    if old_prev is not None and old_prev not in (old, version):
        statuses[old_prev] = "retired"
    return statuses


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalTarget:
    """Deploy by moving the registry's ``champion`` alias (the local, embedded mode).

    Args:
        registry: The model's registry.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def live_version(self) -> int | None:
        """Return the champion version, or None when nothing is deployed."""
        return self.registry.get_alias(CHAMPION)

    def promote(
        self,
        version: int,
        *,
        reason: str,
        audit: dict[str, Any] | None = None,
        expected_champion: Any = ANY,
    ) -> Rollout:
        """Make ``version`` the champion; the old champion becomes ``previous``.

        The model file's sha256 is checked first. The alias move is a compare-and-swap on the
        champion (and previous) values read at the start. ``audit`` holds extra fields for the
        "promotion" audit record (e.g. the run's label). ``expected_champion`` (a version, or
        None for "no champion yet") makes the promotion conditional on the champion the caller
        evaluated against: when two runs finish together, the second one's challenger was not
        compared with the first one's, so it loses with ConflictError instead of overwriting.

        Raises:
            RegistryError: Unknown version, or it is already the champion.
            IntegrityError: The version's model file does not match its sha256.
            ConflictError: Another writer moved the aliases meanwhile.
        """
        reg = self.registry
        reg.verify(version)
        aliases = reg.aliases()
        old, old_prev = aliases.get(CHAMPION), aliases.get(PREVIOUS)
        if expected_champion is not ANY and old != expected_champion:
            raise ConflictError(
                f"alias 'champion' of model {reg.model_name!r}: expected version "
                f"{expected_champion} but it is {old} (changed by a concurrent writer)"
            )
        if old == version:
            raise RegistryError(
                f"cannot promote model {reg.model_name!r} version {version}: it is already "
                "the champion"
            )
        statuses = promotion_statuses(version, old, old_prev)
        rollout = Rollout(version, old, "promotion", _now(), reason)
        reg.update_aliases(
            {CHAMPION: version, PREVIOUS: old},
            expected={CHAMPION: old, PREVIOUS: old_prev},
            statuses=statuses,
            event=AuditEvent.PROMOTION,
            payload={"model": reg.model_name, **rollout.to_dict(), **(audit or {})},
        )
        return rollout

    def rollback(self, *, reason: str, audit: dict[str, Any] | None = None) -> Rollout:
        """Restore ``previous`` as champion; the current champion becomes "rolled_back".

        ``previous`` is cleared afterwards. In the result, ``version`` is the restored champion
        and ``previous`` the version rolled back.

        Raises:
            RegistryError: There is no previous version to restore.
            IntegrityError: The previous version's model file does not match its sha256.
            ConflictError: Another writer moved the aliases meanwhile.
        """
        reg = self.registry
        aliases = reg.aliases()
        cur, prev = aliases.get(CHAMPION), aliases.get(PREVIOUS)
        if prev is None:
            raise RegistryError(
                f"cannot roll back model {reg.model_name!r}: no previous version to restore "
                f"(alias 'previous' is unset; champion is {cur})"
            )
        reg.verify(prev)
        statuses = {prev: "champion"}
        if cur is not None:
            statuses[cur] = "rolled_back"
        rollout = Rollout(prev, cur, "rollback", _now(), reason)
        reg.update_aliases(
            {CHAMPION: prev, PREVIOUS: None},
            expected={CHAMPION: cur, PREVIOUS: prev},
            statuses=statuses,
            event=AuditEvent.ROLLBACK,
            payload={"model": reg.model_name, **rollout.to_dict(), **(audit or {})},
        )
        return rollout

    def history(self) -> list[Rollout]:
        """Return the promotions and rollbacks of this model, oldest first (from the audit log)."""
        return [
            Rollout.from_dict(r["payload"])
            for r in self.registry.audit.records()
            if r["event"] in LIVE_EVENTS
        ]


register_target("local", LocalTarget)
