"""Model registry on Google Cloud Storage: the same API as the local registry.

Layout under ``gs://bucket/store/models/{name}/``::

    versions/{n}/.claim        create-only object that reserves number n
    versions/{n}/{files}       copy of the registered model directory
    versions/{n}/version.json  create-only, written last: the version exists once it does
    refs.json                  {"aliases": {...}, "statuses": {...}, "txn": "..."}
    state/{key}.json           policy state
    audit/                     hash-chained audit log, one object per record (see refit.audit.gcs)

Aliases and statuses live in one object so a promotion (two aliases, up to three statuses) is a
single compare-and-swap: read ``refs.json`` with its generation, check the caller's expected
alias values, write with ``if_generation_match``. A writer whose write is refused re-reads and
re-checks: if the aliases it expected were moved it raises ConflictError, otherwise (an unrelated
update slipped in) it tries again. Version numbers are reserved the same way (create-only
claims), so concurrent registrations never share a number, and a reader never sees a version
whose ``version.json`` is not written yet. Transient GCS errors are retried with back-off.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refit.audit.gcs import GcsAuditLog
from refit.errors import ConflictError, IntegrityError, RegistryError
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
from refit.registry._gcs import Gcs
from refit.registry.local import ModelRegistry, ModelVersion

if TYPE_CHECKING:  # pragma: no cover
    from refit.training.trainers import TrainedModel

_VERSION_RE = re.compile(r"^versions/(\d+)/")
_MAX_ATTEMPTS = 64


def _dumps(data: Any) -> bytes:
    return dumps_json(data).encode("utf-8")


def _loads(raw: bytes | None, where: str) -> Any | None:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"registry object {where} is not valid JSON: {exc}") from exc


class GcsModelRegistry(ModelRegistry):
    """Versions, aliases and policy state of one model under a ``gs://`` store.

    Construct it through ``ModelRegistry(store_uri, model_name)``: a ``gs://`` URI selects this
    class.

    Args:
        store_uri: ``gs://bucket/prefix``.
        model_name: The model's name (letters, digits, ``_``, ``.``, ``-``).
    """

    def __init__(self, store_uri: str, model_name: str) -> None:
        check_model_name(model_name)
        self.store_uri = str(store_uri)
        self.model_name = model_name
        self.root = f"{self.store_uri.rstrip('/')}/models/{model_name}"  # type: ignore[assignment]
        self._gcs = Gcs(self.root)
        self.audit = GcsAuditLog(f"{self.root}/audit")  # type: ignore[assignment]
        self._lock = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """No lock on GCS: every update is a compare-and-swap on an object generation."""
        yield

    # ----------------------------------------------------------------- versions

    def _claimed_numbers(self) -> list[int]:
        numbers = set()
        for name in self._gcs.list("versions"):
            m = _VERSION_RE.match("versions/" + name)
            if m:
                numbers.add(int(m.group(1)))
        return sorted(numbers)

    def list_version_numbers(self) -> list[int]:
        """Return the registered version numbers, ascending."""
        return sorted(
            int(n.split("/")[0])
            for n in self._gcs.list("versions")
            if n.endswith("/version.json") and n.split("/")[0].isdigit()
        )

    def exists(self, version: int) -> bool:
        """Return whether ``version`` is registered."""
        return self._gcs.read(f"versions/{version}/version.json") is not None

    def register(
        self,
        model_dir: Any,
        *,
        metrics: dict[str, Any],
        snapshot_sha256: str,
        parent_version: int | None,
        run_id: str,
        extra: dict[str, Any] | None = None,
        audit: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Upload a model directory as the next version (see `ModelRegistry.register`).

        Raises:
            RegistryError: Bad arguments, unknown parent, or a GCS failure.
            IntegrityError: The model file's sha256 differs from ``model.json``.
        """
        src = Path(model_dir)
        meta = self._read_model_meta(src)
        check_metrics(metrics)
        if not isinstance(snapshot_sha256, str) or not isinstance(run_id, str):
            raise RegistryError("snapshot_sha256 and run_id must be strings")
        if parent_version is not None:
            check_version_arg(parent_version, "parent_version")
            if not self.exists(parent_version):
                raise missing_parent(self, parent_version)
        check_model_sha(src, meta, hashlib.sha256((src / meta["file"]).read_bytes()).hexdigest())
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
            if self._gcs.create(f"versions/{version}/.claim", claim):
                break
        else:
            raise ConflictError(f"model {self.model_name!r}: could not reserve a version number")
        for path in sorted(src.rglob("*")):
            if path.is_file():
                self._gcs.upload_file(
                    f"versions/{version}/{path.relative_to(src).as_posix()}", path
                )
        record = stamp_record(record, version, self._gcs.uri(f"versions/{version}"))
        if not self._gcs.create(f"versions/{version}/version.json", _dumps(record)):
            raise RegistryError(f"{self._gcs.uri(f'versions/{version}')} was written twice")
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

    def get(self, version: int) -> ModelVersion:
        """Return one version with its current status.

        Raises:
            RegistryError: The version does not exist.
        """
        check_version_arg(version)
        where = f"versions/{version}/version.json"
        data = _loads(self._gcs.read(where), self._gcs.uri(where))
        if data is None:
            raise missing_version(self, version)
        data = dict(data)
        data["model_uri"] = self._gcs.uri(f"versions/{version}")
        data["status"] = self._statuses().get(str(version), "registered")
        return ModelVersion.from_dict(data)

    def verify(self, version: int) -> ModelVersion:
        """Check that a version's model file still has its registered sha256.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: The model file is missing or differs from the registered sha256.
        """
        mv = self.get(version)
        data = self._gcs.read(f"versions/{version}/{mv.file}")
        if data is None:
            raise IntegrityError(
                f"model {self.model_name!r} version {version}: {mv.model_uri}/{mv.file} is missing"
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != mv.sha256:
            raise IntegrityError(
                f"model {self.model_name!r} version {version}: {mv.model_uri}/{mv.file} has "
                f"sha256 {actual}, registered {mv.sha256}"
            )
        return mv

    def download(self, version: int, directory: str | Path) -> Path:
        """Copy a version's files into a local folder (sha256 checked) and return it."""
        mv = self.verify(version)
        target = Path(directory)
        for name in self._gcs.list(f"versions/{version}"):
            if name in (".claim", "version.json"):
                continue
            self._gcs.download_file(f"versions/{version}/{name}", target / name)
        actual = hashlib.sha256((target / mv.file).read_bytes()).hexdigest()
        if actual != mv.sha256:
            raise IntegrityError(
                f"model {self.model_name!r} version {version}: downloaded file has sha256 "
                f"{actual}, registered {mv.sha256}"
            )
        return target

    def load_model(self, version: int) -> TrainedModel:
        """Download a version, verify its sha256 and load it.

        Raises:
            RegistryError: The version does not exist.
            IntegrityError: The model file does not match its registered sha256.
        """
        from refit.training.artifacts import load_model

        with tempfile.TemporaryDirectory(prefix="refit-model-") as tmp:
            return load_model(str(self.download(version, tmp)))

    # ----------------------------------------------------------------- refs (aliases + statuses)

    def _refs(self) -> tuple[dict[str, Any], int]:
        raw, generation = self._gcs.read_with_generation("refs.json")
        data = _loads(raw, self._gcs.uri("refs.json")) or {}
        return {
            "aliases": dict(data.get("aliases", {})),
            "statuses": dict(data.get("statuses", {})),
        }, generation

    def _statuses(self) -> dict[str, str]:
        return self._refs()[0]["statuses"]

    def aliases(self) -> dict[str, int]:
        """Return every alias and its version."""
        return self._refs()[0]["aliases"]

    def set_status(self, version: int, status: str) -> None:
        """Set a version's mutable status (one of `STATUSES`).

        Raises:
            RegistryError: Unknown status or version.
        """
        check_status(status)
        self.update_aliases({}, statuses={version: status})

    def update_aliases(
        self,
        changes: Mapping[str, int | None],
        *,
        expected: Mapping[str, int | None] | None = None,
        statuses: Mapping[int, str] | None = None,
    ) -> dict[str, int]:
        """Change several aliases and statuses in one compare-and-swap on ``refs.json``.

        Raises:
            ConflictError: An alias in ``expected`` holds another value (now, or after losing
                the write to a concurrent writer).
            RegistryError: Invalid alias name, unknown version, or unknown status.
        """
        check_alias_changes(changes, statuses)
        touched = {v for v in changes.values() if v is not None} | set(statuses or {})
        check_versions_exist(self, touched)
        for _ in range(_MAX_ATTEMPTS):
            refs, generation = self._refs()
            current = refs["aliases"]
            check_expected(self.model_name, current, expected)
            apply_alias_changes(current, changes)
            refs["statuses"].update({str(v): s for v, s in (statuses or {}).items()})
            refs["txn"] = uuid.uuid4().hex
            if self._gcs.write_if_generation("refs.json", _dumps(refs), generation):
                return dict(current)
        raise ConflictError(
            f"aliases of model {self.model_name!r}: lost {_MAX_ATTEMPTS} compare-and-swap races"
        )

    # ----------------------------------------------------------------- policy state

    def _state_path(self, key: str) -> str:  # type: ignore[override]
        check_state_key(key)
        return f"state/{key}.json"

    def read_state(self, key: str) -> dict[str, Any] | None:
        """Return the JSON state stored under ``key``, or None when absent."""
        self._state_path(key)  # validates the key
        where = f"state/{key}.json"
        return _loads(self._gcs.read(where), self._gcs.uri(where))

    def write_state(self, key: str, data: dict[str, Any]) -> None:
        """Store JSON state under ``key``.

        Raises:
            RegistryError: Invalid key, or ``data`` is not a JSON-serialisable dict.
        """
        self._state_path(key)
        check_state_data(key, data)
        try:
            body = _dumps(dict(data))
        except (TypeError, ValueError) as exc:
            raise state_not_serialisable(key, exc) from exc
        self._gcs.write(f"state/{key}.json", body)
