"""Validation engines: ``native`` (refit's own, the default and fast path), ``tfdv``, ``auto``.

Both engines produce TFDV's artifacts: statistics (``DatasetFeatureStatisticsList``), a schema
and ``Anomalies``, including the schema's drift comparators against a reference.

* ``native``: :func:`refit.validation.validate_table` plus, for features whose schema entry has a
  ``drift_comparator``, refit's drift tests (``infinity_norm`` -> L-infinity, ``jensen_shannon_
  divergence`` -> Jensen-Shannon; :mod:`refit.validation.comparators`) merged into the anomalies as
  ``drift_skew_info`` and ``COMPARATOR_*_HIGH`` reasons. Schema fields the native engine does not
  honour are listed in :attr:`EngineResult.ignored_schema_fields` (never dropped silently).
* ``tfdv``: TFDV 1.21 in its own interpreter (:mod:`refit.tfdv`).
* ``auto``: the native engine; the result records which engine ran.

Where the two engines differ by design (range checks against the reference, numeric
Jensen-Shannon bins, bool domains, all-null columns, empty windows, Facets):
docs/decisions/0012-native-and-tfdv-differ-by-design.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from refit.errors import SchemaError
from refit.validation.anomalies import ValidationOptions, validate_table
from refit.validation.schema import check_schema, check_statistics

Engine = Literal["native", "tfdv", "auto"]
ENGINES: tuple[str, ...] = ("native", "tfdv", "auto")
DEFAULT_OPTIONS = ValidationOptions()

# Schema fields the native engine honours; every other field set in a schema is reported.
_HONOURED_SCHEMA = {"feature", "string_domain"}
_HONOURED_FEATURE = {
    "name",
    "type",
    "presence",
    "domain",
    "string_domain",
    "int_domain",
    "float_domain",
    "bool_domain",
    "value_count",
    "drift_comparator",
}
_HONOURED_SUBFIELDS = {
    "presence": {"min_fraction", "min_count"},
    "int_domain": {"min", "max"},
    "float_domain": {"min", "max"},
    "string_domain": {"name", "value"},
    "drift_comparator": {"infinity_norm", "jensen_shannon_divergence"},
}


@dataclass
class EngineResult:
    """Outputs of one validation run, whichever engine ran.

    Attributes:
        engine: The engine that ran (``"native"`` or ``"tfdv"``).
        requested: The engine asked for (``"auto"`` resolves to ``"native"``).
        statistics: Statistics of the data.
        schema: The schema validated against.
        anomalies: Anomalies, drift comparators' ``drift_skew_info`` included.
        reference_statistics: Statistics of the reference, if one was given.
        facets_html: Facets overview HTML (TFDV engine with ``facets=True``), else None.
        ignored_schema_fields: Schema fields the engine that ran does not honour.
        metadata: Engine details (TFDV version, Beam args, timings) for the outputs' metadata.
    """

    engine: str
    requested: str
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema
    anomalies: anomalies_pb2.Anomalies
    reference_statistics: statistics_pb2.DatasetFeatureStatisticsList | None = None
    facets_html: str | None = None
    ignored_schema_fields: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def resolve_engine(engine: str) -> str:
    """Return the engine that runs for ``engine`` (``auto`` -> ``native``).

    Raises:
        SchemaError: Unknown engine name.
    """
    if engine not in ENGINES:
        raise SchemaError(f"unknown validation engine {engine!r}; expected one of {list(ENGINES)}")
    return "native" if engine == "auto" else engine


def _unhonoured(message: Any, allowed: set[str], where: str) -> list[str]:
    out = []
    for descriptor, value in message.ListFields():
        name = descriptor.name
        if name not in allowed:
            out.append(f"{where}{name}")
            continue
        sub = _HONOURED_SUBFIELDS.get(name)
        if sub is not None and descriptor.message_type is not None and not descriptor.is_repeated:
            out.extend(_unhonoured(value, sub, f"{where}{name}."))
    return out


def ignored_schema_fields(schema: schema_pb2.Schema) -> list[str]:
    """List the fields of a TFDV schema the native engine does not honour.

    The native engine checks type, presence, string domains (inline or named), ``int_domain``/
    ``float_domain`` ``min``/``max``, single values (``value_count`` up to 1) and the
    ``infinity_norm`` / ``jensen_shannon_divergence`` drift comparators. Anything else (skew
    comparators, distribution constraints, environments, lifecycle stages, ...) is reported.

    Args:
        schema: The schema.

    Returns:
        Dotted paths such as ``"feature 'age'.skew_comparator"`` or ``"dataset_constraints"``.
    """
    out = _unhonoured(schema, _HONOURED_SCHEMA, "")
    for feature in schema.feature:
        where = f"feature {feature.name!r}."
        out.extend(_unhonoured(feature, _HONOURED_FEATURE, where))
        if feature.HasField("value_count") and feature.value_count.max > 1:
            out.append(f"{where}value_count.max")
    return out


def _drift_anomalies(
    reference: pa.Table, current: pa.Table, schema: schema_pb2.Schema
) -> anomalies_pb2.Anomalies | None:
    """Evaluate the schema's drift comparators with refit's drift tests (None when none apply)."""
    from refit.drift.detect import detect_drift
    from refit.validation.comparators import to_anomalies

    tests: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for feature in schema.feature:
        if not feature.HasField("drift_comparator"):
            continue
        if feature.name not in reference.column_names or feature.name not in current.column_names:
            continue
        comparator = feature.drift_comparator
        if comparator.HasField("infinity_norm"):
            tests[feature.name] = "linf"
            thresholds[feature.name] = max(comparator.infinity_norm.threshold, 1e-12)
        elif comparator.HasField("jensen_shannon_divergence"):
            tests[feature.name] = "jensenshannon"
            value = max(comparator.jensen_shannon_divergence.threshold, 1e-12)
            thresholds[feature.name] = math.sqrt(value)
    if not tests or reference.num_rows == 0 or current.num_rows == 0:
        return None
    result = detect_drift(
        reference, current, columns=list(tests), tests=tests, thresholds=thresholds
    )
    return to_anomalies(result)


def validate_native(
    data: pa.Table,
    *,
    reference: pa.Table | None = None,
    schema: schema_pb2.Schema | None = None,
    options: ValidationOptions = DEFAULT_OPTIONS,
) -> EngineResult:
    """Validate with the native engine, drift comparators included (see the module docstring).

    Args:
        data: Data to check.
        reference: Reference data, or None.
        schema: Schema (TFDV's), or None to infer one from the reference, else the data.
        options: Tolerances of the native checks.

    Returns:
        The result (``engine="native"``).
    """
    result = validate_table(data, reference, schema=schema, options=options)
    anomalies = result.anomalies
    if reference is not None and schema is not None:
        drift = _drift_anomalies(reference, data, schema)
        if drift is not None:
            anomalies.drift_skew_info.extend(drift.drift_skew_info)
            for name, info in drift.anomaly_info.items():
                if name in anomalies.anomaly_info:
                    anomalies.anomaly_info[name].reason.extend(info.reason)
                else:
                    anomalies.anomaly_info[name].CopyFrom(info)
    if not anomalies.HasField("baseline"):
        anomalies.baseline.CopyFrom(result.schema)
    return EngineResult(
        engine="native",
        requested="native",
        statistics=result.statistics,
        schema=result.schema,
        anomalies=anomalies,
        reference_statistics=result.reference_statistics,
        ignored_schema_fields=ignored_schema_fields(schema) if schema is not None else [],
    )


def run_validation(
    data: pa.Table,
    *,
    reference: pa.Table | None = None,
    schema: schema_pb2.Schema | None = None,
    engine: str = "native",
    options: ValidationOptions = DEFAULT_OPTIONS,
    beam_pipeline_args: list[str] | None = None,
    stats_options: dict[str, Any] | None = None,
    facets: bool = False,
    tfdv_python: str | None = None,
    staging_uri: str | None = None,
) -> EngineResult:
    """Validate ``data`` with the chosen engine.

    Args:
        data: Data to check.
        reference: Reference data (drift comparators, native range checks), or None.
        schema: TFDV schema, or None to infer one.
        engine: ``"native"``, ``"tfdv"`` or ``"auto"`` (native; recorded in the result).
        options: Tolerances of the native engine (the TFDV engine uses the schema only).
        beam_pipeline_args: TFDV engine: Beam flags; statistics then run as a Beam pipeline.
        stats_options: TFDV engine: ``tfdv.StatsOptions`` keyword arguments.
        facets: TFDV engine: also render Facets HTML.
        tfdv_python: TFDV interpreter; default ``$REFIT_TFDV_PYTHON``.
        staging_uri: TFDV engine: ``gs://`` location where a remote Beam runner's inputs and
            outputs are staged (default: the ``--temp_location`` flag; see
            :func:`refit.tfdv.client.staging_location`).

    Returns:
        The result; ``engine`` says which engine ran and ``metadata["engine"]`` repeats it.

    Raises:
        SchemaError: Unknown engine. TfdvUnavailableError: ``tfdv`` without a TFDV environment.
    """
    ran = resolve_engine(engine)
    if ran == "native":
        return recorded(
            validate_native(data, reference=reference, schema=schema, options=options), engine
        )
    from refit.tfdv.engine import validate_tfdv

    return validate_tfdv(
        data,
        reference=reference,
        schema=schema,
        beam_pipeline_args=beam_pipeline_args,
        stats_options=stats_options,
        facets=facets,
        tfdv_python=tfdv_python,
        staging_uri=staging_uri,
    )


def recorded(result: EngineResult, requested: str) -> EngineResult:
    """Record in ``result`` the engine asked for, and in its metadata what ran.

    Args:
        result: An engine's result.
        requested: The engine asked for (``"auto"`` runs ``"native"``).

    Returns:
        ``result``, its ``requested`` set and its metadata holding ``engine``,
        ``engine_requested`` and ``ignored_schema_fields``.
    """
    result.requested = requested
    result.metadata.update(
        {
            "engine": result.engine,
            "engine_requested": requested,
            "ignored_schema_fields": result.ignored_schema_fields,
        }
    )
    return result


def anomaly_kinds(anomalies: anomalies_pb2.Anomalies) -> set[tuple[str, str]]:
    """The ``(feature, reason type name)`` pairs of anomalies (``"(dataset)"`` for dataset ones)."""
    kind = anomalies_pb2.AnomalyInfo.Type.Name
    out = {("(dataset)", kind(r.type)) for r in anomalies.dataset_anomaly_info.reason}
    for name, info in anomalies.anomaly_info.items():
        out.update((name, kind(r.type)) for r in info.reason)
    return out


def drift_measurements(anomalies: anomalies_pb2.Anomalies) -> dict[str, tuple[str, float, float]]:
    """Drift comparator measurements: feature -> (type name, value, threshold)."""
    kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    out = {}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for m in info.drift_measurements:
            out[name] = (kind(m.type), m.value, m.threshold)
    return out


def _unknown_fields(message: Any, where: str) -> list[str]:
    """Paths of fields a parsed message does not know (recursively)."""
    from google.protobuf import unknown_fields

    out = []
    unknown = unknown_fields.UnknownFieldSet(message)
    if len(unknown):
        out.append(
            f"{where or '(top level)'}: field numbers {sorted({f.field_number for f in unknown})}"
        )
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None or descriptor.message_type.GetOptions().map_entry:
            continue
        items = value if descriptor.is_repeated else [value]
        for i, item in enumerate(items):
            out.extend(_unknown_fields(item, f"{where}{descriptor.name}[{i}]."))
    return out


def read_statistics(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Read a binary ``DatasetFeatureStatisticsList`` (TFDV's ``statistics.pb``), strictly.

    Args:
        path: Local file path.

    Returns:
        The statistics.

    Raises:
        DataError: The file cannot be read, is a text proto, or is another proto type (it does
            not parse, holds no dataset, or holds fields a statistics list does not have).
    """
    from google.protobuf.message import DecodeError

    from refit.errors import DataError

    try:
        raw = open(path, "rb").read()  # small file read whole
    except OSError as exc:
        raise DataError(f"cannot read statistics {path}: {exc}") from None
    what = f"{path} is not a binary DatasetFeatureStatisticsList (TFDV statistics.pb)"
    try:
        head = raw[:200].decode("utf-8")
        if head.lstrip().split(" ", 1)[0].split("{", 1)[0].strip() in {
            "feature",
            "datasets",
            "string_domain",
            "anomaly_info",
            "baseline",
        }:
            raise DataError(
                f"{what}: it looks like a text proto (schema.pbtxt or anomalies.pbtxt?)"
            )
    except UnicodeDecodeError:
        pass
    try:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(raw)
    except DecodeError as exc:
        raise DataError(f"{what}: {exc}") from None
    unknown = _unknown_fields(stats, "")
    if unknown:
        raise DataError(
            f"{what}: it holds fields a statistics list does not have ({'; '.join(unknown[:3])}); "
            "a Schema or Anomalies file, or statistics from an incompatible TFDV?"
        )
    if not stats.datasets:
        raise DataError(f"{what}: it holds no dataset")
    try:
        return check_statistics(stats, f"statistics {path}")
    except SchemaError as exc:
        raise DataError(str(exc)) from None


def read_schema(path: str) -> schema_pb2.Schema:
    """Read a TFDV schema (``schema.pbtxt``, text proto), strictly.

    Args:
        path: Local file path.

    Returns:
        The schema.

    Raises:
        SchemaError: The file cannot be read, is binary, or does not parse; a field unknown to
            this tensorflow-metadata (a schema from a newer TFDV) is named with its line.
    """
    from importlib.metadata import version

    from google.protobuf import text_format

    try:
        raw = open(path, "rb").read()  # small file read whole
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SchemaError(
            f"schema {path} is binary, not a text Schema (schema.pbtxt); a statistics.pb?"
        ) from None
    try:
        return check_schema(text_format.Parse(text, schema_pb2.Schema()), f"schema {path}")
    except text_format.ParseError as exc:
        message = str(exc)
        if "has no field named" in message:
            raise SchemaError(
                f"schema {path}: {message} This tensorflow-metadata "
                f"({version('tensorflow-metadata')}) does not know that field: a schema written "
                "by a newer TFDV? Remove the field or upgrade; refit will not drop it silently."
            ) from None
        raise SchemaError(f"schema {path} is not a valid text Schema: {message}") from None
