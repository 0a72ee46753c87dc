"""Distributed XGBoost, what every worker is told and computes alike: env, shards, holdout, config.

A worker's ``DMLC_*`` variables (:class:`DmlcEnv`, :data:`RESERVED_ENV`, injected by the
``xgboost-distributed`` ClusterTrainingRuntime), the plan of shards every worker derives from the
snapshot's Parquet footers alone (:func:`plan_shards`: whole row groups, contiguous, balanced by
rows) and reads its own of (:func:`read_shard`), the seeded holdout rule on global row numbers
(:func:`holdout_mask`), and the :class:`DistributedConfig` every worker is given. The worker
itself is `refit.training.distributed`; running N workers as local processes is
`refit.training.distributed_local`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from refit.errors import DataError, TrainingError
from refit.io import uri as uri_io
from refit.io.tables import PARQUET_SUFFIXES

__all__ = [
    "RESERVED_ENV",
    "DistributedConfig",
    "DmlcEnv",
    "Shard",
    "ShardUnit",
    "holdout_mask",
    "plan_shards",
    "read_shard",
    "snapshot_columns",
    "snapshot_sha256",
]

#: Environment variables the ``xgboost-distributed`` runtime injects into every node; a TrainJob
#: that sets them itself is refused.
RESERVED_ENV = ("DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class DmlcEnv:
    """The ``DMLC_*`` variables of one worker.

    Attributes:
        tracker_uri: Host of the tracker (worker 0's pod, or 127.0.0.1 locally).
        tracker_port: Port of the tracker.
        task_id: This worker's rank, ``0 <= task_id < num_worker``.
        num_worker: Number of workers.
    """

    tracker_uri: str
    tracker_port: int
    task_id: int
    num_worker: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DmlcEnv:
        """Read and check the variables.

        Raises:
            TrainingError: One is missing or malformed; the message names it.
        """
        environ = os.environ if environ is None else environ
        missing = [name for name in RESERVED_ENV if not environ.get(name)]
        if missing:
            raise TrainingError(
                f"distributed worker: environment variable(s) {missing} are not set; the "
                "xgboost-distributed runtime injects them (run_local sets them locally)"
            )

        def integer(name: str, low: int, high: int) -> int:
            raw = environ[name]
            try:
                value = int(raw)
            except ValueError:
                raise TrainingError(
                    f"distributed worker: {name}={raw!r} is not an integer"
                ) from None
            if not low <= value <= high:
                raise TrainingError(
                    f"distributed worker: {name}={value} is outside [{low}, {high}]"
                )
            return value

        num = integer("DMLC_NUM_WORKER", 1, 4096)
        return cls(
            tracker_uri=environ["DMLC_TRACKER_URI"],
            tracker_port=integer("DMLC_TRACKER_PORT", 1, 65535),
            task_id=integer("DMLC_TASK_ID", 0, num - 1),
            num_worker=num,
        )

    def to_environ(self) -> dict[str, str]:
        """The variables as the runtime sets them."""
        return {
            "DMLC_TRACKER_URI": self.tracker_uri,
            "DMLC_TRACKER_PORT": str(self.tracker_port),
            "DMLC_TASK_ID": str(self.task_id),
            "DMLC_NUM_WORKER": str(self.num_worker),
        }


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class ShardUnit:
    """One Parquet row group of the snapshot.

    Attributes:
        source: URI of the Parquet file.
        row_group: Index of the row group in the file.
        first_row: Global number of its first row (files in order, row groups in order).
        rows: Rows it holds.
    """

    source: str
    row_group: int
    first_row: int
    rows: int


@dataclass(frozen=True)
class Shard:
    """The row groups one worker reads.

    Attributes:
        rank: The worker.
        world: Number of workers.
        units: Its row groups, in global row order.
        total_rows: Rows in the whole snapshot.
    """

    rank: int
    world: int
    units: tuple[ShardUnit, ...]
    total_rows: int

    @property
    def rows(self) -> int:
        """Rows in this shard."""
        return sum(u.rows for u in self.units)

    def global_rows(self) -> np.ndarray:
        """Global row numbers of this shard's rows, in read order."""
        if not self.units:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(
            [np.arange(u.first_row, u.first_row + u.rows, dtype=np.int64) for u in self.units]
        )


def _snapshot_files(snapshot: str) -> list[str]:
    if uri_io.is_gcs(snapshot):
        if uri_io.split_gcs(snapshot)[1] and uri_io.exists(snapshot):
            return [snapshot]
    elif uri_io.local_path(snapshot).is_file():
        return [snapshot]
    parts = sorted(
        p
        for p in uri_io.list_prefix(snapshot)
        if p.lower().endswith(PARQUET_SUFFIXES) and not p.rsplit("/", 1)[-1].startswith((".", "_"))
    )
    if not parts:
        raise uri_io.UriNotFoundError(
            f"snapshot {snapshot}: no such Parquet file, and no Parquet files under it"
        )
    return parts


def _open_parquet(source: str) -> pq.ParquetFile:
    """Open a Parquet file for reading its footer and chosen row groups only (GCS: range reads)."""
    try:
        if uri_io.is_gcs(source):
            return pq.ParquetFile(uri_io._blob(source).open("rb"))  # private helper, same package
        return pq.ParquetFile(str(uri_io.local_path(source)))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"snapshot {source}: not a readable Parquet file ({exc})") from exc


def plan_shards(snapshot: str, world: int) -> list[Shard]:
    """Split a snapshot into ``world`` shards of whole row groups, from the footers alone.

    Row groups are taken in global order (files sorted by name, row groups in file order) and
    cut into contiguous runs of about ``total_rows / world`` rows each. Every worker computes
    the same plan.

    Args:
        snapshot: A Parquet file or a folder / ``gs://`` prefix of Parquet files.
        world: Number of workers.

    Returns:
        One :class:`Shard` per rank.

    Raises:
        DataError: The snapshot cannot be read, or has fewer non-empty row groups than workers
            (the message says how to write it).
    """
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise DataError(f"distributed training: workers must be a positive integer, got {world!r}")
    units: list[ShardUnit] = []
    first = 0
    schema: pa.Schema | None = None
    for source in _snapshot_files(snapshot):
        pfile = _open_parquet(source)
        if schema is None:
            schema = pfile.schema_arrow
        elif not pfile.schema_arrow.equals(schema):
            raise DataError(
                f"snapshot {snapshot}: file {source} has another schema than the first file"
            )
        for index in range(pfile.metadata.num_row_groups):
            rows = pfile.metadata.row_group(index).num_rows
            if rows:
                units.append(ShardUnit(source, index, first, rows))
                first += rows
    if len(units) < world:
        raise DataError(
            f"snapshot {snapshot} has {len(units)} non-empty Parquet row group(s) for {world} "
            "workers: each worker reads whole row groups; write the snapshot with smaller row "
            "groups (pyarrow row_group_size) or as more files"
        )
    total = first
    starts = [u.first_row for u in units]
    cuts = [0]
    for rank in range(1, world):
        goal = rank * total / world
        best = min(range(len(units)), key=lambda i: (abs(starts[i] - goal), i))
        cuts.append(min(max(best, cuts[-1] + 1), len(units) - (world - rank)))
    cuts.append(len(units))
    shards = [units[cuts[r] : cuts[r + 1]] for r in range(world)]
    return [Shard(rank, world, tuple(shards[rank]), total) for rank in range(world)]


def read_shard(shard: Shard) -> pa.Table:
    """Read a shard's row groups (and nothing else) into one table.

    Raises:
        DataError: A file cannot be read.
    """
    tables = []
    by_source: dict[str, list[int]] = {}
    for unit in shard.units:
        by_source.setdefault(unit.source, []).append(unit.row_group)
    for source, groups in by_source.items():
        pfile = _open_parquet(source)
        try:
            tables.append(pfile.read_row_groups(groups))
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"snapshot {source}: cannot read row groups {groups} ({exc})") from exc
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if table.num_rows != shard.rows:
        raise DataError(
            f"shard {shard.rank}: read {table.num_rows} rows where the footers promise {shard.rows}"
        )
    return table


def holdout_mask(global_rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whether each global row number is held out: a seeded hash, the same on every worker.

    SplitMix64 of ``row + seed * golden ratio`` mapped to [0, 1); a row is held out when that
    falls below ``fraction``. The share held out is ``fraction`` up to sampling noise.

    Raises:
        DataError: ``fraction`` is not in (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout_fraction must be in (0, 1), got {fraction}")
    with np.errstate(over="ignore"):
        z = global_rows.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK64
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK64
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def snapshot_columns(snapshot: str) -> list[str]:
    """Column names of a snapshot, from its first file's footer.

    Raises:
        DataError: The snapshot cannot be read.
    """
    return list(_open_parquet(_snapshot_files(snapshot)[0]).schema_arrow.names)


def snapshot_sha256(snapshot: str) -> str:
    """sha256 of a snapshot's bytes, streamed in chunks (memory stays flat).

    One file: the sha256 of its bytes (what ``train_model`` records for a one-process run).
    A folder or prefix: the sha256 of its parts' names and sha256s, in order.

    Raises:
        DataError: The snapshot cannot be read.
    """
    files = _snapshot_files(snapshot)
    digests = []
    for source in files:
        digest = hashlib.sha256()
        try:
            if uri_io.is_gcs(source):
                handle: Any = uri_io._blob(source).open("rb")  # private helper, same package
            else:
                handle = open(uri_io.local_path(source), "rb")
            with handle:
                for chunk in iter(partial(handle.read, 1 << 22), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(f"snapshot {source}: cannot read it ({exc})") from exc
        digests.append(digest.hexdigest())
    if len(files) == 1 and files[0] == snapshot:
        return digests[0]
    combined = hashlib.sha256()
    for source, file_digest in zip(files, digests, strict=True):
        combined.update(f"{source.rsplit('/', 1)[-1]}\0{file_digest}\n".encode())
    return combined.hexdigest()


# --------------------------------------------------------------------------- configuration


@dataclass
class DistributedConfig:
    """What every worker of one distributed training is told (the TrainJob's ``--config``).

    Attributes:
        snapshot: The window's snapshot: a Parquet file or folder / ``gs://`` prefix.
        label_column: Label column.
        model_uri: Folder or ``gs://`` prefix worker 0 writes the model to.
        holdout_uri: Folder or prefix each worker writes its holdout part to.
        report_uri: Folder or prefix each worker writes ``worker-RANK.json`` to; "" none.
        params: XGBoost parameters (refit's ``xgboost`` trainer's).
        seed: Seed of the holdout hash and the booster.
        holdout_fraction: Share of rows held out.
        time_column: Event-time column, excluded from the features.
        task: ``auto``, ``classification`` or ``regression``.
        device: ``cpu`` or ``cuda``.
        checkpoint_uri: Folder or prefix of checkpoints; "" none.
        checkpoint_every: Rounds between checkpoints.
        nodes: Nodes (pods) of the TrainJob, for the card.
        workers_per_node: Workers per node (GPUs per node, or 1), for the card.
        price_per_hour: Price of one node per hour, for the card's cost.
        node_profile: Node profile name, for the card.
        data_sha256: Content hash of the snapshot (from its artifact), for the card; "" unknown.
        timeout_s: Seconds the tracker waits for all workers to join, and a collective
            operation waits for a peer.
    """

    snapshot: str
    label_column: str
    model_uri: str
    holdout_uri: str
    report_uri: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    holdout_fraction: float = 0.25
    time_column: str = ""
    task: str = "auto"
    device: str = "cpu"
    checkpoint_uri: str = ""
    checkpoint_every: int = 25
    nodes: int = 1
    workers_per_node: int = 1
    price_per_hour: float = 0.0
    node_profile: str = ""
    data_sha256: str = ""
    timeout_s: int = 600

    def to_json(self) -> str:
        """The config as one JSON line (the TrainJob argument)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DistributedConfig:
        """Parse and check a config.

        Raises:
            TrainingError: It is not a JSON object, a field is unknown, missing or of the
                wrong type or range; the message names it.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TrainingError(f"distributed config is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise TrainingError("distributed config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"distributed config: unknown field(s) {unknown}")
        try:
            config = cls(**data)
        except TypeError as exc:
            raise TrainingError(f"distributed config: {exc}") from exc
        config.check()
        return config

    def check(self) -> None:
        """Raise TrainingError naming the first bad field."""
        for name in ("snapshot", "label_column", "model_uri", "holdout_uri"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TrainingError(f"distributed config: {name} must be a non-empty string")
        for name, low in (("seed", 0), ("checkpoint_every", 1), ("nodes", 1),
                          ("workers_per_node", 1), ("timeout_s", 1)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TrainingError(
                    f"distributed config: {name} must be an integer >= {low}, got {value!r}"
                )
        if not isinstance(self.params, dict):
            raise TrainingError("distributed config: params must be a JSON object")
        if self.device not in ("cpu", "cuda"):
            raise TrainingError(
                f"distributed config: device must be cpu or cuda, got {self.device!r}"
            )
        if self.task not in ("auto", "classification", "regression"):
            raise TrainingError(f"distributed config: task {self.task!r} is unknown")
        if not isinstance(self.holdout_fraction, (int, float)) or not 0 < self.holdout_fraction < 1:
            raise TrainingError(
                "distributed config: holdout_fraction must be in (0, 1), got "
                f"{self.holdout_fraction!r}"
            )
