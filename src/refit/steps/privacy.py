"""The privacy step: anonymise a snapshot before it feeds training."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from refit.errors import DataError, PrivacyError, SchemaError
from refit.io import uri as uri_io
from refit.io.snapshot import create_snapshot
from refit.io.tables import read_parquet_bytes, write_parquet
from refit.privacy import (
    ANONYMIZATION_EVENT,
    PII_TAG,
    TOKEN_HEX_CHARS,
    PrivacyConfig,
    anonymize_table,
    check_config_fits,
    load_key,
    load_schema,
    pii_columns,
    schema_uri,
    unhandled_pii,
)
from refit.registry import open_registry
from refit.steps.common import dict_param


@dataclass
class AnonymizeOutput:
    """What ``anonymize_data`` reports (column names and actions only: no values, no key).

    Attributes:
        sha256: The anonymised snapshot's content hash (names it in the store).
        input_sha256: Content hash of the snapshot that was read.
        rows: Row count.
        columns: Columns of the anonymised snapshot.
        dropped: Columns removed.
        tokenized: Columns replaced by HMAC-SHA256 tokens.
        generalized: Generalised columns and their rules.
        handled: Sorted union of the three.
        pii: Columns the model's curated schema tags ``pii`` that were in the input.
        key_source: Where the key was read from ("" when nothing was tokenized).
        key_fingerprint: One-way id of the key ("" when nothing was tokenized).
        markdown: A human-readable summary.
    """

    sha256: str
    input_sha256: str
    rows: int
    columns: list[str]
    dropped: list[str] = field(default_factory=list)
    tokenized: list[str] = field(default_factory=list)
    generalized: dict[str, dict[str, Any]] = field(default_factory=dict)
    handled: list[str] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)
    key_source: str = ""
    key_fingerprint: str = ""
    markdown: str = ""

    def record(self) -> dict[str, Any]:
        """Return the JSON-ready record written to the audit log and the KFP metadata."""
        out: dict[str, Any] = {
            "sha256": self.sha256,
            "input_sha256": self.input_sha256,
            "rows": self.rows,
            "columns": list(self.columns),
            "dropped": list(self.dropped),
            "tokenized": list(self.tokenized),
            "generalized": dict(self.generalized),
            "handled": list(self.handled),
            "pii": list(self.pii),
        }
        if self.tokenized:
            out["token"] = {
                "algorithm": "HMAC-SHA256",
                "hex_chars": TOKEN_HEX_CHARS,
                "key_source": self.key_source,
                "key_fingerprint": self.key_fingerprint,
            }
        return out


def _read_snapshot(snapshot_path: str) -> tuple[pa.Table, str]:
    data = uri_io.read_bytes(snapshot_path)
    table = read_parquet_bytes(data, snapshot_path)
    return table, hashlib.sha256(data).hexdigest()


def _config(privacy: PrivacyConfig | Mapping[str, Any] | str) -> PrivacyConfig:
    if isinstance(privacy, PrivacyConfig):
        return privacy
    if isinstance(privacy, str):
        return PrivacyConfig.from_json(privacy)
    try:
        return PrivacyConfig.from_dict(dict_param(privacy, "privacy"))
    except SchemaError as exc:
        raise PrivacyError(str(exc)) from None


def anonymization_markdown(out: AnonymizeOutput, model_name: str = "") -> str:
    """Render what an anonymization did as Markdown (columns and actions, never values).

    Args:
        out: The step's output.
        model_name: Model named in the title.

    Returns:
        The Markdown text.
    """
    title = f"Anonymization of {model_name} data" if model_name else "Anonymization"
    lines = [
        f"# {title}",
        "",
        f"- input snapshot: `{out.input_sha256}`",
        f"- anonymized snapshot: `{out.sha256}` ({out.rows} rows, {len(out.columns)} columns)",
        f"- PII-marked columns in the input: {', '.join(out.pii) or 'none'}",
        "",
        "| column | action | detail |",
        "|---|---|---|",
    ]
    for name in out.dropped:
        lines.append(f"| `{name}` | dropped | |")
    for name in out.tokenized:
        lines.append(f"| `{name}` | tokenized | HMAC-SHA256, first {TOKEN_HEX_CHARS} hex digits |")
    for name, rule in out.generalized.items():
        ((kind, value),) = rule.items()
        lines.append(f"| `{name}` | generalized | {kind} {value} |")
    if not out.handled:
        lines.append("| | nothing to do | the privacy config names no column |")
    if out.tokenized:
        lines += [
            "",
            f"Tokenization key: read from {out.key_source}; fingerprint `{out.key_fingerprint}` "
            "(a one-way id: a different fingerprint means tokens do not join with earlier runs).",
        ]
    return "\n".join(lines) + "\n"


def anonymize_data(
    snapshot_path: str,
    store_uri: str,
    model_name: str,
    output_path: str,
    privacy: PrivacyConfig | Mapping[str, Any] | str,
    *,
    time_column: str = "",
    run_label: str = "",
    environ: Mapping[str, str] | None = None,
) -> AnonymizeOutput:
    """Drop, tokenize and generalise a snapshot's columns into a new snapshot.

    Checks run before anything is written: the config, the columns it names and their types,
    every PII-marked column of the model's curated schema (:func:`refit.privacy.schema_uri`)
    being handled, and the key (only when a column is tokenized). The anonymised table is stored
    as a content-addressed snapshot, written to ``output_path`` (the same canonical bytes, so
    its sha256 is the snapshot's), and an ``anonymization`` record naming the columns and their
    actions (never values, never the key) is appended to the model's audit log; the training
    step reads it to accept the handled PII columns.

    Args:
        snapshot_path: Parquet file (path or URI) of the snapshot to anonymise.
        store_uri: Root of refit's store (snapshots, curated schema, audit log).
        model_name: Model whose schema and audit log are used.
        output_path: Where the anonymised Parquet is written (the KFP Dataset output).
        privacy: The privacy config: a :class:`PrivacyConfig`, its dict, or its JSON text.
        time_column: Optional event-time column recorded as the new snapshot's window (ignored
            when the config drops it).
        run_label: Label of this pipeline run in the audit log.
        environ: Environment the key variable is read from; ``os.environ`` if None.

    Returns:
        The new snapshot's sha256 and what was done to which column.

    Raises:
        PrivacyError: The config is invalid or does not fit the data, a PII-marked column is
            left unhandled, or the key is missing or too short (named, never shown).
        DataError: The snapshot cannot be read, lacks ``time_column``, or the store cannot be
            written.
    """
    config = _config(privacy)
    table, input_sha256 = _read_snapshot(snapshot_path)
    check_config_fits(table.schema, config)
    if time_column and time_column not in table.column_names:
        raise DataError(
            f"time column {time_column!r} is not in the snapshot (columns: {table.column_names})"
        )
    schema = load_schema(store_uri, model_name)
    pii = [c for c in pii_columns(schema) if c in table.column_names] if schema else []
    left = unhandled_pii(table.column_names, pii, config.handled)
    if left:
        raise PrivacyError(
            f"PII column(s) {left} (tagged {PII_TAG!r} in {schema_uri(store_uri, model_name)}) "
            "are not handled by the privacy config: drop, tokenize or generalize them"
        )
    key = load_key(config, environ) if config.tokenize else None
    result = anonymize_table(table, config, key)
    window_column = time_column if time_column in result.table.column_names else None
    snap = create_snapshot(
        result.table,
        store_uri,
        source=f"anonymize_data of snapshot {input_sha256}",
        time_column=window_column,
    )
    write_parquet(result.table, output_path)
    out = AnonymizeOutput(
        sha256=snap.sha256,
        input_sha256=input_sha256,
        rows=result.table.num_rows,
        columns=list(result.table.column_names),
        dropped=result.dropped,
        tokenized=result.tokenized,
        generalized=result.generalized,
        handled=result.handled,
        pii=pii,
        key_source=config.key_source if result.tokenized else "",
        key_fingerprint=result.key_fingerprint,
    )
    out.markdown = anonymization_markdown(out, model_name)
    open_registry(store_uri, model_name).audit.append(
        ANONYMIZATION_EVENT, {"run_label": run_label, **out.record()}
    )
    return out
