"""Append-only, tamper-evident audit log (hash-chained JSON lines).

`AuditLog` appends records (under a file lock, with a head file beside the log), reads them and
cuts off a torn last line (`AuditLog.heal`); `verify_records` checks a chain, local or stored one
object per record. The record format, the head file and healing:
docs/decisions/0021-audit-log-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from refit.audit.events import AuditEvent
from refit.audit.keys import Anchor, mac_ok, record_mac
from refit.audit.txn import drop_aborted
from refit.errors import IntegrityError
from refit.io.uri import write_file_atomic

GENESIS_HASH = "0" * 64
_FIELDS = ("seq", "time", "event", "payload", "prev_hash", "hash")
_OPTIONAL = ("txn", "mac")
#: What verify says of a log checked without a key.
KEYLESS_NOTE = (
    "keyless: the hash chain is tamper-evident only against accidental edits (whoever can "
    "write the store can rewrite it); set REFIT_AUDIT_KEY_FILE and REFIT_AUDIT_ANCHOR"
)


def canonical_json(data: Any) -> str:
    """Return the canonical JSON text used for hashing (sorted keys, no spaces, strict).

    Args:
        data: A JSON-serialisable value.

    Returns:
        The canonical JSON string.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def record_hash(record: dict[str, Any]) -> str:
    """Return the sha256 hex digest of a record without its ``hash`` and ``mac`` keys.

    Args:
        record: An audit record (with or without ``hash``).

    Returns:
        The 64-character hex digest.
    """
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def checked_payload(event: Any, payload: Any) -> dict[str, Any]:
    """Check an audit record's event name and payload; return the payload as canonical JSON data.

    Raises:
        ValueError: ``event`` is empty or ``payload`` is not a JSON-serialisable dict.
    """
    if not isinstance(event, str) or not event:
        raise ValueError(f"audit event must be a non-empty string, got {event!r}")
    if not isinstance(payload, dict):
        raise ValueError(f"audit payload for event {event!r} must be a dict, got {payload!r}")
    try:
        return json.loads(canonical_json(payload))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"audit payload for event {event!r} is not JSON-serialisable: {exc}"
        ) from exc


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _last_line(path: Path) -> tuple[bytes | None, bool]:
    """Return (the last line's bytes or None when empty, whether the file ends in a newline).

    Reads backwards from the end in blocks, so appends stay cheap on a long log.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None, True
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None, True
        fh.seek(size - 1)
        ends_newline = fh.read(1) == b"\n"
        end = size - 1 if ends_newline else size
        buf, pos = b"", end
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf  # buf holds bytes [pos, end): the last line and before
            cut = buf.rfind(b"\n")
            if cut != -1:
                return buf[cut + 1 :], ends_newline
        return buf, ends_newline


def new_record(
    seq: int,
    event: str,
    payload: dict[str, Any],
    prev_hash: str,
    txn: dict[str, Any] | None,
    key: bytes | None,
) -> dict[str, Any]:
    """Build a record: its fields, ``txn`` when given, ``hash``, and ``mac`` under ``key``."""
    record: dict[str, Any] = {
        "seq": seq,
        "time": _utc_now(),
        "event": str(event),
        "payload": payload,
        "prev_hash": prev_hash,
    }
    if txn is not None:
        record["txn"] = json.loads(canonical_json(txn))
    record["hash"] = record_hash(record)
    if key is not None:
        record["mac"] = record_mac(key, record["hash"])
    return record


def protection(key: bytes | None, anchor: Anchor | None) -> str:
    """Say how a log with this key and anchor resists tampering (for verify's output)."""
    if key is None:
        return KEYLESS_NOTE + ("" if anchor is None else f"; head anchored at {anchor}")
    where = "not anchored (set REFIT_AUDIT_ANCHOR)" if anchor is None else f"anchored at {anchor}"
    return f"keyed (HMAC-SHA256), {where}"


class AuditLog:
    """An append-only, hash-chained JSON-lines audit log on the local file system.

    Args:
        path: The log file (created, with its parent folders, on the first append).
        key: The HMAC key (`refit.audit.keys.audit_key`); None: records carry no ``mac``.
        anchor: Where each append also writes the head, outside the store; None: nowhere.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | None = None,
        anchor: Anchor | None = None,
    ) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = FileLock(str(self.path) + ".lock")
        self.key = key
        self.anchor = anchor

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(
        self, event: str, payload: dict[str, Any], *, txn: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append one record and return it (with its ``seq`` and ``hash``).

        Args:
            event: The event name, e.g. ``"promotion"``.
            payload: JSON-serialisable details of the event.
            txn: The registry transaction this record commits (`refit.registry.transactions`).

        Returns:
            The record as written.

        Raises:
            ValueError: ``event`` is empty or ``payload`` is not a JSON-serialisable dict.
            IntegrityError: The log's last line is not a complete record (truncated or garbage), so
                the chain cannot be continued safely.
        """
        payload = checked_payload(event, payload)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            last, ends_newline = _last_line(self.path)
            if last is None:
                seq, prev_hash = 1, GENESIS_HASH
            else:
                problem = f"audit log {self.path}: the last line"
                if not ends_newline:
                    raise IntegrityError(f"{problem} is incomplete (truncated); run verify()")
                try:
                    prev = json.loads(last)
                    seq, prev_hash = int(prev["seq"]) + 1, str(prev["hash"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise IntegrityError(
                        f"{problem} is not a valid audit record ({exc}); run verify()"
                    ) from exc
            record = new_record(seq, event, payload, prev_hash, txn, self.key)
            line = canonical_json(record) + "\n"
            with open(self.path, "ab") as fh:
                fh.write(line.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            write_file_atomic(self.head_path, canonical_json({"seq": seq, "hash": record["hash"]}))
            if self.anchor is not None:
                self.anchor.advance(record)
        return record

    def heal(self) -> dict[str, Any] | None:
        """Cut off a torn last line (an append killed midway) and record that it did so.

        Only a final segment without a newline after it is cut, and only when the line before it
        is a record the head file (when present) is not ahead of: the head moves after a complete
        append (a kill between the two leaves it one behind), so the torn bytes were never a
        record anyone relied on. Anything else
        (garbage before the last line, a complete but invalid last line) is left for `verify`.

        Returns:
            The ``audit_repair`` record appended after the cut, or None when nothing was cut.
        """
        with self._lock:
            last, ends_newline = _last_line(self.path)
            if last is None or ends_newline:
                return None
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1
            before = data[: cut - 1].rsplit(b"\n", 1)[-1] if cut else b""
            try:
                prev: dict[str, Any] = (
                    json.loads(before) if before else {"seq": 0, "hash": GENESIS_HASH}
                )
                prev_seq, prev_hash = int(prev["seq"]), str(prev["hash"])
                head: dict[str, Any] = (
                    json.loads(self.head_path.read_text("utf-8"))
                    if self.head_path.exists()
                    else {"seq": prev_seq, "hash": prev_hash}
                )
                head_seq, head_hash = int(head["seq"]), str(head["hash"])
                # a head behind the log is a writer killed between its line and the head (as in
                # `verify_records`); a head ahead of it, or naming another record, means records
                # were cut off the end: never heal over that
                if head_seq > prev_seq or (head_seq == prev_seq and head_hash != prev_hash):
                    return None
            except (ValueError, KeyError, TypeError, OSError):
                return None
            torn = data[cut:]
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
            return self.append(
                AuditEvent.AUDIT_REPAIR,
                {
                    "cut_bytes": len(torn),
                    "cut_sha256": hashlib.sha256(torn).hexdigest(),
                    "after_seq": prev_seq,
                    "reason": "incomplete last line (an append killed midway) cut off",
                },
            )

    def protection(self) -> str:
        """Say how far the log resists tampering (keyed, anchored, or neither)."""
        return protection(self.key, self.anchor)

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Return the records in log order, optionally only those of one event.

        Args:
            event: Keep only records with this event name.

        Returns:
            The records (empty when the log does not exist yet).

        Raises:
            IntegrityError: A line is not valid JSON (use `verify` for a full report).
        """
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise IntegrityError(
                    f"audit log {self.path} line {number} is not valid JSON: {exc}"
                ) from exc
            out.append(record)
        return [r for r in drop_aborted(out) if event is None or r.get("event") == event]

    def records_after(self, seq: int) -> list[dict[str, Any]]:
        """Return every record (aborted transactions included) whose seq is above ``seq``.

        Raises:
            IntegrityError: A line is not valid JSON.
        """
        return [r for r in self._raw_records() if int(r.get("seq", 0)) > seq]

    def _raw_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if number == len(lines):  # no newline after it: an append cut short
                raise IntegrityError(
                    f"audit log {self.path} line {number}: incomplete last line (log truncated "
                    "mid-record); run `refit audit verify`"
                )
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise IntegrityError(
                    f"audit log {self.path} line {number} is not a valid audit record: {exc}"
                ) from exc
        return out

    def verify(self) -> list[str]:
        """Check the whole chain and return the problems found (empty when intact).

        Detects edited records (hash mismatch), removed or inserted records (seq gap, prev_hash
        mismatch), reordered records (seq going backwards), truncated or garbage lines, and records
        cut off the end (head file ahead of the log).

        Returns:
            One readable string per problem, naming the line and seq.
        """
        problems: list[str] = []
        if not self.path.exists():
            if self.head_path.exists():
                problems.append(f"audit log {self.path} is missing but its head file exists")
            if self.anchor is not None and self.anchor.compare(0, {}, self.key):
                problems.append(f"audit log {self.path} is missing but {self.anchor} has a head")
            return problems
        with self._lock:
            data = self.path.read_bytes()
            head_text = self.head_path.read_text("utf-8") if self.head_path.exists() else None
        return verify_records(
            data,
            head_text,
            head_label=f"head file {self.head_path}",
            key=self.key,
            anchor=self.anchor,
        )


def verify_records(
    data: bytes,
    head_text: str | None,
    *,
    head_label: str = "head file",
    names: list[str] | None = None,
    key: bytes | None = None,
    anchor: Anchor | None = None,
) -> list[str]:
    """Check a hash chain given as JSON lines and return the problems (empty when intact).

    Args:
        data: The log's bytes: one canonical JSON record per line.
        head_text: The head record (``{"seq", "hash"}``) kept beside the log, or None.
        head_label: How to name the head in messages.
        names: For logs stored one object per record: each line's object name, whose seq must
            match the record's (a record moved to another object is reported).
        key: The HMAC key: every record from the first MACed one on must carry a valid ``mac``,
            and at least one must (a chain rewritten without the key has none).
        anchor: The head kept outside the store, compared with the log.

    Returns:
        One readable string per problem, naming the line and seq.
    """
    problems: list[str] = []
    if data and not data.endswith(b"\n"):
        n = data.count(b"\n") + 1
        problems.append(f"line {n}: incomplete last line (log truncated mid-record)")
    raw_lines = data.split(b"\n")
    if data.endswith(b"\n"):
        raw_lines = raw_lines[:-1]
    chain = _Chain()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            record = _parse_record(raw)
        except ValueError as exc:
            if not (number == len(raw_lines) and not data.endswith(b"\n")):
                problems.append(f"line {number}: not a valid audit record (garbage): {exc}")
            chain.prev_seq, chain.prev_hash = None, None
            continue
        seq = record["seq"]
        where = f"line {number} (seq {seq})"
        if names is not None:
            where = f"object {names[number - 1]} (seq {seq})"
            problems += _check_name(where, names[number - 1], seq)
        problems += _check_seal(where, record, key, chain)
        problems += _check_link(where, record, chain)
        chain.advance(record)
    if key is not None and raw_lines and not chain.keyed:
        problems.append(
            "no record carries a MAC although the audit key is set: the log was written without "
            "the key, or rewritten by someone who lacks it"
        )
    if anchor is not None:
        problems.extend(anchor.compare(chain.last_seq, chain.by_seq, key))
    if head_text is not None:
        problems += _check_head(head_text, head_label, chain)
    return problems


class _Chain:
    """What `verify_records` carries from one record to the next."""

    def __init__(self) -> None:
        self.prev_seq: int | None = 0  # None: the line before was garbage, nothing to link to
        self.prev_hash: str | None = GENESIS_HASH
        self.last_seq, self.last_hash = 0, GENESIS_HASH
        self.keyed = 0  # records seen that carry a MAC
        self.by_seq: dict[int, str] = {}

    def advance(self, record: dict[str, Any]) -> None:
        """Take ``record`` as the last intact one."""
        self.prev_seq, self.prev_hash = record["seq"], record["hash"]
        self.last_seq, self.last_hash = record["seq"], record["hash"]
        self.by_seq[record["seq"]] = str(record["hash"])


def _parse_record(raw: bytes) -> dict[str, Any]:
    """Parse one line as a record with the documented keys and an integer seq.

    Raises:
        ValueError: It is not JSON, not an object of those keys, or its seq is not an integer.
    """
    record = json.loads(raw)
    if (
        not isinstance(record, dict)
        or not set(_FIELDS) <= set(record)
        or not set(record) <= set(_FIELDS + _OPTIONAL)
    ):
        raise ValueError(f"expected keys {list(_FIELDS)} (and optionally {list(_OPTIONAL)})")
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError(f"seq {seq!r} is not an integer")
    return record


def _check_name(where: str, name: str, seq: int) -> list[str]:
    """A record stored one object per record must sit under its own seq's name."""
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    if not stem.isdigit() or int(stem) != seq:
        return [f"{where}: record stored under the wrong name (moved or reordered)"]
    return []


def _check_seal(where: str, record: dict[str, Any], key: bytes | None, chain: _Chain) -> list[str]:
    """Check a record's hash and, with a key, its MAC (counting MACed records in ``chain``)."""
    problems = []
    if record_hash(record) != record["hash"]:
        problems.append(f"{where}: hash mismatch: record was edited")
    if "mac" in record:
        chain.keyed += 1
        if key is not None and not mac_ok(key, str(record["hash"]), record["mac"]):
            problems.append(
                f"{where}: MAC mismatch: the record was written or rewritten without the "
                "audit key (forged)"
            )
    elif key is not None and chain.keyed:
        problems.append(f"{where}: no MAC after MACed records: written without the audit key")
    return problems


def _check_link(where: str, record: dict[str, Any], chain: _Chain) -> list[str]:
    """Check that a record follows the one before it (seq + 1, and its hash as prev_hash)."""
    problems = []
    seq, prev_seq = record["seq"], chain.prev_seq
    if prev_seq is not None and seq != prev_seq + 1:
        if seq <= prev_seq:
            problems.append(
                f"{where}: seq {seq} follows seq {prev_seq}: records reordered or duplicated"
            )
        else:
            problems.append(
                f"{where}: seq {seq} follows seq {prev_seq}: {seq - prev_seq - 1} record(s) removed"
            )
    if chain.prev_hash is not None and record["prev_hash"] != chain.prev_hash:
        problems.append(
            f"{where}: prev_hash does not match the hash of the record before it "
            "(record removed, inserted or reordered)"
        )
    return problems


def _check_head(head_text: str, head_label: str, chain: _Chain) -> list[str]:
    """Compare the head kept beside the log with the last intact record."""
    try:
        head = json.loads(head_text)
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except (ValueError, KeyError, TypeError):
        return [f"{head_label} is unreadable"]
    if head_seq > chain.last_seq:
        return [
            f"log truncated: head file records seq {head_seq} but the last intact "
            f"record is seq {chain.last_seq}"
        ]
    if head_seq == chain.last_seq and head_hash != chain.last_hash:
        return [
            f"seq {head_seq}: hash differs from the one in the head file (last record replaced)"
        ]
    return []
