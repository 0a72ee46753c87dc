"""Privacy before training: drop, tokenize (keyed HMAC-SHA256) or generalise columns.

A declarative :class:`PrivacyConfig` says what happens to which column; :func:`anonymize_table`
applies it, vectorised on Arrow. The tokenization key comes from an environment variable or a
mounted Secret file (:func:`load_key`) and never appears in a message, record or output.
The schema marks personal data with the ``pii`` annotation tag (:func:`mark_pii`,
:func:`pii_columns`), and training refuses a marked column that no anonymization handled
(:func:`check_pii_handled`).
"""

from refit.privacy.config import (
    DEFAULT_KEY_ENV,
    GENERALIZE_KINDS,
    TRUNCATE_UNITS,
    GeneralizeRule,
    PrivacyConfig,
)
from refit.privacy.keys import MIN_KEY_BYTES, TokenKey, load_key
from refit.privacy.pii import (
    ANONYMIZATION_EVENT,
    PII_TAG,
    SCHEMA_FILE,
    check_pii_handled,
    load_schema,
    mark_pii,
    pii_columns,
    save_schema,
    schema_uri,
    unhandled_pii,
)
from refit.privacy.transform import (
    TOKEN_HEX_CHARS,
    AnonymizedTable,
    anonymize_table,
    check_config_fits,
    generalize_column,
    tokenize_column,
)

__all__ = [
    "ANONYMIZATION_EVENT",
    "DEFAULT_KEY_ENV",
    "GENERALIZE_KINDS",
    "MIN_KEY_BYTES",
    "PII_TAG",
    "SCHEMA_FILE",
    "TOKEN_HEX_CHARS",
    "TRUNCATE_UNITS",
    "AnonymizedTable",
    "GeneralizeRule",
    "PrivacyConfig",
    "TokenKey",
    "anonymize_table",
    "check_config_fits",
    "check_pii_handled",
    "generalize_column",
    "load_key",
    "load_schema",
    "mark_pii",
    "pii_columns",
    "save_schema",
    "schema_uri",
    "tokenize_column",
    "unhandled_pii",
]
