"""PII marks in the schema, the model's curated schema in the store, and the training guard.

A column is marked as personal data in refit's (TFDV) schema by the annotation tag ``pii``::

    feature {
      name: "email"
      type: BYTES
      annotation { tag: "pii" }
    }

The model's curated schema lives in the store at ``{store}/models/{model}/schema.pbtxt``
(:func:`schema_uri`; write it with :func:`save_schema`). The validation step infers its schema
from the data each run and stores none, so the PII marks have this one home.

The ``anonymize_data`` step appends an ``anonymization`` record to the model's audit log naming
the snapshot it wrote (its sha256) and the columns it handled. Before training, the training
step calls :func:`check_pii_handled`: every PII-marked column still in the training data must
be handled by an anonymization record for exactly those bytes, else training stops with a
:class:`~refit.errors.PrivacyError` naming the column(s). A dropped column is simply absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tensorflow_metadata.proto.v0 import schema_pb2

from refit.audit.events import AuditEvent
from refit.errors import PrivacyError
from refit.io import uri as uri_io
from refit.registry import open_registry
from refit.validation.schema import schema_from_text, schema_to_text

__all__ = [
    "ANONYMIZATION_EVENT",
    "PII_TAG",
    "SCHEMA_FILE",
    "check_pii_handled",
    "handled_columns",
    "load_schema",
    "mark_pii",
    "pii_columns",
    "save_schema",
    "schema_uri",
    "unhandled_pii",
]

#: Annotation tag that marks a schema feature as personal data.
PII_TAG = "pii"

#: File name of the model's curated schema under its registry folder.
SCHEMA_FILE = "schema.pbtxt"

#: Audit event the anonymize step appends (and the training guard reads).
ANONYMIZATION_EVENT = AuditEvent.ANONYMIZATION


def pii_columns(schema: schema_pb2.Schema) -> list[str]:
    """Return the features of a schema tagged ``pii``, in schema order.

    Args:
        schema: A TFDV schema.

    Returns:
        The PII-marked feature names.
    """
    return [f.name for f in schema.feature if PII_TAG in f.annotation.tag]


def mark_pii(schema: schema_pb2.Schema, columns: Iterable[str]) -> schema_pb2.Schema:
    """Return a copy of a schema with the given features tagged ``pii`` (idempotent).

    Args:
        schema: A TFDV schema.
        columns: Feature names to mark.

    Returns:
        The marked copy; ``schema`` itself is not changed.

    Raises:
        PrivacyError: A column is not a feature of the schema.
    """
    columns = list(columns)
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    features = {f.name: f for f in out.feature}
    missing = [c for c in columns if c not in features]
    if missing:
        raise PrivacyError(
            f"cannot mark column(s) {missing} as PII: not features of the schema "
            f"(features: {sorted(features)})"
        )
    for name in columns:
        if PII_TAG not in features[name].annotation.tag:
            features[name].annotation.tag.append(PII_TAG)
    return out


def schema_uri(store_uri: str, model_name: str) -> str:
    """Where the model's curated schema lives: ``{store}/models/{model}/schema.pbtxt``.

    Args:
        store_uri: Root of refit's store.
        model_name: The model.

    Returns:
        A local path or ``gs://`` URI.
    """
    root = open_registry(store_uri, model_name).root
    return uri_io.join(os.fspath(root), SCHEMA_FILE)


def save_schema(store_uri: str, model_name: str, schema: schema_pb2.Schema) -> str:
    """Store the model's curated schema (text format), replacing the previous one.

    Args:
        store_uri: Root of refit's store.
        model_name: The model.
        schema: The schema.

    Returns:
        The URI written.
    """
    target = schema_uri(store_uri, model_name)
    uri_io.write_bytes(target, schema_to_text(schema).encode("utf-8"))
    return target


def load_schema(store_uri: str, model_name: str) -> schema_pb2.Schema | None:
    """Load the model's curated schema, or None when the store holds none.

    Raises:
        SchemaError: The stored schema is not a valid schema.
    """
    source = schema_uri(store_uri, model_name)
    if not uri_io.exists(source):
        return None
    return schema_from_text(uri_io.read_bytes(source).decode("utf-8"))


def handled_columns(store_uri: str, model_name: str, sha256: str) -> set[str]:
    """Columns that anonymization records in the model's audit log say they handled in a snapshot.

    Args:
        store_uri: Root of refit's store.
        model_name: The model whose audit log is read.
        sha256: The anonymised snapshot's content hash.

    Returns:
        The union of ``handled`` over every ``anonymization`` record that wrote ``sha256``.
    """
    records = open_registry(store_uri, model_name).audit.records(ANONYMIZATION_EVENT)
    handled: set[str] = set()
    for record in records:
        payload = record.get("payload", {})
        if payload.get("sha256") == sha256:
            handled.update(str(c) for c in payload.get("handled", []))
    return handled


def unhandled_pii(columns: Iterable[str], pii: Iterable[str], handled: Iterable[str]) -> list[str]:
    """Return the PII columns present in ``columns`` and not in ``handled``, in data order."""
    marked, done = set(pii), set(handled)
    return [c for c in columns if c in marked and c not in done]


def check_pii_handled(
    store_uri: str, model_name: str, data_sha256: str, columns: Iterable[str]
) -> None:
    """Refuse training data that holds a PII-marked column no anonymization handled.

    Args:
        store_uri: Root of refit's store (holds the curated schema and the audit log).
        model_name: The model being trained.
        data_sha256: sha256 of the training data's bytes (the anonymised snapshot's hash).
        columns: The training data's columns.

    Raises:
        PrivacyError: Naming the unhandled PII column(s) and how to handle them.
    """
    schema = load_schema(store_uri, model_name)
    if schema is None:
        return
    columns = list(columns)
    pii = [c for c in pii_columns(schema) if c in columns]
    if not pii:
        return
    unhandled = unhandled_pii(columns, pii, handled_columns(store_uri, model_name, data_sha256))
    if unhandled:
        raise PrivacyError(
            f"training data {data_sha256[:12]} holds PII column(s) {unhandled} (tagged "
            f"{PII_TAG!r} in {schema_uri(store_uri, model_name)}) that no anonymize_data step "
            "handled: drop, tokenize or generalize them in the privacy config and train on "
            "the anonymized snapshot"
        )
