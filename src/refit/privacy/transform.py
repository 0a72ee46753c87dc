"""Apply a privacy config to a table: drop, tokenize and generalise columns, vectorised.

* **Tokenize**: each value becomes the first :data:`TOKEN_HEX_CHARS` hex digits (128 bits) of
  HMAC-SHA256(key, value). Strings are hashed as UTF-8, integers as their decimal digits (so an
  integer id and the same id read as a string give the same token), binary values as is. The
  token depends only on the key and the value, not on the column or table, so two tables
  tokenized with one key still join. Nulls stay null. Each distinct value is hashed once.
* **Generalise**: ``bucket`` maps a number to the lower edge of its bucket,
  ``floor(x / width) * width``; ``bins`` maps it to the largest edge not above it (values below
  the first edge are bottom-coded to it); integer columns with integral widths or edges stay
  integer (int64), others become float64; NaN and nulls stay as they are. ``truncate`` floors
  dates and timestamps to the day, month or year (timestamps with a time zone in that zone).
* **Drop**: the column is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import PrivacyError
from refit.privacy.config import GeneralizeRule, PrivacyConfig
from refit.privacy.keys import TokenKey

__all__ = [
    "TOKEN_HEX_CHARS",
    "AnonymizedTable",
    "anonymize_table",
    "check_config_fits",
    "generalize_column",
    "tokenize_column",
]

#: Hex digits kept of each HMAC-SHA256 token (128 bits: collisions are negligible, birthday
#: bound about 2**64 distinct values).
TOKEN_HEX_CHARS = 32

_ArrowColumn: TypeAlias = pa.Array | pa.ChunkedArray


def _chunks(column: _ArrowColumn) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def _plain(dtype: pa.DataType) -> pa.DataType:
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def _is_text(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(dtype))
    )


def _is_binary(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    )


def _is_number(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype)


def _is_temporal(dtype: pa.DataType) -> bool:
    return pa.types.is_date(dtype) or pa.types.is_timestamp(dtype)


def _check_tokenizable(name: str, dtype: pa.DataType) -> None:
    plain = _plain(dtype)
    if not (_is_text(plain) or _is_binary(plain) or pa.types.is_integer(plain)):
        raise PrivacyError(
            f"cannot tokenize column {name!r}: it has type {dtype}; tokenize string, integer "
            "or binary columns (generalise numbers and dates instead, or cast the column)"
        )


def _check_generalizable(name: str, dtype: pa.DataType, rule: GeneralizeRule) -> None:
    if rule.kind in ("bucket", "bins") and not _is_number(dtype):
        raise PrivacyError(
            f"cannot generalize column {name!r} with {rule.kind}: it has type {dtype}, and "
            f"{rule.kind} needs an integer or float column (truncate dates, tokenize strings)"
        )
    if rule.kind == "truncate" and not _is_temporal(dtype):
        raise PrivacyError(
            f"cannot truncate column {name!r} to the {rule.value}: it has type {dtype}, and "
            "truncate needs a date or timestamp column (cast date strings first)"
        )


def _messages(values: pa.Array) -> list[bytes]:
    dtype = values.type
    if pa.types.is_integer(dtype):
        return [str(v).encode("ascii") for v in values.to_pylist()]
    if _is_text(dtype):
        return [v.encode("utf-8") for v in values.to_pylist()]
    return list(values.to_pylist())


def _tokenize_chunk(chunk: pa.Array, key: TokenKey) -> pa.Array:
    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.cast(chunk.type.value_type)
    encoded = chunk.dictionary_encode()
    distinct = encoded.dictionary
    size = TOKEN_HEX_CHARS // 2
    data = key.digests(_messages(distinct), size=size).hex().encode("ascii")
    offsets = np.arange(0, TOKEN_HEX_CHARS * (len(distinct) + 1), TOKEN_HEX_CHARS, dtype=np.int32)
    tokens = pa.Array.from_buffers(
        pa.string(), len(distinct), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return tokens.take(encoded.indices)


def tokenize_column(
    column: _ArrowColumn, key: TokenKey, *, name: str = "column"
) -> pa.ChunkedArray:
    """Replace each value by its keyed HMAC-SHA256 token (hex), keeping nulls.

    Args:
        column: A string, integer or binary column (dictionary-encoded ones too).
        key: The tokenization key.
        name: The column's name, for errors.

    Returns:
        A string column of :data:`TOKEN_HEX_CHARS`-digit lowercase hex tokens.

    Raises:
        PrivacyError: The column has another type.
    """
    _check_tokenizable(name, column.type)
    return pa.chunked_array([_tokenize_chunk(c, key) for c in _chunks(column)], pa.string())


def _integral(value: float | tuple[float, ...] | str) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return all(float(v).is_integer() for v in values)


def _generalize_numbers(chunk: pa.Array, rule: GeneralizeRule) -> pa.Array:
    as_int = pa.types.is_integer(chunk.type) and _integral(rule.value)
    mask = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None
    dtype = np.int64 if as_int else np.float64
    values = chunk.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    if rule.kind == "bucket":
        width = dtype(cast(float, rule.value))  # a bucket rule's value is its width
        out = (values // width) * width if as_int else np.floor(values / width) * width
    else:
        edges = np.asarray(rule.value, dtype=dtype)
        index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, None)
        out = edges[index]
        if not as_int:
            out = np.where(np.isnan(values), np.nan, out)
    return pa.array(out, type=pa.int64() if as_int else pa.float64(), mask=mask)


def generalize_column(
    column: _ArrowColumn, rule: GeneralizeRule, *, name: str = "column"
) -> pa.ChunkedArray:
    """Coarsen a column by a bucket, bins or truncation rule (see the module docstring).

    Args:
        column: A numeric column (``bucket``, ``bins``) or a date/timestamp one (``truncate``).
        rule: The rule.
        name: The column's name, for errors.

    Returns:
        The generalised column.

    Raises:
        PrivacyError: The column's type does not fit the rule.
    """
    _check_generalizable(name, column.type, rule)
    if rule.kind == "truncate":
        out = [pc.floor_temporal(c, unit=str(rule.value)) for c in _chunks(column)]
        return pa.chunked_array(out, column.type)
    out = [_generalize_numbers(c, rule) for c in _chunks(column)]
    as_int = pa.types.is_integer(column.type) and _integral(rule.value)
    return pa.chunked_array(out, pa.int64() if as_int else pa.float64())


@dataclass
class AnonymizedTable:
    """The result of :func:`anonymize_table`.

    Attributes:
        table: The anonymised table.
        dropped: Columns removed.
        tokenized: Columns replaced by tokens.
        generalized: Generalised columns and their rules (as in the JSON config).
        key_fingerprint: One-way id of the tokenization key ("" when nothing was tokenized).
    """

    table: pa.Table
    dropped: list[str] = field(default_factory=list)
    tokenized: list[str] = field(default_factory=list)
    generalized: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_fingerprint: str = ""

    @property
    def handled(self) -> list[str]:
        """Sorted columns dropped, tokenized or generalised."""
        return sorted({*self.dropped, *self.tokenized, *self.generalized})


def check_config_fits(table_schema: pa.Schema, config: PrivacyConfig) -> None:
    """Check that every column the config names exists and has a type its action accepts.

    Args:
        table_schema: The data's Arrow schema.
        config: The privacy config.

    Raises:
        PrivacyError: Naming the missing column(s), or the column whose type does not fit.
    """
    missing = [c for c in config.columns if c not in table_schema.names]
    if missing:
        raise PrivacyError(
            f"privacy config names column(s) {missing} that are not in the data "
            f"(columns: {table_schema.names})"
        )
    for name in config.tokenize:
        _check_tokenizable(name, table_schema.field(name).type)
    for name, rule in config.generalize.items():
        _check_generalizable(name, table_schema.field(name).type, rule)


def anonymize_table(
    table: pa.Table, config: PrivacyConfig, key: TokenKey | None = None
) -> AnonymizedTable:
    """Apply a privacy config to a table.

    Every check runs before any column is transformed, so a bad config fails fast.

    Args:
        table: The data.
        config: What to drop, tokenize and generalise.
        key: The tokenization key; required when the config tokenizes a column.

    Returns:
        The anonymised table (remaining columns in their original order) and what was done.

    Raises:
        PrivacyError: A named column is missing or has a type its action does not accept, or
            the config tokenizes without a key.
    """
    check_config_fits(table.schema, config)
    if config.tokenize and key is None:
        raise PrivacyError(
            f"privacy config tokenizes {list(config.tokenize)} but no key was given "
            f"(set {config.key_source})"
        )
    out = table.drop_columns(list(config.drop))
    for name in config.tokenize:
        index = out.schema.get_field_index(name)
        # (ignore below) the key is set when tokenizing (checked above)
        tokens = tokenize_column(out.column(index), key, name=name)  # type: ignore[arg-type]
        out = out.set_column(index, pa.field(name, tokens.type), tokens)
    for name, rule in config.generalize.items():
        index = out.schema.get_field_index(name)
        coarse = generalize_column(out.column(index), rule, name=name)
        out = out.set_column(index, pa.field(name, coarse.type), coarse)
    return AnonymizedTable(
        table=out,
        dropped=list(config.drop),
        tokenized=list(config.tokenize),
        generalized={c: r.to_dict() for c, r in config.generalize.items()},
        key_fingerprint=key.fingerprint if key is not None and config.tokenize else "",
    )
