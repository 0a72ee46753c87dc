"""The hash-chained audit log in object storage (``gs://``): one object per record.

It needs only the `refit.io.storage.Storage` primitives (create-only writes, compare-and-swap,
listing), so it runs on any storage; the registry uses it for ``gs://`` stores and the JSON-lines
`refit.audit.log.AuditLog` for local folders.

Layout under the log's prefix (e.g. ``gs://bucket/store/models/NAME/audit/``)::

    000000000001.json   record seq 1 (canonical JSON, same fields as the local log)
    000000000002.json   ...
    HEAD                {"seq": N, "hash": "..."}: the last appended record

An append is a compare-and-swap on the next sequence number: the record object is created with
``if_generation_match=0`` (create only). Two writers that read the same tail race for the same
name; exactly one create succeeds, the other re-reads the tail and retries with the next number,
chaining onto the winner's hash. ``HEAD`` is moved forward afterwards (generation match too), so
`ObjectAuditLog.verify` notices records deleted off the end, which the chain alone cannot reveal.
Objects are immutable once written; an edited, removed, moved or reordered record shows up as a
hash mismatch, a seq gap, a prev_hash mismatch or a name/seq mismatch.

There is no torn record to heal here (`ObjectAuditLog.heal`): an object upload is atomic, so a
writer killed mid-append leaves either the whole record or none. A record object that is garbled
or missing before the last is tampering: reading past it raises IntegrityError (registry writes
refuse, the state unchanged) and `ObjectAuditLog.verify` names it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from refit.audit.log import (
    GENESIS_HASH,
    canonical_json,
    checked_payload,
    new_record,
    protection,
    verify_records,
)
from refit.audit.txn import drop_aborted
from refit.errors import ConflictError, IntegrityError

if TYPE_CHECKING:  # pragma: no cover
    from refit.audit.keys import Anchor
    from refit.io.storage import Storage

_RECORD_RE = re.compile(r"^(\d{12})\.json$")
_MAX_ATTEMPTS = 64


class ObjectAuditLog:
    """An append-only, hash-chained audit log stored as one object per record.

    Args:
        storage: The log's folder (e.g. ``GcsStorage("gs://bucket/store/models/NAME/audit")``).
        key: The HMAC key (`refit.audit.keys.audit_key`); None: records carry no ``mac``.
        anchor: Where each append also writes the head, outside the store; None: nowhere.
    """

    def __init__(
        self, storage: Storage, *, key: bytes | None = None, anchor: Anchor | None = None
    ) -> None:
        self._store = storage
        self.uri = storage.uri()
        self.key = key
        self.anchor = anchor

    def protection(self) -> str:
        """Say how far the log resists tampering (keyed, anchored, or neither)."""
        return protection(self.key, self.anchor)

    def __repr__(self) -> str:
        return f"ObjectAuditLog({self.uri!r})"

    def heal(self) -> None:
        """Nothing to cut: an object is written whole or not at all (module docstring)."""
        return None

    @property
    def path(self) -> str:
        """The log's location (a ``gs://`` prefix)."""
        return self.uri

    def _names(self) -> list[str]:
        return sorted(n for n in self._store.list("") if _RECORD_RE.match(n))

    def append(
        self, event: str, payload: dict[str, Any], *, txn: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append one record (create-only object named by its seq) and return it.

        ``txn`` is the registry transaction the record commits (`refit.registry.transactions`).

        Raises:
            ValueError: ``event`` is empty or ``payload`` is not a JSON-serialisable dict.
            IntegrityError: The last record cannot be parsed.
            ConflictError: Lost the race for the next seq too many times in a row.
        """
        payload = checked_payload(event, payload)
        for _ in range(_MAX_ATTEMPTS):
            seq, prev_hash = self._tail()
            seq += 1
            record = new_record(seq, event, payload, prev_hash, txn, self.key)
            body = (canonical_json(record) + "\n").encode("utf-8")
            if self._store.create(f"{seq:012d}.json", body):
                self._advance_head(seq, record["hash"])
                if self.anchor is not None:
                    self.anchor.advance(record)
                return record
        raise ConflictError(
            f"audit log {self.uri}: lost the race for the next record {_MAX_ATTEMPTS} times"
        )

    def _parse(self, name: str, raw: bytes | None) -> tuple[int, str]:
        try:
            prev = json.loads(raw or b"")
            return int(prev["seq"]), str(prev["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"audit log {self.uri}: record {name} is not valid ({exc}); run verify()"
            ) from exc

    def _tail(self) -> tuple[int, str]:
        """Return the last record's (seq, hash): from HEAD, then forward while records exist.

        HEAD may lag behind a writer that has not moved it yet; walking forward from it finds
        the real tail in a request or two instead of listing the whole log.
        """
        seq, digest = 0, GENESIS_HASH
        head, _ = self._store.read_versioned("HEAD")
        if head is not None:
            try:
                at = int(json.loads(head)["seq"])
            except (ValueError, KeyError, TypeError):
                at = 0
            if at > 0:
                raw = self._store.read(f"{at:012d}.json")
                if raw is None:  # HEAD moves only after its record exists: it was deleted
                    raise IntegrityError(
                        f"audit log {self.uri}: record {at:012d}.json, the last one HEAD names, "
                        "is missing (deleted); run verify()"
                    )
                seq, digest = self._parse(f"{at:012d}.json", raw)
        elif self._names():
            last = self._names()[-1]
            seq, digest = self._parse(last, self._store.read(last))
        while True:
            name = f"{seq + 1:012d}.json"
            raw = self._store.read(name)
            if raw is None:
                return seq, digest
            seq, digest = self._parse(name, raw)

    def _advance_head(self, seq: int, digest: str) -> None:
        for _ in range(_MAX_ATTEMPTS):
            raw, generation = self._store.read_versioned("HEAD")
            if raw is not None:
                try:
                    if int(json.loads(raw)["seq"]) >= seq:
                        return
                except (ValueError, KeyError, TypeError):
                    pass
            body = canonical_json({"seq": seq, "hash": digest}).encode("utf-8")
            if self._store.write_if("HEAD", body, generation):
                return

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Return the records in seq order, optionally only those of one event.

        Raises:
            IntegrityError: A record is not valid JSON (use `verify` for a full report).
        """
        out = []
        for name in self._names():
            try:
                record = json.loads(self._store.read(name) or b"")
            except ValueError as exc:
                raise IntegrityError(f"audit record {self.uri}/{name} is not valid JSON") from exc
            out.append(record)
        return [r for r in drop_aborted(out) if event is None or r.get("event") == event]

    def records_after(self, seq: int) -> list[dict[str, Any]]:
        """Return every record (aborted transactions included) whose seq is above ``seq``.

        Walks forward from ``seq + 1`` until a record is missing: a request per record, without
        listing the whole log.

        Raises:
            IntegrityError: A record is not valid JSON.
        """
        out: list[dict[str, Any]] = []
        while True:
            name = f"{seq + 1:012d}.json"
            raw = self._store.read(name)
            if raw is None:
                return out
            try:
                record = json.loads(raw)
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError) as exc:
                raise IntegrityError(f"audit record {self.uri}/{name} is not valid: {exc}") from exc
            out.append(record)

    def verify(self) -> list[str]:
        """Check the whole chain and return the problems (empty when intact).

        Returns:
            One readable string per problem, naming the object and seq.
        """
        names = self._names()
        lines = []
        for name in names:
            raw = (self._store.read(name) or b"").rstrip(b"\n").replace(b"\n", b" ")
            lines.append(raw + b"\n")
        head, _ = self._store.read_versioned("HEAD")
        head_text = None if head is None else head.decode("utf-8", "replace")
        if not names:
            problems = []
            if head_text is not None:
                problems.append(f"audit log {self.uri} has no records but its HEAD exists")
            if self.anchor is not None and self.anchor.compare(0, {}, self.key):
                problems.append(f"audit log {self.uri} has no records but {self.anchor} has a head")
            return problems
        return verify_records(
            b"".join(lines),
            head_text,
            head_label=f"head {self.uri}/HEAD",
            names=[f"{self.uri}/{n}" for n in names],
            key=self.key,
            anchor=self.anchor,
        )
