"""The model registry: immutable versions, compare-and-swap aliases, policy state and audit log.

One class, `ModelRegistry`, over a `refit.io.storage.Storage`; `open_registry` picks the storage
by the store URI (a local folder or ``gs://bucket/prefix``). Layout under
``{store}/models/{name}/``::

    versions/{n}/.claim        create-only object that reserves number n
    versions/{n}/{files}       copy of the registered model directory
    versions/{n}/version.json  create-only, written last: the version exists once it does
    refs.json                  every mutable state: {"aliases", "statuses", "state", "commit"}
    state/{key}.json           policy state of stores from before transactions (read, moved)
    audit.jsonl                hash-chained audit log, local stores (`refit.audit.AuditLog`)
    audit/                     the same, one object per record, gs:// stores
                               (`refit.audit.objects.ObjectAuditLog`)
    .lock                      local stores: the lock `ModelRegistry.locked` holds

**Transactions.** Aliases, statuses and policy state live in one object, ``refs.json``, and every
change to them is one transaction bound to the audit record that describes it (its ``txn`` field,
see `refit.audit.txn`): either both the new state and its record exist, or neither does.

1. Recover (below), then read ``refs.json`` with its version token; apply the change to a copy
   and check it (the caller's expected alias values, known versions): a refusal writes nothing.
2. Write-ahead: append the audit record carrying the change and the id of the commit it was
   computed from (``base``). If the append fails (a truncated log, no key file, storage down),
   nothing else is written and RegistryError says the state is unchanged.
3. Commit: write ``refs.json`` with ``commit = {id, seq}`` on condition that the token is
   unchanged (local: one file replaced atomically under ``.lock``, held for all three steps;
   ``gs://``: one object under an ``if_generation_match`` precondition).

A record commits when its ``base`` is the last committed id before it in the log (decidable from
the log alone). On ``gs://``, with no lock, two writers can append records on the same base: the
later one is *aborted* (it never takes effect, `AuditLog.records` hides it) and its writer retries
from step 1. **Recovery** (`recover`, run first by every transaction): a writer killed between
steps 2 and 3 leaves a committed record that ``refs.json`` lacks; recovery replays the records
after ``refs.json``'s commit and writes the state they give (roll forward), so the record is never
a lie. A ``refs.json`` whose commit record is missing from the log is tampering, and `check_state`
(``refit audit verify``) reports it together with every difference between the live state and
the state replayed from the whole log.

Recovery also cuts off a torn last audit line (`refit.audit.log.AuditLog.heal`: an append killed
midway, never committed) and records that it did so.

**Registration.** Version numbers are reserved by create-only claims, so concurrent registrations
never share a number; the files are copied, then ``version.json`` is created (a reader never sees
a version before it: a half-copied folder is invisible, its number never reused), then the
registration record is committed as a transaction that sets the version's status to
"registered" (under the lock, locally). A writer killed between ``version.json`` and its record
leaves a version without a status: recovery finds it, checks the log for its registration record
and, when there is none, commits that record from ``version.json`` (which holds every field of it,
the caller's extra ``audit`` fields included), marked ``"recovered": true``. On ``gs://`` another
writer's recovery may record a live writer's version first; that writer then sees the status and
records nothing. `check_state` names a version without a registration record and a record whose
version is missing.
``version.json`` is never rewritten; it holds the version's manifest (the sha256 of every file of
the version folder), checked before loading, verifying and promoting.

Stores written before transactions are migrated: ``aliases.json``/``statuses.json`` (before
``refs.json``) and ``state/{key}.json`` are read until the first transaction, whose record then
holds the whole state (``full``) and whose ``refs.json`` holds it from then on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from refit.audit.events import AuditEvent
from refit.audit.keys import Anchor, audit_anchor, audit_key
from refit.audit.log import AuditLog, checked_payload
from refit.audit.objects import ObjectAuditLog
from refit.audit.txn import Replay, diff_states, drop_aborted, live_part, make_txn, replay
from refit.errors import ConflictError, IntegrityError, RefitError, RegistryError
from refit.io.storage import TEMP_PREFIX, Storage, Token, open_storage
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
        key, anchor_uri = audit_key(), audit_anchor()
        anchor = None if anchor_uri is None else Anchor(anchor_uri, model_name)
        self.audit: AuditLog | ObjectAuditLog = (
            AuditLog(log_path, key=key, anchor=anchor)
            if log_path
            else ObjectAuditLog(self.storage.child("audit"), key=key, anchor=anchor)
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
        if not isinstance(run_label, str):
            raise RegistryError(f"run_label must be a string, got {run_label!r}")
        if parent_version is not None:
            check_version_arg(parent_version, "parent_version")
            if not self.exists(parent_version):
                raise missing_parent(self.model_name, parent_version, self.list_version_numbers())
        check_model_sha(src, meta, _sha256_file(src / meta["file"]))
        files = sorted(p for p in src.rglob("*") if p.is_file())
        manifest = {p.relative_to(src).as_posix(): _sha256_file(p) for p in files}
        own = sorted(
            n for n in manifest if n in _OWN_FILES or n.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)
        )
        if own:
            raise RegistryError(f"model_dir {src} holds {own}: names the registry keeps for itself")
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
        claim = uuid.uuid4().hex.encode()
        for _ in range(_MAX_ATTEMPTS):
            numbers = self._claimed_numbers()
            version = (numbers[-1] if numbers else 0) + 1
            if self.storage.create(f"versions/{version}/.claim", claim):
                break
        else:
            raise ConflictError(f"model {self.model_name!r}: could not reserve a version number")
        folder = f"versions/{version}"
        for path in files:
            self.storage.put_file(f"{folder}/{path.relative_to(src).as_posix()}", path)
        record = stamp_record(record, version, self.storage.uri(folder))
        with self.locked():
            if not self.storage.create(f"{folder}/version.json", dumps_json(record).encode()):
                raise RegistryError(f"{self.storage.uri(folder)} was written twice")
            self._record_registration(version, record)
        return self.get(version)

    def _record_registration(self, version: int, data: Mapping[str, Any]) -> None:
        """Commit a version's registration record (status "registered"), once (module docstring).

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

    # ----------------------------------------------------------------- refs (aliases + statuses)

    def _refs(self) -> tuple[dict[str, Any], Token]:
        """Read ``refs.json`` (or a pre-transaction store's files) and its version token."""
        raw, token = self.storage.read_versioned(_REFS)
        if raw is None and self.storage.local_path(_REFS):  # a local store from before refs.json
            aliases, statuses = self._read_json("aliases.json"), self._read_json("statuses.json")
            data = {"aliases": aliases or {}, "statuses": statuses or {}}
        else:
            data = {} if raw is None else self._parse(_REFS, raw)
        return check_refs(self.storage.uri(_REFS), data), token

    def _legacy_state(self) -> dict[str, Any]:
        """The ``state/{key}.json`` files of a store from before transactions."""
        out = {}
        for name in self.storage.list("state"):
            if name.endswith(".json") and "/" not in name:
                data = self._read_json(f"state/{name}")
                if not isinstance(data, dict):
                    raise RegistryError(
                        f"registry file {self.storage.uri(f'state/{name}')} is corrupt: it must "
                        "hold a JSON object"
                    )
                out[name[: -len(".json")]] = data
        return out

    def _live(self) -> tuple[dict[str, Any], Token]:
        """The current state (legacy state folded in before the first commit) and its token."""
        refs, token = self._refs()
        if refs["commit"] is None:
            refs["state"] = {**self._legacy_state(), **refs["state"]}
        return refs, token

    def recover(self) -> dict[str, Any]:
        """Complete a transaction whose writer died after its audit record (roll forward).

        Replays the records after ``refs.json``'s commit; when one of them commits a change
        ``refs.json`` lacks, writes the state they give. Idempotent; every transaction runs it
        first, so a store heals on its next write.

        Returns:
            The live state after recovery (``aliases``, ``statuses``, ``state``, ``commit``).

        Raises:
            RegistryError: ``refs.json`` or the audit log is unreadable.
        """
        with self.locked():
            return self._recover()[0]

    def _recover(self, registering: int | None = None) -> tuple[dict[str, Any], Token]:
        self.audit.heal()  # a torn last line (append killed midway) is cut off and noted
        for _ in range(_MAX_ATTEMPTS):
            refs, token = self._live()
            commit = refs["commit"]
            rp = Replay(
                state=live_part(refs),
                commit_id=None if commit is None else commit["id"],
                commit_seq=0 if commit is None else commit["seq"],
            )
            for record in self._audit_after(rp.commit_seq):
                rp.feed(record)
            if rp.commit_seq != (0 if commit is None else commit["seq"]):
                body = {**rp.state, "commit": {"id": rp.commit_id, "seq": rp.commit_seq}}
                self.storage.write_if(_REFS, dumps_json(body).encode(), token)
                continue
            unrecorded = self._unrecorded(refs, registering)
            if not unrecorded:
                return refs, token
            version, data = unrecorded[0]  # its writer died after version.json: roll forward
            self._attempt(
                refs,
                token,
                _register_status(version),
                AuditEvent.REGISTRATION,
                {**registration_payload(data), "recovered": True},
            )
        raise ConflictError(f"model {self.model_name!r}: recovery lost {_MAX_ATTEMPTS} races")

    def _unrecorded(
        self, refs: Mapping[str, Any], registering: int | None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Versions whose ``version.json`` exists but whose registration record does not.

        A registration record sets the version's status, so only a version without a status
        needs the log read (versions registered before transactions, or unrecorded ones).
        ``registering`` (a version whose live writer is recording it) is left out.
        """
        numbers = [
            n
            for n in self.list_version_numbers()
            if str(n) not in refs["statuses"] and n != registering
        ]
        if not numbers:
            return []
        recorded = self._registered_in_log()
        out = []
        for n in numbers:
            if n not in recorded:
                data = self._read_json(f"versions/{n}/version.json")
                if isinstance(data, dict):
                    out.append((n, data))
        return out

    def _registered_in_log(self) -> set[Any]:
        try:
            records = self.audit.records(AuditEvent.REGISTRATION)
        except IntegrityError as exc:
            raise RegistryError(
                f"model {self.model_name!r}: cannot read the audit log to recover the registry "
                f"state: {exc}"
            ) from exc
        return {r.get("payload", {}).get("version") for r in records}

    def _audit_after(self, seq: int) -> list[dict[str, Any]]:
        try:
            return self.audit.records_after(seq)
        except IntegrityError as exc:
            raise RegistryError(
                f"model {self.model_name!r}: cannot read the audit log to recover the registry "
                f"state: {exc}"
            ) from exc

    def transact(
        self,
        mutate: Callable[[dict[str, Any]], None],
        event: str,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        """Change the mutable state and record it in one transaction (module docstring).

        Args:
            mutate: Changes a copy of the state (``aliases``, ``statuses``, ``state``) in place;
                it may raise (ConflictError, RegistryError) to refuse, and nothing is written.
            event: The audit event that records the change.
            payload: Its payload.

        Returns:
            The new state (the three maps).

        Raises:
            RegistryError: The audit record could not be written (the state is unchanged), or the
                store is unreadable.
            ConflictError: ``mutate`` refused, or too many lost races.
        """
        return self._transact(mutate, event, payload)

    def _transact(
        self,
        mutate: Callable[[dict[str, Any]], None],
        event: str,
        payload: dict[str, Any],
        registering: int | None = None,
    ) -> dict[str, Any]:
        """Run `transact`; ``registering`` is the version whose registration this records.

        Its writer is alive, so recovery must not record that version instead.
        """
        with self.locked():
            for _ in range(_MAX_ATTEMPTS):
                try:
                    refs, token = self._recover(registering)
                except RegistryError as exc:
                    raise RegistryError(
                        f"model {self.model_name!r}: the {event} was not applied (registry state "
                        f"unchanged): {exc}"
                    ) from exc
                new = self._attempt(refs, token, mutate, event, payload)
                if new is not None:
                    return new
        raise ConflictError(
            f"model {self.model_name!r}: lost {_MAX_ATTEMPTS} races to change the registry"
        )

    def _attempt(
        self,
        refs: dict[str, Any],
        token: Token,
        mutate: Callable[[dict[str, Any]], None],
        event: str,
        payload: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Steps 2 and 3 of a transaction on ``refs``; None: lost a race (gs://), retry."""
        commit = refs["commit"]
        base = None if commit is None else commit["id"]
        old = live_part(refs)
        new = copy.deepcopy(old)
        mutate(new)
        txn = make_txn(uuid.uuid4().hex, base, old, new)
        try:
            record = self.audit.append(event, payload, txn=txn)
        except (RefitError, OSError, ValueError) as exc:
            raise RegistryError(
                f"model {self.model_name!r}: the {event} was not applied (registry state "
                f"unchanged) because its audit record could not be written: {exc}"
            ) from exc
        if self.storage.local_path(_REFS) is None and not self._won(record, commit):
            return None  # an earlier record on the same base won (gs://): it is aborted
        body = {**new, "commit": {"id": txn["id"], "seq": record["seq"]}}
        if not self.storage.write_if(_REFS, dumps_json(body).encode(), token):
            self._recover()  # our record is the committed one: roll it forward
        return new

    def _won(self, record: Mapping[str, Any], commit: Mapping[str, Any] | None) -> bool:
        """Whether ``record`` commits (no earlier record on the same base), without a lock."""
        rp = Replay(
            commit_id=None if commit is None else commit["id"],
            commit_seq=0 if commit is None else commit["seq"],
        )
        for r in self._audit_after(rp.commit_seq):
            if r.get("seq", 0) > record["seq"]:
                break
            rp.feed(r)
        return record["seq"] in rp.committed

    def check_state(self) -> list[str]:
        """Compare the live state with the state the audit log gives; return the problems.

        Replays every committed transaction record of the log (`refit.audit.txn.replay`) and
        names each alias, status or state key whose live value differs, and a live commit the
        log does not hold. A store with no transaction yet (written before them) has nothing to
        compare and returns no problem.

        Returns:
            One readable string per problem (empty: the live state is what the log says).
        """
        try:
            refs, _ = self._live()
            records = self.audit.records_after(0)
        except RefitError as exc:
            return [str(exc)]
        logged = replay(records)
        problems = self._check_registrations(records)
        commit = refs["commit"]
        if commit is None:
            if logged.commit_id is None:
                return problems
            return [
                *problems,
                f"refs.json has no commit but the log commits transaction {logged.commit_id} "
                f"(seq {logged.commit_seq}): the state object was replaced or removed",
            ]
        if commit["id"] != logged.commit_id:
            ids = {
                r.get("seq"): r["txn"].get("id") for r in records if isinstance(r.get("txn"), dict)
            }
            if (
                commit["seq"] in logged.committed
                and ids.get(commit["seq"]) == commit["id"]
                and logged.committed[-1] > commit["seq"]
            ):
                problems.append(
                    f"refs.json is behind the log (commit seq {commit['seq']}, log seq "
                    f"{logged.commit_seq}): a writer died mid-transaction; run "
                    "`refit audit recover`"
                )
                return problems
            problems.append(
                f"refs.json commit {commit['id']} (seq {commit['seq']}) is not the last "
                f"transaction the log commits ({logged.commit_id}, seq {logged.commit_seq}): the "
                "state was written without its audit record"
            )
        problems += [f"state differs from the log: {d}" for d in diff_states(refs, logged.state)]
        return problems

    def _check_registrations(self, records: list[dict[str, Any]]) -> list[str]:
        """Name each version without a registration record, and each record without a version."""
        versions = set(self.list_version_numbers())
        logged = {
            r.get("payload", {}).get("version")
            for r in drop_aborted(records)
            if r.get("event") == AuditEvent.REGISTRATION
        }
        problems = [
            f"version {v} has a version.json but no registration record in the log (its writer "
            "died mid-registration); run `refit audit recover`"
            for v in sorted(versions - logged)
        ]
        problems += [
            f"the log records the registration of version {v!r} but "
            f"{self.storage.uri(f'versions/{v}/version.json')} is missing"
            for v in sorted(logged - versions, key=str)
        ]
        return problems

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


def _register_status(version: int) -> Callable[[dict[str, Any]], None]:
    def mutate(live: dict[str, Any]) -> None:
        live["statuses"].setdefault(str(version), "registered")

    return mutate


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


def check_refs(where: str, data: Any) -> dict[str, Any]:
    """Return a state object's maps and commit, checked.

    Raises:
        RegistryError: It is not an object of the documented shape (corrupt).
    """

    def bad(what: str) -> RegistryError:
        return RegistryError(f"registry file {where} is corrupt: {what}")

    if not isinstance(data, dict):
        raise bad("it must hold a JSON object")
    out: dict[str, Any] = {}
    for name in ("aliases", "statuses", "state"):
        value = data.get(name)
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise bad(f"{name!r} must be an object, got {type(value).__name__}")
        out[name] = dict(value)
    for alias, version in out["aliases"].items():
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise bad(f"alias {alias!r} points at {version!r}, not a version number")
    for version, status in out["statuses"].items():
        if not str(version).isdigit() or not isinstance(status, str):
            raise bad(f"status entry {version!r}: {status!r}")
    for key, value in out["state"].items():
        if not isinstance(value, dict):
            raise bad(f"state {key!r} must be an object, got {type(value).__name__}")
    commit = data.get("commit")
    if commit is not None and (
        not isinstance(commit, dict)
        or not isinstance(commit.get("id"), str)
        or isinstance(commit.get("seq"), bool)
        or not isinstance(commit.get("seq"), int)
    ):
        raise bad(f"'commit' must be {{'id': str, 'seq': int}}, got {commit!r}")
    out["commit"] = commit
    return out
