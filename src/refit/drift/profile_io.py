"""Profiles of files and URIs, and stored profiles: reading data in one streaming pass.

Local Parquet is read one column at a time, local CSV with pyarrow's streaming reader, ``gs://``
Parquet through a temporary download; :func:`load_profile` / :func:`save_profile` read and write
stored profiles (JSON) and :func:`is_profile_file` tells a stored profile from data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from refit.drift import accumulate
from refit.drift.accumulate import ProfileBuilder, column_pool
from refit.drift.profile import Profile
from refit.errors import DataError
from refit.io.tables import check_schema


def iter_batches(uri: str, columns: Sequence[str] | None = None) -> tuple[pa.Schema, Iterator]:
    """Open a data file for streaming: ``(schema, iterator of record batches)``.

    Local Parquet files (or a folder of them) are read with ``ParquetFile.iter_batches`` and
    local CSV with pyarrow's streaming CSV reader, so memory stays flat in the number of rows;
    other URIs (``gs://``) are read whole through :func:`refit.io.tables.read_table`.

    Raises:
        DataError: If the data cannot be read, naming the URI.
    """
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    try:
        if "://" not in path:
            if not Path(path).exists():
                raise FileNotFoundError(f"no such file or folder: {path}")
            if _is_csv(path):
                return _csv_batches(uri, path, columns)
            return _parquet_batches(uri, _local_parquet_files(path), columns)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data at {uri}: {exc}") from None
    from refit.io.tables import read_table

    table = read_table(uri)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table.schema, iter(table.to_batches(accumulate.BATCH_ROWS))


def _csv_batches(
    uri: str, path: str, columns: Sequence[str] | None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """A local CSV file's schema and record batches (pyarrow's streaming reader)."""
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24))
    schema = reader.schema
    check_schema(schema, uri, csv=True)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield batch.select(list(columns)) if columns else batch

    if columns:
        schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
    return schema, batches()


def _parquet_batches(
    uri: str, files: list[str], columns: Sequence[str] | None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Local Parquet files' schema (the first file's) and record batches, file after file."""
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(files[0], pre_buffer=False).schema_arrow
    check_schema(schema, uri)
    cols = None if columns is None else [c for c in columns if c in schema.names]

    def batches() -> Iterator[pa.RecordBatch]:
        for file in files:
            # pre_buffer off: pre-buffering reads whole row groups ahead and
            # nearly doubled the peak memory of a streamed 1M x 25 window
            pf = pq.ParquetFile(file, pre_buffer=False)
            yield from pf.iter_batches(batch_size=accumulate.BATCH_ROWS, columns=cols)

    if cols is not None:
        schema = pa.schema([schema.field(c) for c in cols])
    return schema, batches()


@contextmanager
def streaming_memory_pool() -> Iterator[None]:
    """Make Arrow allocate from its jemalloc pool while streaming, where pyarrow has one.

    pyarrow's default pool, mimalloc, kept growing over a long stream of short-lived batches
    although Arrow's own count of allocated bytes stayed at a few MB: peak RSS of a streamed
    10M-row window was 1.4x the 1M-row one; with jemalloc it was flat. Buffers remember their pool,
    so switching the default for the duration is safe. Nothing changes when
    ``ARROW_DEFAULT_MEMORY_POOL`` is set (the user chose) or jemalloc is not built in.
    """
    previous = pa.default_memory_pool()
    pool = None
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and previous.backend_name != "jemalloc":
        try:
            pool = pa.jemalloc_memory_pool()
        except NotImplementedError:
            pool = None
    if pool is None:
        yield
        return
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _is_csv(path: str) -> bool:
    lower = path.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def _local_parquet_files(path: str) -> list[str]:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if not Path(path).is_dir():
        return [path]
    files = sorted(str(p) for p in Path(path).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {path}")
    return files


def _profile_parquet_by_column(
    uri: str,
    files: list[str],
    columns: Sequence[str] | None,
    row_groups: Sequence[Sequence[int] | None] | None = None,
) -> Profile:
    """Profile local Parquet files one column at a time.

    Each column is streamed on its own (``iter_batches`` over that column only, string columns
    read dictionary-encoded), columns in parallel on the thread pool. Only the columns being
    read are in memory, one batch and one column chunk each, so memory is flat in rows and in
    columns; reading whole record batches held every column's chunk buffers at once.
    ``row_groups`` (one entry per file, None: all of it) limits each file to those row groups
    (a shard of a window, :mod:`refit.drift.shards`).
    """
    import pyarrow.parquet as pq

    metadata = [pq.ParquetFile(f, pre_buffer=False).metadata for f in files]
    for meta in metadata:
        check_schema(meta.schema.to_arrow_schema(), uri)
    groups = list(row_groups) if row_groups is not None else [None] * len(files)
    schema = metadata[0].schema.to_arrow_schema()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
    builder = ProfileBuilder(schema, None, source=uri)
    builder.rows = sum(
        m.num_rows if g is None else sum(m.row_group(i).num_rows for i in g)
        for m, g in zip(metadata, groups, strict=True)
    )

    def one(name: str) -> None:
        for file, meta, group in zip(files, metadata, groups, strict=True):
            file_schema = meta.schema.to_arrow_schema()
            if name not in file_schema.names:
                raise DataError(f"cannot read data at {uri}: column {name!r} is missing in {file}")
            arrow_type = file_schema.field(name).type
            as_dictionary = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            reader = pq.ParquetFile(
                file,
                metadata=meta,
                pre_buffer=False,
                read_dictionary=[name] if as_dictionary else None,
            )
            for batch in reader.iter_batches(
                batch_size=accumulate.BATCH_ROWS,
                row_groups=group,
                columns=[name],
                use_threads=False,
            ):
                builder.update_column(name, batch.column(0))

    names = builder.profiled_columns
    if len(names) > 1:
        list(column_pool().map(one, names))
    else:
        for name in names:
            one(name)
    return builder.finish()


def profile_uri(uri: str, columns: Sequence[str] | None = None) -> Profile:
    """Profile a Parquet/CSV file, folder or URI in one streaming pass.

    Local Parquet is read one column at a time in batches of
    :data:`~refit.drift.accumulate.BATCH_ROWS` rows (columns in parallel), local CSV with
    pyarrow's streaming reader; memory is flat in the number of rows. ``gs://`` Parquet is first
    downloaded in chunks to a temporary folder (disk, not memory, holds it) and then read
    the same way; ``gs://`` CSV is read whole (see :func:`iter_batches`).

    Raises:
        DataError: If the data cannot be read, naming the URI.
    """
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    try:
        with streaming_memory_pool():
            if "://" not in path and not _is_csv(path):
                return _profile_parquet_by_column(uri, _local_parquet_files(path), columns)
            if uri.startswith("gs://") and not _is_csv(path):
                import tempfile

                from refit.io.tables import download_parquet

                with tempfile.TemporaryDirectory(prefix="refit-profile-") as folder:
                    files = download_parquet(uri, folder)
                    return _profile_parquet_by_column(uri, files, columns)
            schema, batches = iter_batches(uri, columns)
            builder = ProfileBuilder(schema, None, source=uri)
            for batch in batches:
                builder.update(batch)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data at {uri}: {exc}") from None
    return builder.finish()


def load_profile(uri: str) -> Profile:
    """Read a stored profile (JSON) from a path or URI.

    Raises:
        DataError: If it cannot be read. SchemaError: If it is not a current refit profile.
    """
    from refit.io.uri import read_bytes

    try:
        raw = read_bytes(uri)
    except Exception as exc:  # any read failure becomes a DataError naming the uri
        raise DataError(f"cannot read profile at {uri}: {exc}") from None
    return Profile.from_json(raw, where=f"profile {uri}")


def save_profile(profile: Profile, uri: str) -> None:
    """Write a profile as JSON to a path or URI."""
    from refit.io.uri import write_bytes

    write_bytes(uri, profile.to_json().encode("utf-8"))


#: How a stored profile begins (:meth:`Profile.to_json` writes ``kind`` first).
_PROFILE_HEAD = re.compile(rb'\s*\{\s*"kind"\s*:\s*"refit\.drift\.profile"')


def is_profile_file(uri: str) -> bool:
    """Whether ``uri`` holds a stored profile rather than data, by its content, not its name.

    A profile is a JSON object whose first key is ``"kind": "refit.drift.profile"`` (what
    :func:`save_profile` writes); only its first bytes are read. Parquet and CSV never begin
    so, whatever the file is called.
    """
    from refit.io.uri import read_head

    return bool(_PROFILE_HEAD.match(read_head(uri, 256)))
