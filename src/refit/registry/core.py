"""The model registry: immutable versions, compare-and-swap aliases, policy state and audit log.

One class, `ModelRegistry`, over a `refit.io.storage.Storage`; `open_registry` picks the storage
by the store URI (a local folder or ``gs://bucket/prefix``). Layout under
``{store}/models/{name}/``::

    versions/{n}/.claim        create-only object that reserves number n
    versions/{n}/{files}       copy of the registered model directory
    versions/{n}/version.json  create-only, written last: the version exists once it does
    refs.json                  {"aliases": {...}, "statuses": {...}, "txn": "..."}
    state/{key}.json           policy state (atomic replace)
    audit.jsonl                hash-chained audit log, local stores (`refit.audit.AuditLog`)
    audit/                     the same, one object per record, gs:// stores
                               (`refit.audit.objects.ObjectAuditLog`)
    .lock                      local stores: the lock `ModelRegistry.locked` holds

Aliases and statuses live in one object, so a promotion (two aliases, up to three statuses) is a
single compare-and-swap: read ``refs.json`` with its version token, check the caller's expected
alias values, write on condition that the token is unchanged. A writer whose write is refused
re-reads and re-checks: if the aliases it expected were moved it raises ConflictError, otherwise
(an unrelated update slipped in) it tries again. Version numbers are reserved the same way
(create-only claims), so concurrent registrations never share a number, and a reader never sees a
version whose ``version.json`` is not written yet. ``version.json`` is never rewritten; the status
that changes over a version's life lives in ``refs.json``.

Local stores written before ``refs.json`` kept ``aliases.json`` and ``statuses.json``: they are
read while ``refs.json`` does not exist, and the first alias or status update moves them into it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from refit.audit.events import AuditEvent
from refit.audit.log import AuditLog
from refit.audit.objects import ObjectAuditLog
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.io.storage import Storage, Token, open_storage
from refit.registry.records import (
    ANY,
    ModelVersion,
    _Any,
    apply_alias_changes,
    check_alias_changes,
    check_expected,
    check_metrics,
    check_model_name,
    check_model_sha,
    check_state_data,
    check_state_key,
    check_status,
    check_version_arg,
    dumps_json,
    missing_parent,
    missing_version,
    read_model_meta,
    stamp_record,
    state_not_serialisable,
    version_record,
)

if TYPE_CHECKING:  # pragma: no cover
    from refit.training.trainers import TrainedModel

__all__ = ["ModelRegistry", "open_registry"]

_VERSION_RE: Final = re.compile(r"^(\d+)/")
_MAX_ATTEMPTS: Final = 64
_REFS: Final = "refs.json"


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelRegistry:
    """Versions, aliases, statuses, policy state and audit log of one model in a store.

    Prefer `open_registry`; constructing the class directly does the same.

    Args:
        store_uri: The store root: a local path, ``file://`` URI or ``gs://bucket/prefix``.
        model_name: The model's name (letters, digits, ``_``, ``.``, ``-``).

    Attributes:
        store_uri: The store root as given.
        model_name: The model.
        storage: The model's folder ``{store}/models/{name}`` in its storage.
        root: That folder's path or URI.
        audit: The model's hash-chained audit log.
    """

    def __init__(self, store_uri: str, model_name: str) -> None:
        check_model_name(model_name)
        self.store_uri = os.fspath(store_uri) if isinstance(store_uri, os.PathLike) else store_uri
        self.model_name = model_name
        self.storage: Storage = open_storage(store_uri).child(f"models/{model_name}")
        self.root = self.storage.uri()
        log_path = self.storage.local_path("audit.jsonl")
        self.audit: AuditLog | ObjectAuditLog = (
            AuditLog(log_path) if log_path else ObjectAuditLog(self.storage.child("audit"))
        )

    def __repr__(self) -> str:
        return f"ModelRegistry({self.store_uri!r}, {self.model_name!r})"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock where it has one (local: ``{root}/.lock``, re-entrant).

        Every update is a compare-and-swap and needs no lock; callers hold it to keep several
        steps (an alias update and its audit record) from interleaving with another process's
        on a local store. On ``gs://`` it holds nothing.
        """
        with self.storage.lock():
            yield

    # ----------------------------------------------------------------- JSON objects

    def _read_json(self, name: str) -> Any | None:
        raw = self.storage.read(name)
        return None if raw is None else self._parse(name, raw)

    def _parse(self, name: str, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RegistryError(
                f"registry file {self.storage.uri(name)} is not valid JSON: {exc}"
            ) from exc

    # ----------------------------------------------------------------- versions

    def _claimed_numbers(self) -> list[int]:
        names = self.storage.list("versions")
        return sorted({int(m.group(1)) for n in names if (m := _VERSION_RE.match(n))})

    def list_version_numbers(self) -> list[int]:
        """Return the registered version numbers, ascending."""
        return sorted(
            int(n.split("/")[0])
            for n in self.storage.list("versions")
            if n.endswith("/version.json") and n.count("/") == 1 and n.split("/")[0].isdigit()
        )

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
        run_id: str,
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
            run_id: The pipeline run id.
            extra: Extra JSON-serialisable metadata.
            audit: Extra fields for the "registration" audit record (e.g. the run's label).

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
        if not isinstance(run_id, str):
            raise RegistryError(f"run_id must be a string, got {run_id!r}")
        if parent_version is not None:
            check_version_arg(parent_version, "parent_version")
            if not self.exists(parent_version):
                raise missing_parent(self.model_name, parent_version, self.list_version_numbers())
        check_model_sha(src, meta, _sha256_file(src / meta["file"]))
        record = version_record(
            self.model_name,
            meta,
            metrics=metrics,
            snapshot_sha256=snapshot_sha256,
            parent_version=parent_version,
            run_id=run_id,
            extra=extra,
        )
        claim = uuid.uuid4().hex.encode()
        for _ in range(_MAX_ATTEMPTS):
            numbers = self._claimed_numbers()
            version = (numbers[-1] if numbers else 0) + 1
            if self.storage.create(f"versions/{version}/.claim", claim):
                break
        else:
            raise ConflictError(f"model {self.model_name!r}: could not reserve a version number")
        folder = f"versions/{version}"
        for path in sorted(src.rglob("*")):
            if path.is_file():
                self.storage.put_file(f"{folder}/{path.relative_to(src).as_posix()}", path)
        record = stamp_record(record, version, self.storage.uri(folder))
        if not self.storage.create(f"{folder}/version.json", dumps_json(record).encode()):
            raise RegistryError(f"{self.storage.uri(folder)} was written twice")
        mv = self.get(version)
        self.audit.append(
            AuditEvent.REGISTRATION,
            {
                "model": self.model_name,
                "version": mv.version,
                "sha256": mv.sha256,
                "snapshot_sha256": snapshot_sha256,
                "parent_version": parent_version,
                "run_id": run_id,
                "metrics": mv.metrics,
                **(audit or {}),
            },
        )
        return mv

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
        with self.storage.local_dir(f"versions/{version}") as folder:
            self._check_files(mv, folder)
        return mv

    def load_model(self, version: int) -> TrainedModel:
        """Verify a version's sha256 and load it with `refit.training.artifacts.load_model`.

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

    # ----------------------------------------------------------------- refs (aliases + statuses)

    def _refs(self) -> tuple[dict[str, Any], Token]:
        raw, token = self.storage.read_versioned(_REFS)
        if raw is None and self.storage.local_path(_REFS):  # a local store from before refs.json
            aliases, statuses = self._read_json("aliases.json"), self._read_json("statuses.json")
            data = {"aliases": aliases or {}, "statuses": statuses or {}}
        else:
            data = {} if raw is None else self._parse(_REFS, raw)
        if not isinstance(data, dict):
            raise RegistryError(f"registry file {self.storage.uri(_REFS)} must hold an object")
        return {
            "aliases": dict(data.get("aliases") or {}),
            "statuses": dict(data.get("statuses") or {}),
        }, token

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
        exp = {} if expected is ANY else {name: expected}
        self.update_aliases({name: version}, expected=exp)

    def update_aliases(
        self,
        changes: Mapping[str, int | None],
        *,
        expected: Mapping[str, int | None] | None = None,
        statuses: Mapping[int, str] | None = None,
    ) -> dict[str, int]:
        """Change several aliases (and optionally statuses) in one compare-and-swap.

        Args:
            changes: alias -> new version (None removes the alias).
            expected: alias -> value it must hold now (None = unset); any difference raises
                ConflictError and nothing is written.
            statuses: version -> new status, written in the same step.

        Returns:
            The aliases after the change.

        Raises:
            ConflictError: An alias in ``expected`` holds another value (now, or after losing
                the write to a concurrent writer).
            RegistryError: Invalid alias name, unknown version, or unknown status.
        """
        check_alias_changes(changes, statuses)
        touched = [v for v in changes.values() if v is not None] + list(statuses or {})
        for version in dict.fromkeys(touched):
            if not self.exists(version):
                raise missing_version(self.model_name, version, self.list_version_numbers())
        for _ in range(_MAX_ATTEMPTS):
            refs, token = self._refs()
            current = refs["aliases"]
            check_expected(self.model_name, current, expected)
            apply_alias_changes(current, changes)
            refs["statuses"].update({str(v): s for v, s in (statuses or {}).items()})
            refs["txn"] = uuid.uuid4().hex
            if self.storage.write_if(_REFS, dumps_json(refs).encode(), token):
                return dict(current)
        raise ConflictError(
            f"aliases of model {self.model_name!r}: lost {_MAX_ATTEMPTS} compare-and-swap races"
        )

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
        return self._read_json(f"state/{key}.json")

    def write_state(self, key: str, data: dict[str, Any]) -> None:
        """Store JSON state under ``key`` atomically.

        Raises:
            RegistryError: Invalid key, or ``data`` is not a JSON-serialisable dict.
        """
        check_state_key(key)
        check_state_data(key, data)
        try:
            body = dumps_json(dict(data)).encode()
        except (TypeError, ValueError) as exc:
            raise state_not_serialisable(key, exc) from exc
        self.storage.write(f"state/{key}.json", body)
