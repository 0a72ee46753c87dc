"""Read and write tables (CSV or Parquet) at local, ``file://`` or ``gs://`` URIs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from refit.errors import DataError
from refit.io import uri as _uri

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def _is_csv(uri: str) -> bool:
    lower = uri.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def check_schema(schema: pa.Schema, uri: str, *, csv: bool = False) -> None:
    """Refuse a table schema that cannot be read unambiguously.

    Every reader of tabular data (``read_table``, the drift profiler's streaming readers) calls
    this once on the schema it found, so that each problem has one message.

    Args:
        schema: The schema as read.
        uri: Where the data came from, for the message.
        csv: The data is CSV: a ``binary`` column there means text that is not UTF-8.

    Raises:
        DataError: Duplicate column names ("cannot read data at URI: ..."), or (CSV)
            a column whose text is not valid UTF-8.
    """
    names = list(schema.names)
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(
            f"cannot read data at {uri}: duplicate column name(s) {duplicates}; "
            "every column needs a distinct name"
        )
    if csv:
        not_utf8 = [f.name for f in schema if pa.types.is_binary(f.type)]
        if not_utf8:
            raise DataError(
                f"cannot read data at {uri}: column(s) {not_utf8} hold text that is not valid "
                "UTF-8; save the CSV as UTF-8"
            )


def _select(table: pa.Table, columns: list[str] | None, uri: str) -> pa.Table:
    check_schema(table.schema, uri, csv=True)
    if columns is None:
        return table
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"cannot read data at {uri}: missing column(s) {missing}; "
            f"available: {table.column_names}"
        )
    return table.select(columns)


def _read_csv(uri: str) -> pa.Table:
    if _uri.is_gcs(uri):
        source: pa.NativeFile = pa.BufferReader(arrow_owned(_uri.read_bytes(uri)))
        if uri.lower().endswith(".gz"):
            source = pa.CompressedInputStream(source, "gzip")
        return pacsv.read_csv(source)
    path = _uri.local_path(uri)
    if not path.is_file():
        raise _uri.UriNotFoundError(f"cannot read data at {uri}: no such file")
    return pacsv.read_csv(str(path))


def _parquet_parts(uri: str) -> list[str]:
    parts = [
        p
        for p in _uri.list_prefix(uri)
        if p.lower().endswith(PARQUET_SUFFIXES) and not p.rsplit("/", 1)[-1].startswith((".", "_"))
    ]
    if not parts:
        raise _uri.UriNotFoundError(
            f"cannot read data at {uri}: no such file, and no Parquet files under it"
        )
    return parts


def _read_parquet_one(uri: str, columns: list[str] | None) -> pa.Table:
    if _uri.is_gcs(uri):
        source: str | pa.NativeFile = pa.BufferReader(arrow_owned(_uri.read_bytes(uri)))
    else:
        source = str(_uri.local_path(uri))
    pfile = pq.ParquetFile(source)
    check_schema(pfile.schema_arrow, uri)
    names = pfile.schema_arrow.names
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(
                f"cannot read data at {uri}: missing column(s) {missing}; available: {names}"
            )
    return pfile.read(columns=columns)


def _read_parquet(uri: str, columns: list[str] | None) -> pa.Table:
    if _uri.is_gcs(uri):
        is_file = bool(_uri.split_gcs(uri)[1]) and _uri.exists(uri)
    else:
        is_file = _uri.local_path(uri).is_file()
    if is_file:
        return _read_parquet_one(uri, columns)
    tables = [_read_parquet_one(part, columns) for part in _parquet_parts(uri)]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def download_parquet(uri: str, folder: str | Path) -> list[str]:
    """Copy the Parquet data at a ``gs://`` URI into a local folder, for chunked reading.

    The object (or every Parquet object under the prefix, in order) is downloaded straight to a
    file in chunks, so memory stays flat however large the data is; the caller then streams the
    local files (``pyarrow.parquet.ParquetFile.iter_batches``) and removes the folder.

    Args:
        uri: ``gs://bucket/key`` of a Parquet object or of a prefix holding Parquet objects.
        folder: Existing local folder to write the copies into.

    Returns:
        Local paths of the copies, in the order :func:`read_table` reads the parts.

    Raises:
        DataError: The data cannot be read ("cannot read data at URI: reason"); a
            ``UriNotFoundError`` when nothing exists at the URI.
    """
    if not _uri.is_gcs(uri):
        raise DataError(f"cannot read data at {uri}: download_parquet takes gs:// URIs")
    from google.api_core import exceptions as gexc

    is_file = bool(_uri.split_gcs(uri)[1]) and _uri.exists(uri)
    parts = [uri] if is_file else _parquet_parts(uri)
    paths = []
    for i, part in enumerate(parts):
        local = Path(folder) / f"part-{i:05d}.parquet"
        try:
            _uri._blob(part).download_to_filename(str(local))  # private helper, same package
        except gexc.NotFound as exc:
            raise _uri.UriNotFoundError(f"cannot read data at {uri}: {part} vanished") from exc
        except gexc.GoogleAPIError as exc:
            raise DataError(f"cannot read data at {uri}: {exc}") from exc
        paths.append(str(local))
    return paths


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a table from CSV or Parquet.

    The format follows the suffix: ``.csv`` / ``.csv.gz`` is CSV, anything else Parquet. A
    folder (or ``gs://`` prefix) of Parquet files is read as one table.

    Args:
        uri: Local path, ``file://`` URI or ``gs://bucket/key``.
        columns: Columns to keep, in this order; all if None.

    Returns:
        The table.

    Raises:
        DataError: The data cannot be read ("cannot read data at URI: reason"), or a requested
            column is missing (a ``UriNotFoundError`` when nothing exists at the URI).
    """
    try:
        if _is_csv(uri):
            return _select(_read_csv(uri), columns, uri)
        return _read_parquet(uri, columns)
    except DataError as exc:
        if str(exc).startswith("cannot read data at"):
            raise
        raise type(exc)(f"cannot read data at {uri}: {exc}") from exc
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"cannot read data at {uri}: {exc}") from exc


def canonical_parquet_bytes(table: pa.Table) -> bytes:
    """Serialise a table to Parquet deterministically.

    Same table (same schema and values, whatever its chunking) gives the same bytes: schema
    metadata (e.g. pandas') is dropped, chunks are combined, compression is zstd, column
    statistics are written. Second-resolution times become milliseconds, as Parquet stores
    them, so the bytes are a fixed point: reading them back and serialising again gives the same
    bytes (a CSV window and its snapshot have one sha256, not two).

    Args:
        table: The table.

    Returns:
        Parquet file bytes.
    """
    clean = table.replace_schema_metadata(None)
    fields = [f.remove_metadata() for f in clean.schema]
    columns = []
    for i, column in enumerate(clean.columns):
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit == "s":
            kind = pa.timestamp("ms", tz=kind.tz)
        elif pa.types.is_time32(kind) and kind.unit == "s":
            kind = pa.time32("ms")
        if kind != column.type:
            column = column.cast(kind)
            fields[i] = fields[i].with_type(kind)
        columns.append(column)
    clean = pa.Table.from_arrays(columns, schema=pa.schema(fields)).combine_chunks()
    sink = pa.BufferOutputStream()
    pq.write_table(
        clean,
        sink,
        compression="zstd",
        compression_level=3,
        write_statistics=True,
        row_group_size=1_000_000,
        store_schema=True,
    )
    return sink.getvalue().to_pybytes()


def write_parquet(table: pa.Table, uri: str) -> None:
    """Write a table as canonical Parquet (see ``canonical_parquet_bytes``).

    Args:
        table: The table.
        uri: Destination (local writes are atomic).

    Raises:
        DataError: The destination cannot be written.
    """
    _uri.write_bytes(uri, canonical_parquet_bytes(table))


def arrow_owned(data: bytes) -> pa.Buffer:
    """Copy ``data`` into a buffer that Arrow owns, for readers that use Arrow's thread pool.

    A reader over Python-owned bytes (``pa.BufferReader(data)``, ``pa.py_buffer``) lets Arrow's
    worker threads hold the last reference to the Python object; when a worker drops it after
    the read has returned and the interpreter is exiting, releasing it needs the GIL, the
    worker is unwound by ``pthread_exit`` inside a ``noexcept`` destructor, and the process
    aborts ("terminate called without an active exception") after having done its work. Core
    dumps of task runs showed exactly that stack (``arrow::py::PyBuffer::~PyBuffer`` on an
    Arrow pool thread, under both the dataset scanner and ``ParquetFile.read``). An
    Arrow-owned copy is freed without the GIL. The copy costs one ``memcpy``.

    Args:
        data: The bytes.

    Returns:
        A buffer with the same content, owned by Arrow's allocator.
    """
    sink = pa.BufferOutputStream()
    sink.write(data)
    return sink.getvalue()


def read_parquet_bytes(data: bytes, uri: str) -> pa.Table:
    """Parse a Parquet file held in memory (through an Arrow-owned copy: see `arrow_owned`).

    Args:
        data: The file's bytes.
        uri: Where they came from, for the error message.

    Returns:
        The table.

    Raises:
        DataError: The bytes are not a Parquet file.
    """
    try:
        return pq.ParquetFile(pa.BufferReader(arrow_owned(data))).read()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read data at {uri}: not Parquet ({exc})") from exc
