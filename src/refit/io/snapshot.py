"""Content-addressed, immutable data snapshots.

A snapshot is the canonical Parquet serialisation of a table, stored under
``{store_uri}/snapshots/{sha256}.parquet`` next to a ``{sha256}.json`` record. The same content
always gives the same sha256, and an existing snapshot is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, IntegrityError
from refit.io import uri as _uri
from refit.io.tables import canonical_parquet_bytes, read_parquet_bytes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Snapshot:
    """Record of one stored snapshot.

    Attributes:
        sha256: Hex sha256 of the Parquet file (the snapshot's identity).
        uri: URI of the Parquet file.
        rows: Number of rows.
        columns: Column names in order.
        source: Where the data came from (free text, usually a URI).
        time_window: ``(min, max)`` of the time column as ISO strings, or None.
        created_at: UTC ISO time the snapshot was first written.
    """

    sha256: str
    uri: str
    rows: int
    columns: list[str]
    source: str
    time_window: tuple[str, str] | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out["columns"] = list(self.columns)
        out["time_window"] = list(self.time_window) if self.time_window else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        """Build a Snapshot from ``to_dict`` output.

        Raises:
            DataError: A field is missing.
        """
        try:
            window = data.get("time_window")
            return cls(
                sha256=str(data["sha256"]),
                uri=str(data["uri"]),
                rows=int(data["rows"]),
                columns=[str(c) for c in data["columns"]],
                source=str(data["source"]),
                time_window=(str(window[0]), str(window[1])) if window else None,
                created_at=str(data["created_at"]),
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise DataError(f"invalid snapshot record: {exc!r} in {data!r}") from exc


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _time_window(table: pa.Table, time_column: str | None) -> tuple[str, str] | None:
    if time_column is None:
        return None
    if time_column not in table.column_names:
        raise DataError(
            f"time column {time_column!r} is not in the table (columns: {table.column_names})"
        )
    column = table.column(time_column)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        extremes = pc.min_max(column)
    except pa.ArrowNotImplementedError as exc:
        raise DataError(
            f"time column {time_column!r} has type {column.type}, which has no order"
        ) from exc
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is None or high is None:
        return None
    return _iso(low), _iso(high)


def _paths(store_uri: str, sha256: str) -> tuple[str, str]:
    folder = _uri.join(store_uri, "snapshots")
    return _uri.join(folder, f"{sha256}.parquet"), _uri.join(folder, f"{sha256}.json")


def snapshot_uri(store_uri: str, sha256: str) -> str:
    """Return where the snapshot ``sha256``'s Parquet file is stored (its content address).

    Raises:
        DataError: The sha256 is malformed.
    """
    if not _SHA256.match(sha256):
        raise DataError(f"invalid snapshot sha256 {sha256!r}: expected 64 lowercase hex digits")
    return _paths(store_uri, sha256)[0]


def create_snapshot(
    table: pa.Table, store_uri: str, source: str, time_column: str | None = None
) -> Snapshot:
    """Store a table as an immutable, content-addressed snapshot.

    Idempotent: storing the same content again returns the existing record and rewrites nothing.

    Args:
        table: The data.
        store_uri: Root of the store (local, ``file://`` or ``gs://``).
        source: Where the data came from, recorded as is.
        time_column: Column whose min and max give ``time_window``.

    Returns:
        The snapshot record.

    Raises:
        DataError: ``time_column`` is missing or unordered, or the store cannot be written.
    """
    window = _time_window(table, time_column)
    data = canonical_parquet_bytes(table)
    sha = hashlib.sha256(data).hexdigest()
    data_uri, meta_uri = _paths(store_uri, sha)
    existing = None
    if _uri.exists(meta_uri):
        existing = Snapshot.from_dict(json.loads(_uri.read_bytes(meta_uri)))
    if not _uri.exists(data_uri):
        _uri.write_bytes(data_uri, data)
    if existing is not None:
        return existing
    snap = Snapshot(
        sha256=sha,
        uri=data_uri,
        rows=table.num_rows,
        columns=list(table.column_names),
        source=source,
        time_window=window,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    record = json.dumps(snap.to_dict(), indent=2, sort_keys=True).encode()
    _uri.write_bytes(meta_uri, record)
    return snap


def load_snapshot(store_uri: str, sha256: str) -> tuple[pa.Table, Snapshot]:
    """Load a snapshot, verifying its content against its sha256.

    Args:
        store_uri: Root of the store.
        sha256: The snapshot's sha256 (64 lowercase hex digits).

    Returns:
        ``(table, record)``.

    Raises:
        DataError: The sha256 is malformed or the snapshot does not exist.
        IntegrityError: The stored bytes do not hash to ``sha256``.
    """
    if not _SHA256.match(sha256):
        raise DataError(f"invalid snapshot sha256 {sha256!r}: expected 64 lowercase hex digits")
    data_uri, meta_uri = _paths(store_uri, sha256)
    data = _uri.read_bytes(data_uri)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"snapshot {data_uri} is corrupt: content sha256 is {actual}, expected {sha256}"
        )
    table = read_parquet_bytes(data, data_uri)
    if _uri.exists(meta_uri):
        snap = Snapshot.from_dict(json.loads(_uri.read_bytes(meta_uri)))
        if snap.sha256 != sha256:
            raise IntegrityError(
                f"snapshot record {meta_uri} names sha256 {snap.sha256}, expected {sha256}"
            )
    else:
        snap = Snapshot(
            sha256=sha256,
            uri=data_uri,
            rows=table.num_rows,
            columns=list(table.column_names),
            source="",
            time_window=None,
            created_at="",
        )
    return table, snap
