"""Data validation in TFDV's formats: statistics, schema, anomalies and an HTML report."""

from refit.validation.anomalies import (
    ValidationOptions,
    ValidationResult,
    anomalies_from_text,
    anomalies_to_text,
    validate,
    validate_table,
)
from refit.validation.report import render_validation_html
from refit.validation.schema import infer_schema, schema_from_text, schema_to_text
from refit.validation.statistics import compute_statistics

__all__ = [
    "ValidationOptions",
    "ValidationResult",
    "anomalies_from_text",
    "anomalies_to_text",
    "compute_statistics",
    "infer_schema",
    "render_validation_html",
    "schema_from_text",
    "schema_to_text",
    "validate",
    "validate_table",
]
