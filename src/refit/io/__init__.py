"""Data access: URIs (local, file://, gs://), tables and content-addressed snapshots."""

from refit.io.snapshot import Snapshot, create_snapshot, load_snapshot
from refit.io.tables import canonical_parquet_bytes, read_table, write_parquet
from refit.io.uri import (
    UriNotFoundError,
    exists,
    is_gcs,
    join,
    list_prefix,
    read_bytes,
    write_bytes,
)

__all__ = [
    "Snapshot",
    "UriNotFoundError",
    "canonical_parquet_bytes",
    "create_snapshot",
    "exists",
    "is_gcs",
    "join",
    "list_prefix",
    "load_snapshot",
    "read_bytes",
    "read_table",
    "write_bytes",
    "write_parquet",
]
