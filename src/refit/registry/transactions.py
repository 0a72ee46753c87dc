"""Registry transactions: ``refs.json``, the write-ahead audit record, recovery, `check_state`.

`RegistryState`, the base of `refit.registry.core.ModelRegistry`, opens a model's storage and
audit log, reads ``refs.json`` (or the files of a store from before transactions) and runs every
change to aliases, statuses and policy state as one transaction bound to its audit record, rolling
forward a writer killed midway. The protocol: docs/decisions/0002-write-ahead-audit-transactions.md;
the store's layout: docs/decisions/0020-registry-store-layout.md.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from refit.audit.events import AuditEvent
from refit.audit.keys import Anchor, audit_anchor, audit_key
from refit.audit.log import AuditLog
from refit.audit.objects import ObjectAuditLog
from refit.audit.txn import Replay, diff_states, drop_aborted, live_part, make_txn, replay
from refit.errors import ConflictError, IntegrityError, RefitError, RegistryError
from refit.io.storage import Storage, Token, open_storage
from refit.registry.records import check_model_name, dumps_json, registration_payload

__all__ = ["MAX_ATTEMPTS", "RegistryState", "check_refs"]

#: How many lost races (claims, compare-and-swap writes) a writer retries before giving up.
MAX_ATTEMPTS: Final = 64
_REFS: Final = "refs.json"


class RegistryState:
    """One model's storage, audit log and mutable state, changed by transactions.

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

    def list_version_numbers(self) -> list[int]:
        """Return the registered version numbers, ascending."""
        return sorted(
            int(n.split("/")[0])
            for n in self.storage.list("versions")
            if n.endswith("/version.json") and n.count("/") == 1 and n.split("/")[0].isdigit()
        )

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
        for _ in range(MAX_ATTEMPTS):
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
        raise ConflictError(f"model {self.model_name!r}: recovery lost {MAX_ATTEMPTS} races")

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
        """Change the mutable state and record it in one transaction (decision 0002).

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
            for _ in range(MAX_ATTEMPTS):
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
            f"model {self.model_name!r}: lost {MAX_ATTEMPTS} races to change the registry"
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


def _register_status(version: int) -> Callable[[dict[str, Any]], None]:
    def mutate(live: dict[str, Any]) -> None:
        live["statuses"].setdefault(str(version), "registered")

    return mutate


def check_refs(where: str, data: Any) -> dict[str, Any]:
    """Return a state object's maps and commit, checked.

    Raises:
        RegistryError: It is not an object of the documented shape (corrupt).
    """
    if not isinstance(data, dict):
        raise _corrupt(where, "it must hold a JSON object")
    out: dict[str, Any] = {}
    for name, bad_entry in _MAP_CHECKS.items():
        value = data.get(name)
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise _corrupt(where, f"{name!r} must be an object, got {type(value).__name__}")
        for key, entry in value.items():
            problem = bad_entry(key, entry)
            if problem:
                raise _corrupt(where, problem)
        out[name] = dict(value)
    commit = data.get("commit")
    if commit is not None and not _is_commit(commit):
        raise _corrupt(where, f"'commit' must be {{'id': str, 'seq': int}}, got {commit!r}")
    out["commit"] = commit
    return out


def _corrupt(where: str, what: str) -> RegistryError:
    return RegistryError(f"registry file {where} is corrupt: {what}")


def _bad_alias(alias: str, version: Any) -> str | None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"alias {alias!r} points at {version!r}, not a version number"
    return None


def _bad_status(version: str, status: Any) -> str | None:
    if not str(version).isdigit() or not isinstance(status, str):
        return f"status entry {version!r}: {status!r}"
    return None


def _bad_state(key: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"state {key!r} must be an object, got {type(value).__name__}"
    return None


#: Each map of ``refs.json`` and the check of one of its entries (None: fine, else the problem).
_MAP_CHECKS: Final[dict[str, Callable[[str, Any], str | None]]] = {
    "aliases": _bad_alias,
    "statuses": _bad_status,
    "state": _bad_state,
}


def _is_commit(commit: Any) -> bool:
    return (
        isinstance(commit, dict)
        and isinstance(commit.get("id"), str)
        and isinstance(commit.get("seq"), int)
        and not isinstance(commit.get("seq"), bool)
    )
