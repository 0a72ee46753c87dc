"""The model registry: immutable versions, compare-and-swap aliases, policy state and audit log.

One class, `ModelRegistry`, over a `refit.io.storage.Storage`; `open_registry` picks the storage
by the store URI (a local folder or ``gs://bucket/prefix``). This module holds the versions
(register, read, verify, load) and the alias and policy-state API; every change to mutable state
runs as a transaction of its base, `refit.registry.transactions.RegistryState`. The store's layout,
registration and the migration of older stores: docs/decisions/0020-registry-store-layout.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from refit.audit.events import AuditEvent
from refit.audit.log import checked_payload
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.io.storage import TEMP_PREFIX
from refit.registry.records import (
    ANY,
    ModelVersion,
    _Any,
    apply_alias_changes,
    check_alias_changes,
    check_expected,
    check_metrics,
    check_model_sha,
    check_state_data,
    check_state_key,
    check_status,
    check_version_arg,
    dumps_json,
    missing_parent,
    missing_version,
    read_model_meta,
    registration_payload,
    stamp_record,
    state_not_serialisable,
    version_record,
)
from refit.registry.transactions import MAX_ATTEMPTS, RegistryState

if TYPE_CHECKING:  # pragma: no cover
    from refit.training.trainers import TrainedModel

__all__ = ["ModelRegistry", "open_registry"]

_VERSION_RE: Final = re.compile(r"^(\d+)/")
#: Files of a version folder that are the registry's own, not the model's.
_OWN_FILES: Final = frozenset({"version.json", ".claim"})


def open_registry(store_uri: str, model_name: str) -> ModelRegistry:
    """Open one model's registry in a store.

    Args:
        store_uri: The store root: a local path, ``file://`` URI or ``gs://bucket/prefix``.
        model_name: The model's name (letters, digits, ``_``, ``.``, ``-``).

    Returns:
        The registry (no I/O happens until it is used).

    Raises:
        RegistryError: The URI has an unsupported scheme or the model name is invalid.
    """
    return ModelRegistry(store_uri, model_name)


def _manifest(src: Path, files: list[Path]) -> dict[str, str]:
    """Return relative path -> sha256 of a model directory's files.

    Raises:
        RegistryError: A file has a name the registry keeps for itself.
    """
    manifest = {p.relative_to(src).as_posix(): _sha256_file(p) for p in files}
    own = sorted(
        n for n in manifest if n in _OWN_FILES or n.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)
    )
    if own:
        raise RegistryError(f"model_dir {src} holds {own}: names the registry keeps for itself")
    return manifest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelRegistry(RegistryState):
    """Versions, aliases, statuses, policy state and audit log of one model in a store.

    Prefer `open_registry`; constructing the class directly does the same. Its arguments and
    attributes (``store_uri``, ``model_name``, ``storage``, ``root``, ``audit``) are those of
    `refit.registry.transactions.RegistryState`, which runs its transactions.
    """

    # ----------------------------------------------------------------- versions

    def _claimed_numbers(self) -> list[int]:
        names = self.storage.list("versions")
        return sorted({int(m.group(1)) for n in names if (m := _VERSION_RE.match(n))})

    def exists(self, version: int) -> bool:
        """Return whether ``version`` is registered."""
        return self.storage.read(f"versions/{version}/version.json") is not None

    def register(
        self,
        model_dir: str | os.PathLike[str],
        *,
        metrics: dict[str, Any],
        snapshot_sha256: str,
        parent_version: int | None,
        run_label: str,
        extra: dict[str, Any] | None = None,
        audit: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy a model directory into the registry as the next version.

        The directory must hold ``model.json`` (with ``"file"``, the model file's name, and
        ``"sha256"``, its digest) and the model file, whose digest is checked before anything is
        written.

        Args:
            model_dir: The saved model directory (see `refit.training.artifacts.save_model`).
            metrics: Evaluation metrics to record (JSON-serialisable).
            snapshot_sha256: Content hash of the training data snapshot.
            parent_version: The version this one descends from, or None.
            run_label: The label of the pipeline run that produced it (the KFP run id unless
                the run was given a label).
            extra: Extra JSON-serialisable metadata.
            audit: Extra fields for the "registration" audit record.

        Returns:
            The new version, with status "registered".

        Raises:
            RegistryError: ``model_dir`` or its ``model.json`` is missing or malformed, an argument
                is invalid, ``parent_version`` does not exist, or the storage fails.
            IntegrityError: The model file's sha256 differs from ``model.json``.
            ConflictError: No version number could be reserved.
        """
        src = Path(model_dir)
        meta = read_model_meta(src)
        check_metrics(metrics)
        if not isinstance(snapshot_sha256, str):
            raise RegistryError(f"snapshot_sha256 must be a string, got {snapshot_sha256!r}")
        if not isinstance(run_label, str):
            raise RegistryError(f"run_label must be a string, got {run_label!r}")
        self._check_parent(parent_version)
        check_model_sha(src, meta, _sha256_file(src / meta["file"]))
        files = sorted(p for p in src.rglob("*") if p.is_file())
        manifest = _manifest(src, files)
        record = version_record(
            self.model_name,
            meta,
            metrics=metrics,
            snapshot_sha256=snapshot_sha256,
            parent_version=parent_version,
            run_label=run_label,
            extra=extra,
        )
        record["manifest"] = manifest
        try:
            record["audit"] = checked_payload(AuditEvent.REGISTRATION, dict(audit or {}))
        except ValueError as exc:
            raise RegistryError(f"audit fields of the registration: {exc}") from exc
        version = self._claim_number()
        folder = f"versions/{version}"
        for path in files:
            self.storage.put_file(f"{folder}/{path.relative_to(src).as_posix()}", path)
        record = stamp_record(record, version, self.storage.uri(folder))
        with self.locked():
            if not self.storage.create(f"{folder}/version.json", dumps_json(record).encode()):
                raise RegistryError(f"{self.storage.uri(folder)} was written twice")
            self._record_registration(version, record)
        return self.get(version)

    def _check_parent(self, parent_version: int | None) -> None:
        if parent_version is not None:
            check_version_arg(parent_version, "parent_version")
            if not self.exists(parent_version):
                raise missing_parent(self.model_name, parent_version, self.list_version_numbers())

    def _claim_number(self) -> int:
        """Reserve the next version number by a create-only claim (concurrent writers differ)."""
        claim = uuid.uuid4().hex.encode()
        for _ in range(MAX_ATTEMPTS):
            numbers = self._claimed_numbers()
            version = (numbers[-1] if numbers else 0) + 1
            if self.storage.create(f"versions/{version}/.claim", claim):
                return version
        raise ConflictError(f"model {self.model_name!r}: could not reserve a version number")

    def _record_registration(self, version: int, data: Mapping[str, Any]) -> None:
        """Commit a version's registration record (status "registered"), once (decision 0020).

        Raises:
            RegistryError: The audit record could not be written; the version stays unrecorded
                and the next transaction's recovery records it.
        """

        def mutate(live: dict[str, Any]) -> None:
            if str(version) in live["statuses"]:
                raise _AlreadyRecorded  # another writer's recovery recorded it (gs://)
            live["statuses"][str(version)] = "registered"

        try:
            self._transact(mutate, AuditEvent.REGISTRATION, registration_payload(data), version)
        except _AlreadyRecorded:
            pass

    def get(self, version: int) -> ModelVersion:
        """Return one version with its current status.

        Raises:
            RegistryError: The version does not exist.
        """
        check_version_arg(version)
        data = self._read_json(f"versions/{version}/version.json")
        if data is None:
            raise missing_version(self.model_name, version, self.list_version_numbers())
        data = dict(data)
        data["model_uri"] = self.storage.uri(f"versions/{version}")
        data["status"] = self._refs()[0]["statuses"].get(str(version), "registered")
        return ModelVersion.from_dict(data)

    def list_versions(self) -> list[ModelVersion]:
        """Return every version, ascending."""
        return [self.get(n) for n in self.list_version_numbers()]

    def _check_files(self, mv: ModelVersion, folder: Path) -> None:
        where = f"model {self.model_name!r} version {mv.version}"
        shown = f"{mv.model_uri}/{mv.file}"
        path = folder / mv.file
        if not path.is_file():
            raise IntegrityError(f"{where}: {shown} is missing")
        actual = _sha256_file(path)
        if actual != mv.sha256:
            raise IntegrityError(f"{where}: {shown} has sha256 {actual}, registered {mv.sha256}")
        try:
            recorded = json.loads((folder / "model.json").read_text("utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != mv.sha256:
            raise IntegrityError(
                f"{where}: model.json records sha256 {recorded!r}, registered {mv.sha256}"
            )
        if not mv.manifest:
            return
        present = {  # a temp file is a write killed before its rename: never a version's file
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(TEMP_PREFIX)
        } - _OWN_FILES
        for name, digest in sorted(mv.manifest.items()):
            if name not in present:
                raise IntegrityError(f"{where}: {mv.model_uri}/{name} is missing")
            actual = _sha256_file(folder / name)
            if actual != digest:
                raise IntegrityError(
                    f"{where}: {name} was changed after registration ({mv.model_uri}/{name} has "
                    f"sha256 {actual}, registered {digest}); refusing it"
                )
        extra = sorted(present - set(mv.manifest))
        if extra:
            raise IntegrityError(
                f"{where}: {', '.join(extra)} not in the version's manifest (added after "
                "registration); refusing it"
            )

    def verify(self, version: int) -> ModelVersion:
        """Check every file of a version against its manifest (older versions: the model file).

        Returns:
            The version (``manifest`` empty: registered before manifests, only the model file and
            ``model.json``'s digest were checked).

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: A file is missing, changed (its sha256 differs from the registered
                one) or added after registration, or ``model.json`` names another digest.
        """
        mv = self.get(version)
        with self.storage.local_dir(f"versions/{version}") as folder:
            self._check_files(mv, folder)
        return mv

    def load_model(self, version: int) -> TrainedModel:
        """Check a version's files (`verify`) and load it (`refit.training.artifacts`).

        A ``gs://`` version is downloaded to a temporary folder first, and checked there.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: The model file does not match its registered sha256.
        """
        mv = self.get(version)
        with self.storage.local_dir(f"versions/{version}") as folder:
            self._check_files(mv, folder)
            from refit.training.artifacts import load_model

            return load_model(str(folder))

    def aliases(self) -> dict[str, int]:
        """Return every alias and its version."""
        return self._refs()[0]["aliases"]

    def get_alias(self, name: str) -> int | None:
        """Return the version an alias points at, or None when unset."""
        return self.aliases().get(name)

    def set_status(self, version: int, status: str) -> None:
        """Set a version's mutable status (one of `STATUSES`).

        Raises:
            RegistryError: Unknown status or version.
        """
        check_status(status)
        self.update_aliases({}, statuses={version: status})

    def set_alias(self, name: str, version: int | None, expected: int | None | _Any = ANY) -> None:
        """Point an alias at a version (None removes it), atomically.

        Args:
            name: The alias, e.g. ``"champion"``.
            version: The version, or None to clear the alias.
            expected: Compare-and-swap: the value the caller believes the alias has now (None =
                unset). `ANY` (default) sets unconditionally.

        Raises:
            ConflictError: ``expected`` was given and the alias holds another value.
            RegistryError: Invalid alias name or unknown version.
        """
        exp = {} if isinstance(expected, _Any) else {name: expected}
        self.update_aliases({name: version}, expected=exp)

    def update_aliases(
        self,
        changes: Mapping[str, int | None],
        *,
        expected: Mapping[str, int | None] | None = None,
        statuses: Mapping[int, str] | None = None,
        state: Mapping[str, Mapping[str, Any] | None] | None = None,
        event: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """Change aliases, statuses and policy state, and record it, in one transaction.

        Args:
            changes: alias -> new version (None removes the alias).
            expected: alias -> value it must hold now (None = unset); any difference raises
                ConflictError and nothing is written.
            statuses: version -> new status, written in the same step.
            state: policy-state key -> new JSON object (None removes it), in the same step.
            event: The audit event recording the change (default ``registry_update``).
            payload: Its payload (default: the model and the changes).

        Returns:
            The aliases after the change.

        Raises:
            ConflictError: An alias in ``expected`` holds another value.
            RegistryError: Invalid alias name, unknown version, unknown status, invalid state, or
                the audit record could not be written (then nothing changed).
        """
        check_alias_changes(changes, statuses)
        new_state = {k: _state_body(k, v) for k, v in (state or {}).items()}
        touched = [v for v in changes.values() if v is not None] + list(statuses or {})
        for version in dict.fromkeys(touched):
            if not self.exists(version):
                raise missing_version(self.model_name, version, self.list_version_numbers())

        def mutate(live: dict[str, Any]) -> None:
            check_expected(self.model_name, live["aliases"], expected)
            apply_alias_changes(live["aliases"], changes)
            live["statuses"].update({str(v): s for v, s in (statuses or {}).items()})
            for key, data in new_state.items():
                if data is None:
                    live["state"].pop(key, None)
                else:
                    live["state"][key] = data

        if event is None:
            event = AuditEvent.REGISTRY_UPDATE
            payload = {
                "model": self.model_name,
                "aliases": dict(changes),
                "statuses": {str(v): s for v, s in (statuses or {}).items()},
                "state": sorted(new_state),
            }
        return dict(self.transact(mutate, event, payload or {})["aliases"])

    def champion(self) -> ModelVersion | None:
        """Return the champion version, or None when there is none."""
        version = self.get_alias("champion")
        return None if version is None else self.get(version)

    def reference_snapshot(self) -> str | None:
        """Return the champion's training snapshot sha256, or None without a champion."""
        champ = self.champion()
        return None if champ is None else champ.snapshot_sha256

    # ----------------------------------------------------------------- policy state

    def read_state(self, key: str) -> dict[str, Any] | None:
        """Return the JSON state stored under ``key``, or None when absent."""
        check_state_key(key)
        refs, _ = self._refs()
        if refs["commit"] is not None or key in refs["state"]:
            return refs["state"].get(key)
        data = self._read_json(f"state/{key}.json")  # a store from before transactions
        if data is not None and not isinstance(data, dict):
            raise RegistryError(
                f"registry file {self.storage.uri(f'state/{key}.json')} is corrupt: it must hold "
                "a JSON object"
            )
        return data

    def write_state(
        self,
        key: str,
        data: dict[str, Any] | None,
        *,
        event: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Store JSON state under ``key`` (None removes it) in one recorded transaction.

        Args:
            key: The state's key.
            data: A JSON-serialisable dict, or None.
            event: The audit event recording it (default ``registry_update``).
            payload: Its payload.

        Raises:
            RegistryError: Invalid key, ``data`` is not a JSON-serialisable dict, or the audit
                record could not be written (then nothing changed).
        """
        self.update_aliases({}, state={key: data}, event=event, payload=payload)


def _state_body(key: str, data: Any) -> dict[str, Any] | None:
    """Check policy state and return it as plain JSON data (None: remove the key)."""
    check_state_key(key)
    if data is None:
        return None
    check_state_data(key, data)
    try:
        return json.loads(dumps_json(dict(data)))
    except (TypeError, ValueError) as exc:
        raise state_not_serialisable(key, exc) from exc


class _AlreadyRecorded(Exception):  # control flow, never escapes the module
    """A version's registration record exists already."""
