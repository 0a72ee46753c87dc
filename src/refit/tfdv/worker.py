"""refit's TFDV worker: run TFDV on files and write TFDV's files (a standalone script).

This file runs inside the TFDV interpreter (``REFIT_TFDV_PYTHON``; the ``refit-tfdv`` image in
a cluster), never inside refit's SDK environment; the client copies it into an exchange folder as
``tfdv_worker.py`` and executes it by path::

    python tfdv_worker.py REQUEST.json

``REQUEST.json`` holds one request, or ``{"jobs": [request, ...]}`` to run several in one
interpreter start (a failed job leaves ``error.txt`` in its output folder instead).
It imports only the standard library, pyarrow/pandas and ``tensorflow_data_validation`` (and
what TFDV itself brings: apache_beam, tensorflow_metadata), so it needs no refit install.

The request (JSON) names:

* ``data``: Parquet or CSV file to check (``.csv`` suffix = CSV); ``reference``: optional
  reference data file, or a binary statistics file (``.pb``) of it;
* ``schema``: optional ``schema.pbtxt`` (else inferred from the reference, else the data);
* ``output``: folder that receives ``statistics.pb`` (binary ``DatasetFeatureStatisticsList``),
  ``reference_statistics.pb`` (with a reference), ``schema.pbtxt``, ``anomalies.pbtxt``,
  ``facets.html`` (``get_statistics_html``, when ``facets`` is true) and ``result.json``;
* ``beam_pipeline_args``: list of Beam flags. When given (even empty, with ``use_beam``), the
  statistics run as a Beam pipeline with these ``PipelineOptions`` (``ReadFromText`` ->
  ``DecodeCSV`` for CSV, ``ReadFromParquetBatched`` for Parquet, then ``tfdv.GenerateStatistics``,
  whose one result is written as one object), so the same request runs on Dataflow, Flink or
  Spark. Without them, statistics come from ``generate_statistics_from_dataframe`` in-process
  (no Beam, much faster on one machine);
* ``beam_output``: folder (local path or ``gs://`` URI) where the Beam pipeline writes its
  statistics (``<name>-statistics.pb``); default ``<output>/beam``. With a remote runner the
  client stages ``data``/``reference`` as ``gs://`` URIs and points this at the same staging
  prefix, so every path the Beam workers touch is on the store; the worker reads the
  statistics back through Beam's filesystems and writes its own outputs locally as usual;
* ``stats_options``: keyword arguments of ``tfdv.StatsOptions`` (e.g. ``num_histogram_buckets``).

Timestamp and date columns become int64 (their Arrow storage, e.g. epoch seconds), as refit's
native engine counts them, since TFDV has no temporal type.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

STATS_FILE = "statistics.pb"
REFERENCE_STATS_FILE = "reference_statistics.pb"
SCHEMA_FILE = "schema.pbtxt"
ANOMALIES_FILE = "anomalies.pbtxt"
FACETS_FILE = "facets.html"
RESULT_FILE = "result.json"
#: Bounds on what the worker reads back from the Beam filesystems.
MAX_STATISTICS_BYTES = 256 * 1024 * 1024
MAX_CSV_HEADER_BYTES = 1024 * 1024


def _is_csv(path: str) -> bool:
    return path.lower().endswith((".csv", ".csv.gz"))


def _read_table(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(path) if _is_csv(path) else pq.read_table(path)
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        if pa.types.is_temporal(kind):
            width = pa.int32() if kind.bit_width == 32 else pa.int64()
            column = column.cast(width)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _to_list_batch(batch: Any) -> Any:
    """Wrap each column into one-value lists (nulls -> null lists), as TFDV wants."""
    import numpy as np
    import pyarrow as pa

    arrays = []
    offsets = pa.array(np.arange(batch.num_rows + 1, dtype=np.int32))
    for column in batch.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        if pa.types.is_temporal(kind):
            column = column.cast(pa.int32() if kind.bit_width == 32 else pa.int64())
        mask = column.is_null() if column.null_count else None
        arrays.append(pa.ListArray.from_arrays(offsets, column, mask=mask))
    return pa.RecordBatch.from_arrays(arrays, batch.schema.names)


def _stats_options(tfdv: Any, request: dict[str, Any], schema: Any = None) -> Any:
    kwargs = dict(request.get("stats_options") or {})
    if schema is not None:
        kwargs.setdefault("schema", schema)
    return tfdv.StatsOptions(**kwargs)


def _statistics(
    tfdv: Any, path: str, request: dict[str, Any], name: str, timings: dict[str, float]
) -> Any:
    """Statistics of one file, in-process or as a Beam pipeline (see the module docstring).

    In-process, the time to read the file and convert it to pandas goes to
    ``timings[f"{name}_read_s"]`` (it is also part of the caller's statistics time).
    """
    beam_args = request.get("beam_pipeline_args")
    options = _stats_options(tfdv, request)
    if beam_args is None and not request.get("use_beam"):
        started = time.perf_counter()
        table = _read_table(path)
        frame = table.to_pandas()
        timings[f"{name}_read_s"] = time.perf_counter() - started
        stats = tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
    else:
        from apache_beam.options.pipeline_options import PipelineOptions

        folder = request.get("beam_output") or os.path.join(request["output"], "beam")
        stats = _beam_statistics(
            tfdv,
            path,
            options,
            PipelineOptions(list(beam_args or [])),
            f"{folder.rstrip('/')}/{name}-statistics.pb",
        )
    if stats.datasets:
        stats.datasets[0].name = name
    return stats


def _csv_header(path: str) -> list[str]:
    """Column names from the first line of a CSV file (any Beam filesystem, gzip by suffix)."""
    import csv

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        head = handle.read(MAX_CSV_HEADER_BYTES)
    line = head.split(b"\n", 1)[0]
    if not line.strip() or (len(head) == MAX_CSV_HEADER_BYTES and b"\n" not in head):
        raise ValueError(f"CSV file {path} has no header line within {MAX_CSV_HEADER_BYTES} bytes")
    return next(csv.reader([line.decode("utf-8").rstrip("\r")]))


def _write_object(stats: Any, path: str) -> None:
    """Write one statistics proto as one file or object (Beam filesystems; no rename step)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(
        path, mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED
    ) as handle:
        handle.write(stats.SerializeToString())


def _read_object(path: str) -> bytes:
    """Read what :func:`_write_object` wrote, up to :data:`MAX_STATISTICS_BYTES`."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        raise ValueError(f"the Beam pipeline wrote no statistics to {path}")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        raw = handle.read(MAX_STATISTICS_BYTES + 1)
    if len(raw) > MAX_STATISTICS_BYTES:
        raise ValueError(f"statistics at {path} exceed {MAX_STATISTICS_BYTES} bytes")
    return raw


def _beam_statistics(tfdv: Any, path: str, options: Any, pipeline_options: Any, output: str) -> Any:
    """Run ``read -> tfdv.GenerateStatistics -> write one object`` and read the object back.

    ``path`` and ``output`` may be local paths or any URI a Beam filesystem serves (``gs://``
    on Dataflow). The statistics are one element (a global combine), written by a plain
    ``FileSystems.create`` rather than a file sink, so no copy/rename step runs on the store.
    """
    import apache_beam as beam
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with beam.Pipeline(options=pipeline_options) as pipeline:
        if _is_csv(path):
            from tensorflow_data_validation import constants
            from tensorflow_data_validation.coders import csv_decoder

            batch_size = options.desired_batch_size
            if not batch_size or batch_size <= 0:
                batch_size = constants.DEFAULT_DESIRED_INPUT_BATCH_SIZE
            records = (
                pipeline
                | "Read" >> beam.io.ReadFromText(path, skip_header_lines=1)
                | "Decode"
                >> csv_decoder.DecodeCSV(
                    column_names=_csv_header(path),
                    schema=options.schema if options.infer_type_from_schema else None,
                    desired_batch_size=batch_size,
                )
            )
        else:
            records = (
                pipeline
                | "Read" >> beam.io.ReadFromParquetBatched(path)
                | "Batches" >> beam.FlatMap(lambda table: table.to_batches())
                | "Lists" >> beam.Map(_to_list_batch)
            )
        _ = (
            records
            | "Stats" >> tfdv.GenerateStatistics(options)
            | "Write" >> beam.Map(_write_object, output)
        )
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(_read_object(output))


def _write_binary(stats: Any, path: str) -> None:
    """Binary DatasetFeatureStatisticsList, as ``tfdv.load_stats_binary`` reads it."""
    with open(path, "wb") as handle:
        handle.write(stats.SerializeToString())


def _peak_rss_mb() -> float | None:
    # VmHWM is this process's own high-water mark; ru_maxrss starts at the spawning parent's
    # peak on Linux (it survives fork and exec), so it is only the fallback.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one request (see the module docstring) and return what ``result.json`` holds."""
    import tensorflow_data_validation as tfdv

    output = request["output"]
    os.makedirs(output, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reads: dict[str, float] = {}
    stats = _statistics(tfdv, request["data"], request, "current", reads)
    timings["statistics_s"] = time.perf_counter() - started

    reference_stats = None
    reference = request.get("reference")
    if reference:
        started = time.perf_counter()
        if reference.endswith(".pb"):
            reference_stats = tfdv.load_stats_binary(reference)
        else:
            reference_stats = _statistics(tfdv, reference, request, "reference", reads)
        timings["reference_statistics_s"] = time.perf_counter() - started

    started = time.perf_counter()
    if request.get("schema"):
        schema = tfdv.load_schema_text(request["schema"])
    else:
        basis = reference_stats if reference_stats is not None else stats
        schema = tfdv.infer_schema(
            basis, infer_feature_shape=bool(request.get("infer_feature_shape", False))
        )
    timings["schema_s"] = time.perf_counter() - started

    started = time.perf_counter()
    # on an empty window TFDV sets only ``data_missing`` (no reason): kept as TFDV gives it
    anomalies = tfdv.validate_statistics(stats, schema, previous_statistics=reference_stats)
    timings["validation_s"] = time.perf_counter() - started

    started = time.perf_counter()
    if reference_stats is not None:
        _write_binary(reference_stats, os.path.join(output, REFERENCE_STATS_FILE))
    _write_binary(stats, os.path.join(output, STATS_FILE))
    tfdv.write_schema_text(schema, os.path.join(output, SCHEMA_FILE))
    tfdv.write_anomalies_text(anomalies, os.path.join(output, ANOMALIES_FILE))
    timings["write_s"] = time.perf_counter() - started
    if request.get("facets"):
        from tensorflow_data_validation import get_statistics_html

        if reference_stats is not None:
            html = get_statistics_html(
                stats, rhs_statistics=reference_stats, lhs_name="current", rhs_name="reference"
            )
        else:
            html = get_statistics_html(stats)
        with open(os.path.join(output, FACETS_FILE), "w", encoding="utf-8") as handle:
            handle.write(html)
    result = {
        "engine": "tfdv",
        "tfdv_version": tfdv.__version__,
        "python": sys.version.split()[0],
        "beam_pipeline_args": request.get("beam_pipeline_args"),
        "beam": request.get("beam_pipeline_args") is not None or bool(request.get("use_beam")),
        "inputs": {"data": request["data"], "reference": request.get("reference")},
        "beam_output": request.get("beam_output"),
        "timings": timings,
        "read_timings": reads,
        "peak_rss_mb": _peak_rss_mb(),
    }
    with open(os.path.join(output, RESULT_FILE), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return result


def main(argv: list[str]) -> int:
    """Entry point: ``python tfdv_worker.py REQUEST.json``; errors go to stderr, exit code 1."""
    if len(argv) != 2:
        print("usage: tfdv_worker.py REQUEST.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    if "jobs" in request:  # a batch: one interpreter start (TensorFlow import) for many jobs
        for job in request["jobs"]:
            try:
                run(job)
            except Exception as exc:  # recorded for the client, per job
                os.makedirs(job["output"], exist_ok=True)
                with open(os.path.join(job["output"], "error.txt"), "w", encoding="utf-8") as f:
                    f.write(f"{type(exc).__name__}: {exc}")
        return 0
    try:
        run(request)
    except Exception as exc:  # the client reports it with this tag
        print(f"refit-tfdv-worker error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
