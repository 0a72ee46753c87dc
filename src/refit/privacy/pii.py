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

The marks travel with the data on its KFP artifact, so training needs no store:
``snapshot_data`` puts the PII-marked columns of the window in its output's metadata (``pii``),
and ``anonymize_data`` puts the columns it handled (``handled``) and the sha256 of the bytes it
wrote on its own output (it also appends an ``anonymization`` record to the audit log). Before
training, the training step calls :func:`check_pii_handled` on its input's metadata: every
PII-marked column still in the training data must be handled for exactly those bytes, else
training stops with a :class:`~refit.errors.PrivacyError` naming the column(s). A dropped column
is simply absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

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


def unhandled_pii(columns: Iterable[str], pii: Iterable[str], handled: Iterable[str]) -> list[str]:
    """Return the PII columns present in ``columns`` and not in ``handled``, in data order."""
    marked, done = set(pii), set(handled)
    return [c for c in columns if c in marked and c not in done]


def check_pii_handled(
    metadata: Mapping[str, Any] | None, data_sha256: str, columns: Iterable[str]
) -> None:
    """Refuse training data that holds a PII-marked column no anonymization handled.

    The marks travel with the data, on its KFP artifact: ``snapshot_data`` lists the columns
    the model's curated schema tags ``pii`` (``pii``), and ``anonymize_data`` adds the columns
    it handled (``handled``) and the sha256 of the bytes it wrote. Data without marks (a
    dataset imported into another pipeline) is not checked: no schema says what is personal.

    Args:
        metadata: The training data artifact's metadata (``pii``, ``handled``, ``sha256``);
            None or without ``pii``: nothing to check.
        data_sha256: sha256 of the training data's bytes.
        columns: The training data's columns.

    Raises:
        PrivacyError: The marks describe other bytes, or a PII column is left unhandled
            (named, with how to handle it).
    """
    pii = list((metadata or {}).get("pii") or [])
    columns = list(columns)
    if metadata is None or not any(c in columns for c in pii):  # no metadata: no pii
        return
    marked_sha = str(metadata.get("sha256") or "")
    if marked_sha and marked_sha != data_sha256:
        raise PrivacyError(
            f"the training data's PII marks describe snapshot {marked_sha[:12]}, not these "
            f"bytes ({data_sha256[:12]}): train on the artifact anonymize_data wrote"
        )
    unhandled = unhandled_pii(columns, pii, metadata.get("handled") or [])
    if unhandled:
        raise PrivacyError(
            f"training data {data_sha256[:12]} holds PII column(s) {unhandled} (tagged "
            f"{PII_TAG!r} in the model's curated schema) that no anonymize_data step "
            "handled: drop, tokenize or generalize them in the privacy config and train on "
            "the anonymized snapshot"
        )
