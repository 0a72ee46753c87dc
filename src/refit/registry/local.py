"""Model registry over a local folder: immutable versions, CAS aliases, lineage, policy state.

Layout under ``{store}/models/{name}/``::

    versions/{n}/          copy of the registered model directory + version.json (never rewritten)
    versions/.tmp-*        a registration in progress (renamed to versions/{n} when complete)
    aliases.json           {"champion": 3, "previous": 2, ...}  (atomic replace, under the lock)
    statuses.json          {"3": "champion", "2": "previous"}   (mutable per-version status)
    state/{key}.json       policy state (atomic JSON)
    audit.jsonl            hash-chained audit log (see refit.audit)
    .lock                  the registry's file lock

Version numbers are allocated under the file lock, and a version folder is complete before it is
renamed into place, so concurrent registrations (threads or processes) never collide and a reader
never sees a half-written version. ``version.json`` stays immutable; the status that changes over a
version's life ("registered", "champion", "previous", "retired", "rolled_back") lives in
``statuses.json``.

``ModelRegistry(store_uri, name)`` with a ``gs://`` URI returns a
`refit.registry.gcs.GcsModelRegistry` (same API; compare-and-swap on object generations instead of
the file lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from filelock import FileLock

from refit.audit.log import AuditLog
from refit.errors import IntegrityError, RegistryError
from refit.io.uri import write_file_atomic
from refit.registry._common import (
    STATUSES as STATUSES,  # re-exported: refit.registry and callers import it from here
)
from refit.registry._common import (
    apply_alias_changes,
    audit_registration,
    check_alias_changes,
    check_expected,
    check_metrics,
    check_model_name,
    check_model_sha,
    check_state_data,
    check_state_key,
    check_status,
    check_version_arg,
    check_versions_exist,
    dumps_json,
    missing_parent,
    missing_version,
    stamp_record,
    state_not_serialisable,
    version_record,
)

if TYPE_CHECKING:  # pragma: no cover
    from refit.training.trainers import TrainedModel


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


# --------------------------------------------------------------------------- storage helpers


def _local_root(store_uri: str) -> Path:
    if not isinstance(store_uri, str | os.PathLike) or not str(store_uri):
        raise RegistryError(f"store_uri must be a non-empty path, got {store_uri!r}")
    uri = os.fspath(store_uri)
    if uri.startswith("gs://"):
        raise RegistryError(
            f"store_uri {uri!r}: gs:// registries are not supported yet; use a local folder"
        )
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise RegistryError(f"store_uri {uri!r}: unsupported scheme (use a local path)")
    return Path(uri).absolute()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> Any | None:
    """Return the parsed JSON at ``path``, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RegistryError(f"registry file {path} is not valid JSON: {exc}") from exc


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temp file in the same folder + fsync + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, dumps_json(data))


def _list_version_numbers(versions_dir: Path) -> list[int]:
    if not versions_dir.is_dir():
        return []
    return sorted(int(p.name) for p in versions_dir.iterdir() if p.name.isdigit() and p.is_dir())


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=False)


def _publish_dir(tmp: Path, final: Path) -> None:
    """Rename a complete temp folder into place; fails if ``final`` exists (never overwrites)."""
    if final.exists():
        raise RegistryError(f"version folder {final} already exists; versions are immutable")
    os.rename(tmp, final)


# --------------------------------------------------------------------------- data


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
        run_id: The pipeline run that produced it.
        status: Current status: "registered", "champion", "previous", "retired" or "rolled_back".
        created_at: Registration time (UTC, ISO 8601).
        file: The model file's name inside ``model_uri``.
        model_name: The registry's model name.
        extra: Free-form extra metadata given at registration.
    """

    version: int
    model_uri: str
    sha256: str
    metrics: dict[str, Any]
    snapshot_sha256: str
    parent_version: int | None
    run_id: str
    status: str
    created_at: str
    file: str = ""
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Build a ModelVersion from `to_dict` output (unknown keys ignored)."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- registry


class ModelRegistry:
    """Versions, aliases and policy state of one model in a local store.

    Args:
        store_uri: The store root: a local path, ``file://`` URI, or ``gs://bucket/prefix``
            (which selects the GCS backend).
        model_name: The model's name (letters, digits, ``_``, ``.``, ``-``).

    Attributes:
        root: ``{store}/models/{name}``.
        audit: The model's `AuditLog` at ``{root}/audit.jsonl``.
    """

    def __new__(cls, store_uri: str, model_name: str) -> ModelRegistry:  # noqa: D102
        if cls is ModelRegistry and str(store_uri).startswith("gs://"):
            from refit.registry.gcs import GcsModelRegistry

            return super().__new__(GcsModelRegistry)
        return super().__new__(cls)

    def __init__(self, store_uri: str, model_name: str) -> None:
        check_model_name(model_name)
        self.store_uri = os.fspath(store_uri)
        self.model_name = model_name
        self.root = _local_root(self.store_uri) / "models" / model_name
        self.audit = AuditLog(self.root / "audit.jsonl")
        self._lock: FileLock | None = None

    def __repr__(self) -> str:
        return f"ModelRegistry({self.store_uri!r}, {self.model_name!r})"

    # ----------------------------------------------------------------- paths and lock

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def _aliases_path(self) -> Path:
        return self.root / "aliases.json"

    @property
    def _statuses_path(self) -> Path:
        return self.root / "statuses.json"

    def _version_dir(self, version: int) -> Path:
        return self._versions_dir / str(version)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's file lock (re-entrant within this registry object).

        Use it to make several registry updates one atomic step across processes, e.g. a
        promotion that moves two aliases and two statuses.
        """
        if self._lock is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.root / ".lock"))
        with self._lock:
            yield

    # ----------------------------------------------------------------- versions

    def register(
        self,
        model_dir: str | os.PathLike[str],
        *,
        metrics: dict[str, Any],
        snapshot_sha256: str,
        parent_version: int | None,
        run_id: str,
        extra: dict[str, Any] | None = None,
        audit: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy a model directory into the registry as the next version.

        The directory must hold ``model.json`` (with ``"file"``, the model file's name, and
        ``"sha256"``, its digest) and the model file. The digest is checked on the copy before
        the version is published.

        Args:
            model_dir: The saved model directory (see `refit.training.artifacts.save_model`).
            metrics: Evaluation metrics to record (JSON-serialisable).
            snapshot_sha256: Content hash of the training data snapshot.
            parent_version: The version this one descends from, or None.
            run_id: The pipeline run id.
            extra: Extra JSON-serialisable metadata.
            audit: Extra fields for the "registration" audit record (e.g. the run's label).

        Returns:
            The new version, with status "registered".

        Raises:
            RegistryError: ``model_dir`` or its ``model.json`` is missing or malformed, an argument
                is invalid, or ``parent_version`` does not exist.
            IntegrityError: The model file's sha256 differs from ``model.json``.
        """
        src = Path(model_dir)
        meta = self._read_model_meta(src)
        check_metrics(metrics)
        if not isinstance(snapshot_sha256, str):
            raise RegistryError(f"snapshot_sha256 must be a string, got {snapshot_sha256!r}")
        if not isinstance(run_id, str):
            raise RegistryError(f"run_id must be a string, got {run_id!r}")
        if parent_version is not None:
            check_version_arg(parent_version, "parent_version")
            if not self._version_dir(parent_version).is_dir():
                raise missing_parent(self, parent_version)
        record = version_record(
            self.model_name,
            meta,
            metrics=metrics,
            snapshot_sha256=snapshot_sha256,
            parent_version=parent_version,
            run_id=run_id,
            extra=extra,
        )

        self._versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._versions_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            _copy_tree(src, tmp)
            check_model_sha(src, meta, _sha256_file(tmp / meta["file"]))
            with self.locked():
                numbers = _list_version_numbers(self._versions_dir)
                version = (numbers[-1] if numbers else 0) + 1
                final = self._version_dir(version)
                record = stamp_record(record, version, str(final))
                _write_json_atomic(tmp / "version.json", record)
                _publish_dir(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        mv = self.get(version)
        audit_registration(
            self,
            mv,
            snapshot_sha256=snapshot_sha256,
            parent_version=parent_version,
            run_id=run_id,
            audit=audit,
        )
        return mv

    @staticmethod
    def _read_model_meta(src: Path) -> dict[str, str]:
        if not src.is_dir():
            raise RegistryError(f"model_dir {src} is not a directory")
        meta_path = src / "model.json"
        if not meta_path.is_file():
            raise RegistryError(f"model_dir {src} has no model.json")
        meta = _read_json(meta_path)
        if not isinstance(meta, dict):
            raise RegistryError(f"{meta_path} must hold a JSON object")
        file, sha = meta.get("file"), meta.get("sha256")
        if not isinstance(file, str) or not file or Path(file).name != file or file in {".", ".."}:
            raise RegistryError(f"{meta_path}: 'file' must be a plain file name, got {file!r}")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise RegistryError(f"{meta_path}: 'sha256' must be 64 hex digits, got {sha!r}")
        if not (src / file).is_file():
            raise RegistryError(
                f"model_dir {src} lacks the model file {file!r} named in model.json"
            )
        return {"file": file, "sha256": sha}

    def list_version_numbers(self) -> list[int]:
        """Return the registered version numbers, ascending."""
        return _list_version_numbers(self._versions_dir)

    def get(self, version: int) -> ModelVersion:
        """Return one version with its current status.

        Raises:
            RegistryError: The version does not exist.
        """
        check_version_arg(version)
        data = _read_json(self._version_dir(version) / "version.json")
        if data is None:
            raise missing_version(self, version)
        statuses = self._statuses()
        data = dict(data)
        data["model_uri"] = str(self._version_dir(version))
        data["status"] = statuses.get(str(version), "registered")
        return ModelVersion.from_dict(data)

    def list_versions(self) -> list[ModelVersion]:
        """Return every version, ascending."""
        return [self.get(n) for n in self.list_version_numbers()]

    def exists(self, version: int) -> bool:
        """Return whether ``version`` is registered."""
        return (self._version_dir(version) / "version.json").is_file()

    def verify(self, version: int) -> ModelVersion:
        """Check that a version's model file still has its registered sha256.

        Returns:
            The version.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: The model file is missing or its sha256 differs from the registered
                one, or ``model.json`` was changed to name another digest.
        """
        mv = self.get(version)
        path = Path(mv.model_uri) / mv.file
        if not path.is_file():
            raise IntegrityError(f"model {self.model_name!r} version {version}: {path} is missing")
        actual = _sha256_file(path)
        if actual != mv.sha256:
            raise IntegrityError(
                f"model {self.model_name!r} version {version}: {path} has sha256 {actual}, "
                f"registered {mv.sha256}"
            )
        meta = _read_json(Path(mv.model_uri) / "model.json") or {}
        if meta.get("sha256") != mv.sha256:
            raise IntegrityError(
                f"model {self.model_name!r} version {version}: model.json records sha256 "
                f"{meta.get('sha256')!r}, registered {mv.sha256}"
            )
        return mv

    def load_model(self, version: int) -> TrainedModel:
        """Verify a version's sha256 and load it with `refit.training.artifacts.load_model`.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: The model file does not match its registered sha256.
        """
        mv = self.verify(version)
        from refit.training.artifacts import load_model

        return load_model(mv.model_uri)

    # ----------------------------------------------------------------- statuses

    def _statuses(self) -> dict[str, str]:
        data = _read_json(self._statuses_path)
        return dict(data) if isinstance(data, dict) else {}

    def set_status(self, version: int, status: str) -> None:
        """Set a version's mutable status (one of `STATUSES`).

        Raises:
            RegistryError: Unknown status or version.
        """
        check_status(status)
        self.get(version)
        with self.locked():
            statuses = self._statuses()
            statuses[str(version)] = status
            _write_json_atomic(self._statuses_path, statuses)

    # ----------------------------------------------------------------- aliases

    def aliases(self) -> dict[str, int]:
        """Return every alias and its version."""
        data = _read_json(self._aliases_path)
        return dict(data) if isinstance(data, dict) else {}

    def get_alias(self, name: str) -> int | None:
        """Return the version an alias points at, or None when unset."""
        return self.aliases().get(name)

    def set_alias(self, name: str, version: int | None, expected: int | None | _Any = ANY) -> None:
        """Point an alias at a version (None removes it), atomically and under the lock.

        Args:
            name: The alias, e.g. ``"champion"``.
            version: The version, or None to clear the alias.
            expected: Compare-and-swap: the value the caller believes the alias has now (None =
                unset). `ANY` (default) sets unconditionally.

        Raises:
            ConflictError: ``expected`` was given and the alias holds another value.
            RegistryError: Invalid alias name or unknown version.
        """
        exp = {} if expected is ANY else {name: expected}
        self.update_aliases({name: version}, expected=exp)

    def update_aliases(
        self,
        changes: Mapping[str, int | None],
        *,
        expected: Mapping[str, int | None] | None = None,
        statuses: Mapping[int, str] | None = None,
    ) -> dict[str, int]:
        """Change several aliases (and optionally statuses) in one atomic, locked step.

        Args:
            changes: alias -> new version (None removes the alias).
            expected: alias -> value it must hold now (None = unset); any difference raises
                ConflictError and nothing is written.
            statuses: version -> new status, written in the same locked step.

        Returns:
            The aliases after the change.

        Raises:
            ConflictError: An alias in ``expected`` holds another value.
            RegistryError: Invalid alias name, unknown version, or unknown status.
        """
        check_alias_changes(changes, statuses)
        with self.locked():
            current = self.aliases()
            check_expected(self.model_name, current, expected)
            touched = [v for v in changes.values() if v is not None] + list(statuses or {})
            check_versions_exist(self, touched)
            apply_alias_changes(current, changes)
            _write_json_atomic(self._aliases_path, current)
            if statuses:
                stored = self._statuses()
                stored.update({str(v): s for v, s in statuses.items()})
                _write_json_atomic(self._statuses_path, stored)
            return current

    def champion(self) -> ModelVersion | None:
        """Return the champion version, or None when there is none."""
        version = self.get_alias("champion")
        return None if version is None else self.get(version)

    def reference_snapshot(self) -> str | None:
        """Return the champion's training snapshot sha256, or None without a champion."""
        champ = self.champion()
        return None if champ is None else champ.snapshot_sha256

    # ----------------------------------------------------------------- policy state

    def _state_path(self, key: str) -> Path:
        check_state_key(key)
        return self.root / "state" / f"{key}.json"

    def read_state(self, key: str) -> dict[str, Any] | None:
        """Return the JSON state stored under ``key``, or None when absent."""
        return _read_json(self._state_path(key))

    def write_state(self, key: str, data: dict[str, Any]) -> None:
        """Store JSON state under ``key`` atomically (temp file + os.replace).

        Raises:
            RegistryError: Invalid key, or ``data`` is not a JSON-serialisable dict.
        """
        path = self._state_path(key)
        check_state_data(key, data)
        try:
            _write_json_atomic(path, dict(data))
        except (TypeError, ValueError) as exc:
            raise state_not_serialisable(key, exc) from exc
