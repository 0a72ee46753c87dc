"""Training windows: which stored snapshots a challenger trains on, and how much each weighs.

By default a challenger trains on the current window alone. A training-window policy (the
training step's ``training_window`` dict) widens that to earlier windows of the same model:

- ``windows``: the last K windows, the current one included (1: the current window only);
- ``since``: only windows whose data reaches this time or later (ISO 8601): a window's time is
  the end of its time column's range when the snapshot recorded one and it reads as a time,
  else when the snapshot was stored;
- ``recency_half_life``: rows of a window ``a`` windows older than the current one weigh
  ``0.5 ** (a / recency_half_life)`` (sample weights); 0 (default): all rows weigh 1.

The earlier windows are the snapshots the model's runs trained from, in the order its audit
log recorded them (``anonymization`` records: the snapshots the privacy step wrote, the same
bytes the training step read), up to the current window's first appearance, so a window replayed
later selects the same predecessors. Each is loaded by its content address and checked against
its sha256, and its PII marks are checked as the current window's are.

Two halves, so that training stays a pure (cacheable) step: :func:`load_earlier_windows` reads
the store (the pipeline's ``select_training_windows`` task), and :func:`combine_windows` puts
its rows beside the current window's training rows with their weights (the training task).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from refit.errors import DataError, SchemaError

__all__ = [
    "MAX_WINDOWS",
    "TrainingWindow",
    "WindowPart",
    "combine_windows",
    "earlier_windows",
    "load_earlier_windows",
    "recency_weights",
]

#: Most windows one training may read.
MAX_WINDOWS = 520

#: The audit event whose records list the snapshots the model's runs trained from.
HISTORY_EVENT = "anonymization"


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} {value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class TrainingWindow:
    """A training-window policy (see the module docstring).

    Attributes:
        windows: The last K windows, the current one included (1 to :data:`MAX_WINDOWS`).
        since: ISO 8601 time; windows whose data ends before it are left out ("": no bound).
        recency_half_life: Windows after which a row's weight halves; 0: no weights.
    """

    windows: int = 1
    since: str = ""
    recency_half_life: float = 0.0

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> TrainingWindow:
        """Build and check a policy from a dict; None or ``{}``: the current window only.

        A dict naming ``since`` without ``windows`` reads back as far as :data:`MAX_WINDOWS`.

        Raises:
            SchemaError: An unknown key, or a value of the wrong type or out of range.
        """
        value = dict(value or {})
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise SchemaError(
                f"training_window has unknown key(s) {unknown}; known keys: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        if "since" in value and "windows" not in value:
            value["windows"] = MAX_WINDOWS
        windows = value.get("windows", 1)
        if isinstance(windows, float) and windows.is_integer():
            windows = int(windows)  # KFP sends numbers as doubles
        if isinstance(windows, bool) or not isinstance(windows, int):
            raise SchemaError(f"training_window.windows must be an integer, got {windows!r}")
        if not 1 <= windows <= MAX_WINDOWS:
            raise SchemaError(
                f"training_window.windows must be in [1, {MAX_WINDOWS}], got {windows}"
            )
        since = value.get("since", "")
        if not isinstance(since, str):
            raise SchemaError(f"training_window.since must be an ISO 8601 string, got {since!r}")
        if since:
            _parse_time(since, "training_window.since")
        half = value.get("recency_half_life", 0.0)
        if isinstance(half, bool) or not isinstance(half, (int, float)) or not half >= 0:
            raise SchemaError(
                f"training_window.recency_half_life must be a number >= 0, got {half!r}"
            )
        return cls(windows=windows, since=since, recency_half_life=float(half))

    @property
    def widened(self) -> bool:
        """Whether earlier windows are read at all."""
        return self.windows > 1

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass
class WindowPart:
    """One window in a training set.

    Attributes:
        sha256: The snapshot's content hash.
        rows: Its rows in the training set (the current window's: after the holdout).
        age: Windows before the current one (0: the current window).
        weight: Each of its rows' sample weight.
        time: The window's time as the policy read it (ISO), or "".
        run_label: The run that recorded it ("" for the current window).
    """

    sha256: str
    rows: int
    age: int
    weight: float = 1.0
    time: str = ""
    run_label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowPart:
        """Build a part from :meth:`to_dict` output.

        Raises:
            DataError: A field is missing or has the wrong type.
        """
        try:
            return cls(
                sha256=str(data["sha256"]),
                rows=int(data["rows"]),
                age=int(data["age"]),
                weight=float(data.get("weight", 1.0)),
                time=str(data.get("time") or ""),
                run_label=str(data.get("run_label") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"invalid training window record {data!r}: {exc!r}") from exc


def earlier_windows(
    records: Iterable[Mapping[str, Any]], current_sha256: str
) -> list[Mapping[str, Any]]:
    """The snapshot records of the model's windows before the current one, oldest first.

    Args:
        records: The model's audit records (``event`` and ``payload``), in log order.
        current_sha256: The current window's snapshot sha256.

    Returns:
        The payloads of :data:`HISTORY_EVENT` records, one per snapshot (its first record),
        up to the current snapshot's first record (all of them when it has none).
    """
    seen: set[str] = set()
    out: list[Mapping[str, Any]] = []
    for record in records:
        if record.get("event") != HISTORY_EVENT:
            continue
        payload = record.get("payload") or {}
        sha = str(payload.get("sha256") or "")
        if not sha or sha in seen:
            continue
        if sha == current_sha256:
            break
        seen.add(sha)
        out.append(payload)
    return out


def recency_weights(parts: Sequence[WindowPart], half_life: float) -> np.ndarray:
    """One weight per row of ``parts`` concatenated in order (all 1 when ``half_life`` is 0)."""
    for part in parts:
        part.weight = 0.5 ** (part.age / half_life) if half_life > 0 else 1.0
    return np.concatenate([np.full(p.rows, p.weight) for p in parts]) if parts else np.zeros(0)


def _window_time(snapshot: Any) -> dt.datetime | None:
    if snapshot.time_window:
        try:
            return _parse_time(str(snapshot.time_window[1]), "time")
        except SchemaError:
            pass
    if snapshot.created_at:
        try:
            return _parse_time(snapshot.created_at, "created_at")
        except SchemaError:
            return None
    return None


def _aligned(table: pa.Table, schema: pa.Schema, sha256: str) -> pa.Table:
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DataError(
            f"training window: snapshot {sha256[:12]} lacks column(s) {missing} of the current "
            "window, so it cannot join the training data: narrow training_window (fewer "
            "windows, or a later since)"
        )
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"training window: snapshot {sha256[:12]}'s column types do not convert to the "
            f"current window's ({exc}): narrow training_window"
        ) from exc


def load_earlier_windows(
    policy: TrainingWindow,
    current_sha256: str,
    current_schema: pa.Schema,
    *,
    store_uri: str,
    model_name: str,
    current_pii: Sequence[str] = (),
) -> tuple[list[WindowPart], pa.Table]:
    """Read the earlier windows the policy picks from the store.

    Args:
        policy: The training-window policy.
        current_sha256: The current window's snapshot sha256.
        current_schema: The current window's schema; earlier rows are given its columns and
            types.
        store_uri: Root of refit's store (snapshots, audit log).
        model_name: The model whose windows are read.
        current_pii: The current window's PII-marked columns; an earlier window must have
            handled those it holds as well as its own.

    Returns:
        The earlier windows, oldest first (``age`` counts back from the current window), and
        their rows in that order (no rows when the policy reads none).

    Raises:
        DataError: An earlier snapshot lacks a column or type of the current window, or cannot
            be read. IntegrityError: a snapshot's bytes do not match its sha256.
        PrivacyError: An earlier window holds a PII column its anonymization did not handle.
    """
    parts: list[WindowPart] = []
    tables: list[pa.Table] = []
    if policy.widened:
        from refit.io.snapshot import load_snapshot
        from refit.privacy import check_pii_handled
        from refit.registry import open_registry

        since = _parse_time(policy.since, "since") if policy.since else None
        history = earlier_windows(
            open_registry(store_uri, model_name).audit.records(), current_sha256
        )
        for age, payload in enumerate(reversed(history[-(policy.windows - 1) :]), start=1):
            sha = str(payload["sha256"])
            table, snapshot = load_snapshot(store_uri, sha)
            when = _window_time(snapshot)
            if since is not None and (when is None or when < since):
                break
            pii = sorted(set(payload.get("pii") or []) | set(current_pii))
            check_pii_handled(
                {"pii": pii, "handled": payload.get("handled") or [], "sha256": sha},
                sha,
                table.column_names,
            )
            aligned = _aligned(table, current_schema, sha)
            parts.insert(
                0,
                WindowPart(
                    sha256=sha,
                    rows=aligned.num_rows,
                    age=age,
                    time=when.isoformat() if when else "",
                    run_label=str(payload.get("run_label") or ""),
                ),
            )
            tables.insert(0, aligned)
    rows = pa.concat_tables(tables) if tables else current_schema.empty_table()
    return parts, rows


def combine_windows(
    policy: TrainingWindow,
    earlier: Sequence[WindowPart],
    earlier_rows: pa.Table | None,
    current_rows: pa.Table,
    current_sha256: str,
) -> tuple[list[WindowPart], pa.Table, np.ndarray | None]:
    """The training set: the earlier windows' rows, then the current window's.

    Args:
        policy: The training-window policy (its recency half-life weighs the rows).
        earlier: The earlier windows (:func:`load_earlier_windows`), oldest first.
        earlier_rows: Their rows in that order, or None.
        current_rows: The current window's training rows (its holdout taken out).
        current_sha256: The current window's snapshot sha256.

    Returns:
        Every window (the current one last, with its weight), the rows, and the rows' sample
        weights (None when the policy weighs nothing).

    Raises:
        DataError: The earlier rows do not add up to the windows' counts, or their columns do
            not fit the current window's.
    """
    parts = [WindowPart(**p.to_dict()) for p in earlier]
    parts.append(WindowPart(sha256=current_sha256, rows=current_rows.num_rows, age=0))
    given = 0 if earlier_rows is None else earlier_rows.num_rows
    if given != sum(p.rows for p in earlier):
        raise DataError(
            f"training window: the earlier windows' data holds {given} rows, their records "
            f"{sum(p.rows for p in earlier)}"
        )
    table = current_rows
    if given:
        table = pa.concat_tables([_aligned(earlier_rows, current_rows.schema, "earlier"), table])
    weights = recency_weights(parts, policy.recency_half_life)
    return parts, table, (weights if policy.recency_half_life > 0 else None)
