"""Append-only, tamper-evident audit log."""

from refit.audit.log import GENESIS_HASH, AuditLog, canonical_json, record_hash

__all__ = ["GENESIS_HASH", "AuditLog", "canonical_json", "record_hash"]
