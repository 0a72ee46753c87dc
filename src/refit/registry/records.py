"""The registry's records and argument checks: pure, no storage.

`ModelVersion`, the version statuses, the `ANY` sentinel, the ``version.json`` record and the
registration record's payload, and the checks every registry call makes (names, versions,
statuses, aliases, policy state), each raising a RegistryError (or ConflictError) that names the
input and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from refit.errors import ConflictError, IntegrityError, RegistryError

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
SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")


class _Any:
    """Sentinel type: "any current value" for `ModelRegistry.set_alias`'s ``expected``."""

    _instance: _Any | None = None

    def __new__(cls) -> _Any:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


ANY: Final = _Any()

#: The key stores written before the name ``run_label`` hold a version's run label under.
_OLD_RUN_LABEL_KEY: Final = "run_id"


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version and its lineage.

    Attributes:
        version: The version number (1, 2, ...).
        model_uri: The version folder (a copy of the registered model directory).
        sha256: sha256 of the model file, checked on register, verify and load.
        metrics: Evaluation metrics recorded at registration.
        snapshot_sha256: Content hash of the training data snapshot.
        parent_version: The version this one was trained to replace (usually the champion then).
        run_label: The label of the pipeline run that produced it (the KFP run id unless the
            run was given a label); stores written before this name hold it as ``run_id``.
        status: Current status: "registered", "champion", "previous", "retired" or "rolled_back".
        created_at: Registration time (UTC, ISO 8601).
        file: The model file's name inside ``model_uri``.
        model_name: The registry's model name.
        extra: Free-form extra metadata given at registration.
        manifest: Relative path -> sha256 of every file of the version folder, recorded at
            registration (empty for versions registered before manifests).
    """

    version: int
    model_uri: str
    sha256: str
    metrics: dict[str, Any]
    snapshot_sha256: str
    parent_version: int | None
    run_label: str
    status: str
    created_at: str
    file: str = ""
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Build a ModelVersion from `to_dict` output (unknown keys ignored).

        A record written before ``run_label`` was named so holds it as ``run_id``: that key is
        read when ``run_label`` is absent.
        """
        names = cls.__dataclass_fields__.keys()
        fields = {k: v for k, v in data.items() if k in names}
        if "run_label" not in fields:
            fields["run_label"] = data.get(_OLD_RUN_LABEL_KEY, "")
        return cls(**fields)


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
        RegistryError: It is not a string of letters, digits, ``_``, ``.``, ``-`` (a trailing
            newline or any other control character included), or is longer than 200.
    """
    if (
        not isinstance(model_name, str)
        or not NAME_RE.fullmatch(model_name)
        or len(model_name) > 200
    ):
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
    if not isinstance(key, str) or not NAME_RE.fullmatch(key) or len(key) > 200:
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


def missing_version(model_name: str, version: int, versions: list[int]) -> RegistryError:
    """Return the error for a version the registry does not hold (lists the versions it has)."""
    return RegistryError(f"model {model_name!r} has no version {version} (versions: {versions})")


def missing_parent(model_name: str, parent_version: int, versions: list[int]) -> RegistryError:
    """Return the error for a ``parent_version`` the registry does not hold."""
    return RegistryError(
        f"parent_version {parent_version} does not exist in model "
        f"{model_name!r} (versions: {versions})"
    )


def read_model_meta(src: Path) -> dict[str, str]:
    """Return the ``file`` and ``sha256`` of a model directory's ``model.json``, checked.

    Raises:
        RegistryError: The directory, its ``model.json`` or the model file it names is missing or
            malformed.
    """
    if not src.is_dir():
        raise RegistryError(f"model_dir {src} is not a directory")
    meta_path = src / "model.json"
    if not meta_path.is_file():
        raise RegistryError(f"model_dir {src} has no model.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RegistryError(f"registry file {meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise RegistryError(f"{meta_path} must hold a JSON object")
    file, sha = meta.get("file"), meta.get("sha256")
    if not isinstance(file, str) or not file or Path(file).name != file or file in {".", ".."}:
        raise RegistryError(f"{meta_path}: 'file' must be a plain file name, got {file!r}")
    if not isinstance(sha, str) or not SHA256_RE.match(sha):
        raise RegistryError(f"{meta_path}: 'sha256' must be 64 hex digits, got {sha!r}")
    if not (src / file).is_file():
        raise RegistryError(f"model_dir {src} lacks the model file {file!r} named in model.json")
    return {"file": file, "sha256": sha}


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
    run_label: str,
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
        "run_label": run_label,
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


# --------------------------------------------------------------------------- aliases


def check_alias_changes(
    changes: Mapping[str, int | None], statuses: Mapping[int, str] | None
) -> None:
    """Check alias names, their target versions and the statuses of an alias update.

    Raises:
        RegistryError: An invalid alias name, version or status.
    """
    for alias, version in changes.items():
        if not isinstance(alias, str) or not NAME_RE.fullmatch(alias) or len(alias) > 200:
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


# --------------------------------------------------------------------------- registration


def registration_payload(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the registration record's payload, from a version's ``version.json`` alone.

    The writer and a recovery that rolls an unrecorded version forward build the same payload.
    """
    return {
        "model": data.get("model_name"),
        "version": data.get("version"),
        "sha256": data.get("sha256"),
        "snapshot_sha256": data.get("snapshot_sha256"),
        "parent_version": data.get("parent_version"),
        "run_label": data.get("run_label", data.get("run_id")),  # "run_id": older stores
        "metrics": data.get("metrics"),
        "manifest_sha256": manifest_digest(data.get("manifest") or {}),
        **dict(data.get("audit") or {}),
    }


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """Return the sha256 of a manifest's canonical JSON (recorded in the registration record)."""
    return hashlib.sha256(json.dumps(dict(manifest), sort_keys=True).encode()).hexdigest()
