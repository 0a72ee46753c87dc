"""Run TFDV out of process: refit's SDK environment never imports TensorFlow.

The TFDV interpreter is named by ``REFIT_TFDV_PYTHON`` (``scripts/tfdv-env.sh`` builds one and
prints its path; in a cluster, the ``refit-tfdv`` image's python). The client:

1. makes a fresh exchange folder under the temp folder (``tempfile.gettempdir()``, i.e.
   ``$TMPDIR`` or ``/tmp``);
2. copies there the worker script (:mod:`refit.tfdv.worker`, a standalone file, as
   ``tfdv_worker.py``), the input files (tables given in memory are written as Parquet) and
   ``request.json``;
3. runs ``$REFIT_TFDV_PYTHON tfdv_worker.py request.json`` with that folder as working directory;
4. reads back ``statistics.pb``, ``schema.pbtxt``, ``anomalies.pbtxt`` (and ``facets.html``).

Every path the worker sees lies in the exchange folder, so the same paths work when the
interpreter is the chroot wrapper of a Debian 13 root (see ``scripts/tfdv-env.sh``: it
bind-mounts the host's temp folder at the same path inside the root).

Remote Beam runners (Dataflow, Flink, Spark, ...: any runner but the local ones in
:data:`LOCAL_RUNNERS`) run the statistics on workers that never see this machine's temp folder.
For them, and whenever the Beam flags name a ``gs://`` ``--temp_location``, the data files the
Beam pipeline reads are *staged*: uploaded under ``<staging>/refit-tfdv/<random>/`` (a ``gs://``
prefix: the ``staging_uri`` argument, e.g. under refit's store, else the ``--temp_location``),
the worker runs on those URIs and the pipeline writes its statistics there too; the worker reads
them back, writes its outputs to the exchange folder as always, and the client deletes the
staging prefix. A process killed meanwhile leaves that prefix behind: it holds nothing else and
can be deleted any time (or aged out by a bucket lifecycle rule on ``refit-tfdv/``). A remote
runner with no ``gs://`` location is refused before anything runs, naming both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.errors import DataError, SchemaError
from refit.io import uri as uri_lib

ENV_VAR = "REFIT_TFDV_PYTHON"
#: Beam runners that run on this machine (compared case-insensitively, "Runner" suffix optional);
#: any other runner's workers are assumed not to see local files.
LOCAL_RUNNERS = frozenset(
    {"direct", "bundlebaseddirect", "switchingdirect", "fnapi", "prism", "interactive"}
)
#: Folder under the staging location that holds one prefix per staged call.
STAGING_FOLDER = "refit-tfdv"
#: The worker script (a standalone file), copied into each exchange folder as ``tfdv_worker.py``.
WORKER_SCRIPT = Path(__file__).with_name("worker.py")
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


def _stage(source: pa.Table | str | Path, folder: Path, stem: str, remote: str | None) -> str:
    """Put one input where the worker (and, with ``remote``, the Beam workers) can read it.

    Args:
        source: A table (written as Parquet), or a file: a local path, or a ``gs://`` URI when
            staging.
        folder: The local exchange folder.
        stem: File name stem (``data``, ``reference``).
        remote: The ``gs://`` staging prefix of this call, or None (local exchange only).

    Returns:
        The path or URI the worker reads.
    """
    if isinstance(source, pa.Table):
        if remote is not None:
            sink = pa.BufferOutputStream()
            pq.write_table(_temporal_as_int(source), sink)
            target_uri = uri_lib.join(remote, f"{stem}.parquet")
            uri_lib.write_bytes(target_uri, sink.getvalue().to_pybytes())
            return target_uri
        target = folder / f"{stem}.parquet"
        pq.write_table(_temporal_as_int(source), target)
        return str(target)
    text = str(source)
    if uri_lib.is_gcs(text):
        if remote is None:
            raise DataError(
                f"cannot give {stem} {text!r} to TFDV in-process: a gs:// input needs Beam flags "
                "(beam_pipeline_args) and a gs:// staging location, or a local copy"
            )
        return text  # already where Beam's workers can read it
    src = Path(source)
    if not src.is_file():
        raise DataError(f"cannot give {stem} {text!r} to TFDV: not a local file")
    suffix = "".join(src.suffixes[-2:]) if src.name.endswith(".csv.gz") else src.suffix
    if remote is not None and suffix.lower() != ".pb":  # statistics are read by the worker only
        target_uri = uri_lib.join(remote, f"{stem}{suffix.lower()}")
        uri_lib.write_bytes(target_uri, src.read_bytes())
        return target_uri
    target = folder / f"{stem}{suffix.lower()}"
    try:
        os.link(src, target)
    except OSError:
        shutil.copyfile(src, target)
    return str(target)


def _flag(args: list[str], name: str) -> str | None:
    """The value of Beam flag ``--name`` (``--name=V`` or ``--name V``; the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def beam_runner(beam_pipeline_args: list[str]) -> str:
    """The Beam runner the flags name (Beam's default, ``DirectRunner``, if none)."""
    return _flag([str(a) for a in beam_pipeline_args], "runner") or "DirectRunner"


def is_local_runner(runner: str) -> bool:
    """Tell whether a Beam runner runs on this machine (see :data:`LOCAL_RUNNERS`)."""
    name = runner.strip().lower()
    return name.removesuffix("runner") in LOCAL_RUNNERS


def staging_location(
    beam_pipeline_args: list[str] | None, staging_uri: str | None = None
) -> str | None:
    """Where a TFDV call stages its Beam inputs and outputs, or None when it need not.

    Staging happens for a Beam run (``beam_pipeline_args`` given) whose runner is not local, or
    whose ``--temp_location`` is a ``gs://`` URI. The location is ``staging_uri`` when it is a
    ``gs://`` URI, else the ``--temp_location`` when that is one.

    Args:
        beam_pipeline_args: Beam flags, or None (TFDV in-process: never staged).
        staging_uri: Preferred staging location (e.g. a folder of refit's store).

    Returns:
        A ``gs://`` URI, or None.

    Raises:
        DataError: A remote runner is asked for and neither location is a ``gs://`` URI (the
            error names the runner and both locations).
    """
    if beam_pipeline_args is None:
        return None
    args = [str(a) for a in beam_pipeline_args]
    runner = beam_runner(args)
    temp = _flag(args, "temp_location")
    remote = not is_local_runner(runner)
    if not remote and not (temp and uri_lib.is_gcs(temp)):
        return None
    for candidate in (staging_uri, temp):
        if candidate and uri_lib.is_gcs(candidate):
            uri_lib.split_gcs(candidate)  # names a bucket
            return candidate
    raise DataError(
        f"Beam runner {runner!r} runs TFDV's statistics on workers that cannot read this "
        f"machine's files, but the staging location (store) {staging_uri or '(none)'!r} and "
        f"--temp_location {temp or '(none)'!r} are not gs:// URIs: use a gs:// store or pass "
        "--temp_location=gs://BUCKET/PATH in beam_pipeline_args (or use --runner=DirectRunner)"
    )


def _remove_prefix(prefix: str) -> None:
    """Delete every object under a staging prefix (best effort: a failure leaves garbage only)."""
    bucket_name, _ = uri_lib.split_gcs(prefix)
    bucket = uri_lib.gcs_client().bucket(bucket_name)
    for item in uri_lib.list_prefix(prefix):
        try:
            bucket.blob(uri_lib.split_gcs(item)[1]).delete()
        except Exception:  # cleanup of a private prefix must not mask results
            pass


@dataclass
class TfdvJob:
    """One TFDV run of a batch (see :func:`run_tfdv` for the fields)."""

    data: pa.Table | str | Path
    reference: pa.Table | str | Path | None = None
    schema: schema_pb2.Schema | None = None
    beam_pipeline_args: list[str] | None = None
    stats_options: dict[str, Any] | None = None
    facets: bool = False
    staging_uri: str | None = None


def _describe(source: pa.Table | str | Path) -> str:
    return "the table" if isinstance(source, pa.Table) else str(source)


def _prepare(job: TfdvJob, folder: Path) -> dict[str, Any]:
    """Write one job's inputs and return its request; stage them when its Beam run needs it.

    The request's ``staging`` entry (a ``gs://`` prefix, or None) tells the caller what to
    delete afterwards.
    """
    folder.mkdir(parents=True)
    location = staging_location(job.beam_pipeline_args, job.staging_uri)
    remote = (
        uri_lib.join(location, STAGING_FOLDER, uuid.uuid4().hex) if location is not None else None
    )
    request: dict[str, Any] = {
        "output": str(folder / "out"),
        "facets": job.facets,
        "stats_options": job.stats_options or {},
        "staging": remote,
    }
    try:
        request["data"] = _stage(job.data, folder, "data", remote)
        if job.beam_pipeline_args is not None:
            request["beam_pipeline_args"] = [str(a) for a in job.beam_pipeline_args]
        if remote is not None:
            request["beam_output"] = uri_lib.join(remote, "statistics")
        if job.reference is not None:
            request["reference"] = _stage(job.reference, folder, "reference", remote)
    except BaseException:
        if remote is not None:
            _remove_prefix(remote)
        raise
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
    staging_uri: str | None = None,
    python: str | None = None,
    timeout_s: float | None = None,
) -> TfdvOutputs:
    """Compute statistics, schema and anomalies with TFDV in its own interpreter.

    Args:
        data: Table, or Parquet/CSV file, to check (a ``gs://`` file when the run is staged).
        reference: Reference table or file (a ``.pb`` file is read as binary statistics).
        schema: Schema to validate against; None lets TFDV infer one from the reference (else
            from the data).
        beam_pipeline_args: Beam flags (``--runner=...``); given (even ``[]``), the statistics
            run as a Beam pipeline with these options, so the call runs on Dataflow, Flink or
            Spark. None: TFDV's in-process ``generate_statistics_from_dataframe``.
        stats_options: Keyword arguments of ``tfdv.StatsOptions`` (JSON-serialisable).
        facets: Also render the Facets overview HTML.
        staging_uri: ``gs://`` location for the inputs and outputs of a remote Beam run (see
            :func:`staging_location`; default the ``--temp_location`` flag).
        python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        timeout_s: Give up after this many seconds.

    Returns:
        The worker's outputs.

    Raises:
        TfdvUnavailableError: No TFDV environment, or it fails to start.
        DataError: An input is not a local file, a remote runner has no ``gs://`` staging
            location, or TFDV rejects the data.
    """
    interpreter = tfdv_python(python)
    job = TfdvJob(data, reference, schema, beam_pipeline_args, stats_options, facets, staging_uri)
    with tempfile.TemporaryDirectory(prefix="refit-xchg-") as tmp:
        folder = Path(tmp)
        request = _prepare(job, folder / "job")
        try:
            _call(interpreter, folder, request, timeout_s)
        finally:
            if request["staging"]:
                _remove_prefix(request["staging"])
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
        Per job, in order, its outputs or the ``DataError`` raised on it (by TFDV, or before:
        an input that is not a file, a remote runner without a staging location).

    Raises:
        TfdvUnavailableError: No TFDV environment, or it fails to start.
    """
    interpreter = tfdv_python(python)
    with tempfile.TemporaryDirectory(prefix="refit-xchg-") as tmp:
        folder = Path(tmp)
        prepared: list[dict[str, Any] | DataError] = []
        try:
            for i, job in enumerate(jobs):
                try:
                    prepared.append(_prepare(job, folder / f"job{i}"))
                except DataError as exc:
                    prepared.append(exc)
            requests = [r for r in prepared if not isinstance(r, DataError)]
            if requests:
                _call(interpreter, folder, {"jobs": requests}, timeout_s)
        finally:
            for request in prepared:
                if not isinstance(request, DataError) and request["staging"]:
                    _remove_prefix(request["staging"])
        results: list[TfdvOutputs | DataError] = []
        for job, request in zip(jobs, prepared, strict=True):
            if isinstance(request, DataError):
                results.append(request)
                continue
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
