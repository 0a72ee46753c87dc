"""Checks and records shared by the local and the ``gs://`` model registry.

Both backends validate their arguments, build a version's ``version.json`` record, check alias
changes and write their JSON the same way; only the storage and the locking differ. The helpers
here raise the same errors with the same messages for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from refit.errors import ConflictError, IntegrityError, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from refit.registry.local import ModelRegistry, ModelVersion

STATUSES: Final = (
    "registered",
    "awaiting_approval",
    "approved",
    "rejected",
    "canary",
    "champion",
    "previous",
    "retired",
    "rolled_back",
)
NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def utc_now() -> str:
    """Return the current UTC time in ISO 8601."""
    return datetime.now(UTC).isoformat()


def dumps_json(data: Any) -> str:
    """Serialise registry JSON: indented, sorted keys, no NaN/Infinity, trailing newline.

    Raises:
        TypeError: ``data`` holds a value JSON cannot represent.
        ValueError: ``data`` holds NaN or infinity.
    """
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- argument checks


def check_model_name(model_name: Any) -> str:
    """Return ``model_name`` if it is a valid model name.

    Raises:
        RegistryError: It is not a string of letters, digits, ``_``, ``.``, ``-``.
    """
    if not isinstance(model_name, str) or not NAME_RE.match(model_name):
        raise RegistryError(
            f"model_name {model_name!r} is invalid: use letters, digits, '_', '.', '-'"
        )
    return model_name


def check_version_arg(version: Any, what: str = "version") -> int:
    """Return ``version`` if it is a positive integer (not a bool).

    Raises:
        RegistryError: It is not; the message names the argument as ``what``.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"{what} must be a positive integer, got {version!r}")
    return version


def check_status(status: Any) -> None:
    """Check that ``status`` is one of `STATUSES`.

    Raises:
        RegistryError: It is not.
    """
    if status not in STATUSES:
        raise RegistryError(f"status {status!r} is not one of {list(STATUSES)}")


def check_metrics(metrics: Any) -> None:
    """Check that ``metrics`` is a mapping of metric -> value.

    Raises:
        RegistryError: It is not.
    """
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"metrics must be a dict of metric -> value, got {metrics!r}")


def check_state_key(key: Any) -> None:
    """Check a policy-state key (letters, digits, ``_``, ``.``, ``-``).

    Raises:
        RegistryError: The key is invalid.
    """
    if not isinstance(key, str) or not NAME_RE.match(key):
        raise RegistryError(f"state key {key!r} is invalid: use letters, digits, '_', '.', '-'")


def check_state_data(key: str, data: Any) -> None:
    """Check that the policy state to store under ``key`` is a mapping.

    Raises:
        RegistryError: It is not.
    """
    if not isinstance(data, Mapping):
        raise RegistryError(f"state {key!r} must be a dict, got {type(data).__name__}")


def state_not_serialisable(key: str, exc: Exception) -> RegistryError:
    """Return the error for policy state under ``key`` that JSON cannot represent."""
    return RegistryError(f"state {key!r} is not JSON-serialisable: {exc}")


# --------------------------------------------------------------------------- versions


def missing_version(registry: ModelRegistry, version: int) -> RegistryError:
    """Return the error for a version the registry does not hold (lists the versions it has)."""
    return RegistryError(
        f"model {registry.model_name!r} has no version {version} "
        f"(versions: {registry.list_version_numbers()})"
    )


def missing_parent(registry: ModelRegistry, parent_version: int) -> RegistryError:
    """Return the error for a ``parent_version`` the registry does not hold."""
    return RegistryError(
        f"parent_version {parent_version} does not exist in model "
        f"{registry.model_name!r} (versions: {registry.list_version_numbers()})"
    )


def check_versions_exist(registry: ModelRegistry, versions: Iterable[int]) -> None:
    """Check, in the order given, that every version is registered.

    Raises:
        RegistryError: The first version that does not exist.
    """
    for version in versions:
        if not registry.exists(version):
            raise missing_version(registry, version)


def check_model_sha(src: Path, meta: Mapping[str, str], actual: str) -> None:
    """Check a model file's computed sha256 against the digest its ``model.json`` records.

    Args:
        src: The model directory being registered.
        meta: Its ``model.json`` fields ``file`` and ``sha256``.
        actual: The sha256 computed from the model file (or its copy).

    Raises:
        IntegrityError: The digests differ.
    """
    if actual != meta["sha256"]:
        raise IntegrityError(
            f"model file {src / meta['file']}: sha256 {actual} does not match "
            f"{meta['sha256']} recorded in {src / 'model.json'}"
        )


def version_record(
    model_name: str,
    meta: Mapping[str, str],
    *,
    metrics: Mapping[str, Any],
    snapshot_sha256: str,
    parent_version: int | None,
    run_id: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Build the fields of a new version's ``version.json`` known before its number.

    Returns:
        The record, without ``version``, ``model_uri`` and ``created_at`` (see `stamp_record`).

    Raises:
        RegistryError: ``metrics`` or ``extra`` is not JSON-serialisable.
    """
    record: dict[str, Any] = {
        "model_name": model_name,
        "sha256": meta["sha256"],
        "file": meta["file"],
        "metrics": dict(metrics),
        "snapshot_sha256": snapshot_sha256,
        "parent_version": parent_version,
        "run_id": run_id,
        "extra": dict(extra or {}),
    }
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"metrics/extra of model {model_name!r} are not JSON-serialisable: {exc}"
        ) from exc
    return record


def stamp_record(record: Mapping[str, Any], version: int, model_uri: str) -> dict[str, Any]:
    """Return the complete ``version.json`` record: number, location and creation time first."""
    return {
        "version": version,
        "model_uri": model_uri,
        "created_at": utc_now(),
        **record,
    }


def audit_registration(
    registry: ModelRegistry,
    mv: ModelVersion,
    *,
    snapshot_sha256: str,
    parent_version: int | None,
    run_id: str,
    audit: Mapping[str, Any] | None,
) -> None:
    """Append the "registration" record of a new version to the registry's audit log."""
    registry.audit.append(
        "registration",
        {
            "model": registry.model_name,
            "version": mv.version,
            "sha256": mv.sha256,
            "snapshot_sha256": snapshot_sha256,
            "parent_version": parent_version,
            "run_id": run_id,
            "metrics": mv.metrics,
            **(audit or {}),
        },
    )


# --------------------------------------------------------------------------- aliases


def check_alias_changes(
    changes: Mapping[str, int | None], statuses: Mapping[int, str] | None
) -> None:
    """Check alias names, their target versions and the statuses of an alias update.

    Raises:
        RegistryError: An invalid alias name, version or status.
    """
    for alias, version in changes.items():
        if not isinstance(alias, str) or not NAME_RE.match(alias):
            raise RegistryError(f"alias name {alias!r} is invalid")
        if version is not None:
            check_version_arg(version, f"version for alias {alias!r}")
    for status in (statuses or {}).values():
        check_status(status)


def check_expected(
    model_name: str, current: Mapping[str, int], expected: Mapping[str, int | None] | None
) -> None:
    """Compare-and-swap check: every alias in ``expected`` must hold that value now.

    Raises:
        ConflictError: An alias holds another value (None = unset).
    """
    for alias, want in (expected or {}).items():
        actual = current.get(alias)
        if actual != want:
            raise ConflictError(
                f"alias {alias!r} of model {model_name!r}: expected version "
                f"{want} but it is {actual} (changed by a concurrent writer)"
            )


def apply_alias_changes(current: dict[str, int], changes: Mapping[str, int | None]) -> None:
    """Apply alias -> version changes to ``current`` in place (None removes the alias)."""
    for alias, version in changes.items():
        if version is None:
            current.pop(alias, None)
        else:
            current[alias] = version
