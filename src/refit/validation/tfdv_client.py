"""Run TFDV out of process: refit's SDK environment never imports TensorFlow.

The TFDV interpreter is named by ``REFIT_TFDV_PYTHON`` (``scripts/tfdv-env.sh`` builds one and
prints its path; in a cluster, the ``refit-tfdv`` image's python). The client:

1. makes a fresh exchange folder under the temp folder (``tempfile.gettempdir()``, i.e.
   ``$TMPDIR`` or ``/tmp``);
2. copies there the worker script (:mod:`refit.validation.tfdv_worker`, a standalone file), the
   input files (tables given in memory are written as Parquet) and ``request.json``;
3. runs ``$REFIT_TFDV_PYTHON worker.py request.json`` with that folder as working directory;
4. reads back ``statistics.pb``, ``schema.pbtxt``, ``anomalies.pbtxt`` (and ``facets.html``).

Every path the worker sees lies in the exchange folder, so the same paths work when the
interpreter is the chroot wrapper of a Debian 13 root (see ``scripts/tfdv-env.sh``: it
bind-mounts the host's temp folder at the same path inside the root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.errors import DataError, SchemaError

ENV_VAR = "REFIT_TFDV_PYTHON"
WORKER_SCRIPT = Path(__file__).with_name("tfdv_worker.py")
HOW_TO = (
    "build one with `scripts/tfdv-env.sh` (TFDV 1.21 in a venv where glibc >= 2.39, else in a "
    "Debian 13 root; prints the interpreter) and export "
    'REFIT_TFDV_PYTHON="$(scripts/tfdv-env.sh | tail -n 1)"'
)


class TfdvUnavailableError(SchemaError):
    """``engine="tfdv"`` was asked for but no TFDV environment is configured or it fails."""


@dataclass
class TfdvOutputs:
    """What the worker wrote.

    Attributes:
        statistics: Statistics of the data.
        schema: The schema used (given or inferred by TFDV).
        anomalies: TFDV's anomalies.
        reference_statistics: Statistics of the reference, if one was given.
        facets_html: Facets overview HTML (``get_statistics_html``), if asked for.
        metadata: The worker's ``result.json`` (engine, TFDV version, Beam args, timings).
    """

    statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema
    anomalies: anomalies_pb2.Anomalies
    reference_statistics: statistics_pb2.DatasetFeatureStatisticsList | None = None
    facets_html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def tfdv_python(python: str | None = None) -> str:
    """Return the TFDV interpreter: ``python`` if given, else ``$REFIT_TFDV_PYTHON``.

    Raises:
        TfdvUnavailableError: None is configured, or the path is not an executable file.
    """
    path = python or os.environ.get(ENV_VAR, "")
    if not path:
        raise TfdvUnavailableError(
            f"engine 'tfdv' needs a TFDV environment: {ENV_VAR} is not set; {HOW_TO}"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise TfdvUnavailableError(f"{ENV_VAR}={path!r} is not an executable file; {HOW_TO}")
    return path


def _temporal_as_int(table: pa.Table) -> pa.Table:
    """Temporal columns as their integer storage, as the native engine counts them.

    Parquet cannot hold ``timestamp[s]`` (it becomes milliseconds), so the cast happens here.
    """
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_temporal(kind):
            column = column.cast(pa.int32() if kind.bit_width == 32 else pa.int64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _stage(source: pa.Table | str | Path, folder: Path, stem: str) -> str:
    """Put one input in the exchange folder; return its path there."""
    if isinstance(source, pa.Table):
        target = folder / f"{stem}.parquet"
        pq.write_table(_temporal_as_int(source), target)
        return str(target)
    src = Path(source)
    if not src.is_file():
        raise DataError(f"cannot give {stem} {str(source)!r} to TFDV: not a local file")
    suffix = "".join(src.suffixes[-2:]) if src.name.endswith(".csv.gz") else src.suffix
    target = folder / f"{stem}{suffix.lower()}"
    try:
        os.link(src, target)
    except OSError:
        shutil.copyfile(src, target)
    return str(target)


@dataclass
class TfdvJob:
    """One TFDV run of a batch (see :func:`run_tfdv` for the fields)."""

    data: pa.Table | str | Path
    reference: pa.Table | str | Path | None = None
    schema: schema_pb2.Schema | None = None
    beam_pipeline_args: list[str] | None = None
    stats_options: dict[str, Any] | None = None
    facets: bool = False


def _describe(source: pa.Table | str | Path) -> str:
    return "the table" if isinstance(source, pa.Table) else str(source)


def _prepare(job: TfdvJob, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True)
    request: dict[str, Any] = {
        "data": _stage(job.data, folder, "data"),
        "output": str(folder / "out"),
        "facets": job.facets,
        "stats_options": job.stats_options or {},
    }
    if job.beam_pipeline_args is not None:
        request["beam_pipeline_args"] = [str(a) for a in job.beam_pipeline_args]
    if job.reference is not None:
        request["reference"] = _stage(job.reference, folder, "reference")
    if job.schema is not None:
        from google.protobuf import text_format

        schema_path = folder / "input_schema.pbtxt"
        schema_path.write_text(text_format.MessageToString(job.schema), encoding="utf-8")
        request["schema"] = str(schema_path)
    return request


def _call(interpreter: str, folder: Path, request: dict[str, Any], timeout_s: float | None) -> None:
    worker = folder / "tfdv_worker.py"
    shutil.copyfile(WORKER_SCRIPT, worker)
    request_path = folder / "request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    try:
        proc = subprocess.run(
            [interpreter, str(worker), str(request_path)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except OSError as exc:
        raise TfdvUnavailableError(
            f"cannot start the TFDV interpreter {interpreter!r}: {exc}; {HOW_TO}"
        ) from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tagged = [line for line in lines if line.startswith("refit-tfdv-worker error: ")]
        if tagged:
            reason = tagged[-1].removeprefix("refit-tfdv-worker error: ")
            raise DataError(f"TFDV failed on {_describe(request.get('data', ''))}: {reason}")
        tail = "\n".join(lines[-15:])
        raise TfdvUnavailableError(
            f"the TFDV interpreter {interpreter!r} failed (exit {proc.returncode}):\n{tail}\n"
            f"{HOW_TO}"
        )


def run_tfdv(
    data: pa.Table | str | Path,
    *,
    reference: pa.Table | str | Path | None = None,
    schema: schema_pb2.Schema | None = None,
    beam_pipeline_args: list[str] | None = None,
    stats_options: dict[str, Any] | None = None,
    facets: bool = False,
    python: str | None = None,
    timeout_s: float | None = None,
) -> TfdvOutputs:
    """Compute statistics, schema and anomalies with TFDV in its own interpreter.

    Args:
        data: Table, or Parquet/CSV file, to check.
        reference: Reference table or file (a ``.pb`` file is read as binary statistics).
        schema: Schema to validate against; None lets TFDV infer one from the reference (else
            from the data).
        beam_pipeline_args: Beam flags (``--runner=...``); given (even ``[]``), the statistics
            run as a Beam pipeline with these options, so the call runs on Dataflow, Flink or
            Spark. None: TFDV's in-process ``generate_statistics_from_dataframe``.
        stats_options: Keyword arguments of ``tfdv.StatsOptions`` (JSON-serialisable).
        facets: Also render the Facets overview HTML.
        python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        timeout_s: Give up after this many seconds.

    Returns:
        The worker's outputs.

    Raises:
        TfdvUnavailableError: No TFDV environment, or it fails to start.
        DataError: An input is not a local file, or TFDV rejects the data.
    """
    interpreter = tfdv_python(python)
    job = TfdvJob(data, reference, schema, beam_pipeline_args, stats_options, facets)
    with tempfile.TemporaryDirectory(prefix="refit-xchg-") as tmp:
        folder = Path(tmp)
        request = _prepare(job, folder / "job")
        _call(interpreter, folder, request, timeout_s)
        return _read_outputs(Path(request["output"]))


def run_tfdv_batch(
    jobs: list[TfdvJob], *, python: str | None = None, timeout_s: float | None = None
) -> list[TfdvOutputs | DataError]:
    """Run several TFDV jobs in one interpreter start (TensorFlow imports once).

    Args:
        jobs: The jobs.
        python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        timeout_s: Give up on the whole batch after this many seconds.

    Returns:
        Per job, in order, its outputs or the ``DataError`` TFDV raised on it.

    Raises:
        TfdvUnavailableError: No TFDV environment, or it fails to start.
    """
    interpreter = tfdv_python(python)
    with tempfile.TemporaryDirectory(prefix="refit-xchg-") as tmp:
        folder = Path(tmp)
        requests = [_prepare(job, folder / f"job{i}") for i, job in enumerate(jobs)]
        _call(interpreter, folder, {"jobs": requests}, timeout_s)
        results: list[TfdvOutputs | DataError] = []
        for job, request in zip(jobs, requests, strict=True):
            out = Path(request["output"])
            if (out / "error.txt").exists():
                reason = (out / "error.txt").read_text(encoding="utf-8")
                results.append(DataError(f"TFDV failed on {_describe(job.data)}: {reason}"))
            else:
                results.append(_read_outputs(out))
        return results


def _read_outputs(out: Path) -> TfdvOutputs:
    from google.protobuf import text_format

    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (out / "statistics.pb").read_bytes()
    )
    schema = text_format.Parse(
        (out / "schema.pbtxt").read_text(encoding="utf-8"), schema_pb2.Schema()
    )
    anomalies = text_format.Parse(
        (out / "anomalies.pbtxt").read_text(encoding="utf-8"), anomalies_pb2.Anomalies()
    )
    reference = None
    if (out / "reference_statistics.pb").exists():
        reference = statistics_pb2.DatasetFeatureStatisticsList.FromString(
            (out / "reference_statistics.pb").read_bytes()
        )
    facets = (
        (out / "facets.html").read_text(encoding="utf-8")
        if (out / "facets.html").exists()
        else None
    )
    metadata = json.loads((out / "result.json").read_text(encoding="utf-8"))
    return TfdvOutputs(stats, schema, anomalies, reference, facets, metadata)
