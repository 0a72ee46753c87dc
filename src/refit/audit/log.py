"""Append-only, tamper-evident audit log (hash-chained JSON lines).

Each line of the log is one record::

    {"seq": 1, "time": "2026-...+00:00", "event": "promotion", "payload": {...},
     "prev_hash": "000...0", "hash": "<sha256 hex>"}

``hash`` is the sha256 hex digest of the canonical JSON (``sort_keys=True``, separators
``(",", ":")``) of the record without its ``hash`` key; ``prev_hash`` is the previous record's
``hash`` (64 zeros for the first record). ``seq`` starts at 1 and grows by one per record.

Appends happen under a file lock (``{path}.lock``), so several processes may append at once.
After each append a small head file (``{path}.head``: last seq and hash) is replaced atomically;
`AuditLog.verify` uses it to notice whole records cut off the end of the log, which the chain alone
cannot reveal.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from refit.errors import IntegrityError
from refit.io.uri import write_file_atomic

GENESIS_HASH = "0" * 64
_FIELDS = ("seq", "time", "event", "payload", "prev_hash", "hash")


def canonical_json(data: Any) -> str:
    """Return the canonical JSON text used for hashing (sorted keys, no spaces, strict).

    Args:
        data: A JSON-serialisable value.

    Returns:
        The canonical JSON string.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def record_hash(record: dict[str, Any]) -> str:
    """Return the sha256 hex digest of a record without its ``hash`` key.

    Args:
        record: An audit record (with or without ``hash``).

    Returns:
        The 64-character hex digest.
    """
    body = {k: v for k, v in record.items() if k != "hash"}
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


class AuditLog:
    """An append-only, hash-chained JSON-lines audit log on the local file system.

    Args:
        path: The log file (created, with its parent folders, on the first append).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = FileLock(str(self.path) + ".lock")

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Append one record and return it (with its ``seq`` and ``hash``).

        Args:
            event: The event name, e.g. ``"promotion"``.
            payload: JSON-serialisable details of the event.

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
            record: dict[str, Any] = {
                "seq": seq,
                "time": _utc_now(),
                "event": str(event),
                "payload": payload,
                "prev_hash": prev_hash,
            }
            record["hash"] = record_hash(record)
            line = canonical_json(record) + "\n"
            with open(self.path, "ab") as fh:
                fh.write(line.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            write_file_atomic(self.head_path, canonical_json({"seq": seq, "hash": record["hash"]}))
        return record

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
        text = self.path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise IntegrityError(
                    f"audit log {self.path} line {number} is not valid JSON: {exc}"
                ) from exc
            if event is None or record.get("event") == event:
                out.append(record)
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
            return problems
        with self._lock:
            data = self.path.read_bytes()
            head_text = self.head_path.read_text("utf-8") if self.head_path.exists() else None
        return verify_records(data, head_text, head_label=f"head file {self.head_path}")


def verify_records(
    data: bytes,
    head_text: str | None,
    *,
    head_label: str = "head file",
    names: list[str] | None = None,
) -> list[str]:
    """Check a hash chain given as JSON lines and return the problems (empty when intact).

    Args:
        data: The log's bytes: one canonical JSON record per line.
        head_text: The head record (``{"seq", "hash"}``) kept beside the log, or None.
        head_label: How to name the head in messages.
        names: For logs stored one object per record: each line's object name, whose seq must
            match the record's (a record moved to another object is reported).

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
    prev_seq: int | None = 0
    prev_hash: str | None = GENESIS_HASH
    last_seq, last_hash = 0, GENESIS_HASH
    for number, raw in enumerate(raw_lines, start=1):
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or set(record) != set(_FIELDS):
                raise ValueError(f"expected keys {list(_FIELDS)}")
            seq = record["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError(f"seq {seq!r} is not an integer")
        except ValueError as exc:
            if not (number == len(raw_lines) and not data.endswith(b"\n")):
                problems.append(f"line {number}: not a valid audit record (garbage): {exc}")
            prev_seq, prev_hash = None, None
            continue
        where = f"line {number} (seq {seq})"
        if names is not None:
            name = names[number - 1]
            where = f"object {name} (seq {seq})"
            stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
            if not stem.isdigit() or int(stem) != seq:
                problems.append(f"{where}: record stored under the wrong name (moved or reordered)")
        if record_hash(record) != record["hash"]:
            problems.append(f"{where}: hash mismatch: record was edited")
        if prev_seq is not None and seq != prev_seq + 1:
            if seq <= prev_seq:
                problems.append(
                    f"{where}: seq {seq} follows seq {prev_seq}: records reordered or duplicated"
                )
            else:
                problems.append(
                    f"{where}: seq {seq} follows seq {prev_seq}: "
                    f"{seq - prev_seq - 1} record(s) removed"
                )
        if prev_hash is not None and record["prev_hash"] != prev_hash:
            problems.append(
                f"{where}: prev_hash does not match the hash of the record before it "
                "(record removed, inserted or reordered)"
            )
        prev_seq, prev_hash = seq, record["hash"]
        last_seq, last_hash = seq, record["hash"]
    if head_text is not None:
        try:
            head = json.loads(head_text)
            head_seq, head_hash = int(head["seq"]), str(head["hash"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"{head_label} is unreadable")
        else:
            if head_seq > last_seq:
                problems.append(
                    f"log truncated: head file records seq {head_seq} but the last intact "
                    f"record is seq {last_seq}"
                )
            elif head_seq == last_seq and head_hash != last_hash:
                problems.append(
                    f"seq {head_seq}: hash differs from the one in the head file "
                    "(last record replaced)"
                )
    return problems
