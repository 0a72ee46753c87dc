"""Shards of a window: profile each on its own (one KFP task each), merge the profiles.

A window too large for one pod is given as many Parquet files (a folder or ``gs://`` prefix) or
as one large file with many row groups. :func:`plan_shards` splits it into at most N shards of
about equal rows: whole files, or contiguous row groups of local files. :func:`profile_shard`
profiles one shard, reading only its files and row groups, and
:func:`refit.drift.profile.merge_profiles` adds the shards' profiles up to the profile of the
whole window (counts and histograms exactly; see :mod:`refit.drift.profile`), which drift tests
and statistics then read. No task ever holds more than one batch of one column of its shard.
"""

from __future__ import annotations

import bisect
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refit.drift.profile import Profile
from refit.drift.profile_io import (
    _local_parquet_files,
    _profile_parquet_by_column,
    streaming_memory_pool,
)
from refit.errors import DataError

#: Most shards a window may be split into (a ParallelFor of more tasks than this is a mistake).
MAX_SHARDS = 1000
#: Longest shard description accepted (JSON characters).
MAX_SHARD_CHARS = 1 << 20


@dataclass(frozen=True)
class ShardPart:
    """One file of a shard.

    Attributes:
        uri: The Parquet file (local path, ``file://`` or ``gs://``).
        row_groups: The row groups of it in this shard (None: the whole file).
    """

    uri: str
    row_groups: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Shard:
    """A part of a window, profiled by one task.

    Attributes:
        window: The whole window's URI (the merged profile's ``source``).
        index: This shard's number, 0 to ``count - 1``.
        count: How many shards the window was split into.
        parts: Its files and row groups.
        rows: Rows in the shard (when known from Parquet metadata; else -1).
    """

    window: str
    index: int
    count: int
    parts: tuple[ShardPart, ...]
    rows: int = -1

    def to_json(self) -> str:
        """The shard as JSON text (a ParallelFor item)."""
        return json.dumps(
            {
                "window": self.window,
                "index": self.index,
                "count": self.count,
                "rows": self.rows,
                "parts": [
                    {
                        "uri": p.uri,
                        "row_groups": None if p.row_groups is None else list(p.row_groups),
                    }
                    for p in self.parts
                ],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Shard:
        """Parse a shard written by :meth:`to_json`.

        Raises:
            DataError: Not a shard description, naming what is wrong.
        """
        if not isinstance(text, str) or len(text) > MAX_SHARD_CHARS:
            raise DataError(
                f"shard must be JSON text of at most {MAX_SHARD_CHARS} characters "
                "(an item of plan_shards' output)"
            )
        try:
            data = json.loads(text)
            parts = []
            for part in data["parts"]:
                groups = part["row_groups"]
                if groups is not None and (
                    not groups
                    or not all(isinstance(g, int) and not isinstance(g, bool) for g in groups)
                    or min(groups) < 0
                ):
                    raise ValueError(f"row_groups of {part['uri']!r} must be integers >= 0")
                uri = part["uri"]
                if not isinstance(uri, str) or not uri:
                    raise ValueError("a part's uri must be a non-empty string")
                parts.append(ShardPart(uri, None if groups is None else tuple(groups)))
            shard = cls(
                window=str(data["window"]),
                index=int(data["index"]),
                count=int(data["count"]),
                parts=tuple(parts),
                rows=int(data.get("rows", -1)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"shard is not a shard description from plan_shards: {exc}") from None
        if not shard.parts:
            raise DataError(f"shard {shard.index} of {shard.window} has no files")
        if not 0 <= shard.index < shard.count <= MAX_SHARDS:
            raise DataError(
                f"shard index {shard.index} of {shard.count} is out of range "
                f"(0 <= index < count <= {MAX_SHARDS})"
            )
        return shard


def _split(weights: Sequence[int], count: int) -> list[tuple[int, int]]:
    """Cut ``weights`` into at most ``count`` contiguous non-empty runs of about equal sums.

    Each cut goes where the running sum is nearest its share (``total * k / count``).
    """
    count = max(1, min(count, len(weights)))
    prefix = [0]
    for weight in weights:
        prefix.append(prefix[-1] + weight)
    total = prefix[-1]
    cuts = [0]
    for k in range(1, count):
        target = total * k / count
        j = bisect.bisect_left(prefix, target)
        if j > 0 and target - prefix[j - 1] <= prefix[min(j, len(weights))] - target:
            j -= 1
        j = max(cuts[-1] + 1, min(j, len(weights) - (count - k)))
        cuts.append(j)
    cuts.append(len(weights))
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _local(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def plan_shards(window_uri: str, shards: int) -> list[Shard]:
    """Split a Parquet window into at most ``shards`` shards of about equal rows.

    Local data is split by row groups (a single large file splits too); ``gs://`` data by
    whole objects (a task downloads only its own objects), so a ``gs://`` window of fewer
    objects than ``shards`` gives fewer shards.

    Args:
        window_uri: Parquet file or folder (local, ``file://``) or ``gs://`` object or prefix.
        shards: Most shards wanted, 1 to :data:`MAX_SHARDS`.

    Returns:
        The shards, in the window's row order.

    Raises:
        DataError: A bad ``shards``, CSV data (shard Parquet only), or unreadable data.
    """
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise DataError(f"shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    path = _local(window_uri)
    if path.lower().endswith((".csv", ".csv.gz")):
        raise DataError(
            f"cannot shard {window_uri}: sharded profiles read Parquet (row groups or files); "
            "write the window as Parquet"
        )
    if window_uri.startswith("gs://"):
        from refit.io import uri as _uri
        from refit.io.tables import _parquet_parts

        is_file = bool(_uri.split_gcs(window_uri)[1]) and _uri.exists(window_uri)
        files = [window_uri] if is_file else _parquet_parts(window_uri)
        runs = _split([1] * len(files), shards)
        return [
            Shard(window_uri, i, len(runs), tuple(ShardPart(f) for f in files[a:b]))
            for i, (a, b) in enumerate(runs)
        ]
    if "://" in path:
        raise DataError(f"cannot shard {window_uri}: a local path, file:// or gs:// URI is needed")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        files = _local_parquet_files(path)
        units: list[tuple[str, int, int]] = []
        for file in files:
            meta = pq.ParquetFile(file, pre_buffer=False).metadata
            units += [(file, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data at {window_uri}: {exc}") from None
    if not units:
        raise DataError(f"cannot shard {window_uri}: it has no row groups (no rows)")
    runs = _split([u[2] for u in units], shards)
    out = []
    for i, (a, b) in enumerate(runs):
        parts: dict[str, list[int]] = {}
        for file, group, _ in units[a:b]:
            parts.setdefault(file, []).append(group)
        out.append(
            Shard(
                window_uri,
                i,
                len(runs),
                tuple(ShardPart(f, tuple(g)) for f, g in parts.items()),
                rows=sum(u[2] for u in units[a:b]),
            )
        )
    return out


def profile_shard(shard: Shard, columns: Sequence[str] | None = None) -> Profile:
    """Profile one shard, reading only its files and row groups (memory flat in its rows).

    Raises:
        DataError: Its data cannot be read.
    """
    import pyarrow as pa

    try:
        with streaming_memory_pool(), tempfile.TemporaryDirectory(prefix="refit-shard-") as tmp:
            files: list[str] = []
            for n, part in enumerate(shard.parts):
                if part.uri.startswith("gs://"):
                    from refit.io.tables import download_parquet

                    local = download_parquet(part.uri, tmp)
                    target = Path(tmp) / f"shard-{n:05d}.parquet"
                    Path(local[0]).rename(target)
                    files.append(str(target))
                else:
                    files.append(_local(part.uri))
            profile = _profile_parquet_by_column(
                shard.window, files, columns, [p.row_groups for p in shard.parts]
            )
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read shard {shard.index} of {shard.window}: {exc}") from None
    return profile


def shard_summary(shards: Sequence[Shard]) -> dict[str, Any]:
    """Counts of a plan, for a task's metadata."""
    return {
        "shards": len(shards),
        "rows": [s.rows for s in shards],
        "files": len({p.uri for s in shards for p in s.parts}),
    }
