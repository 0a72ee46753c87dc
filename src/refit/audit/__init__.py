"""Append-only, tamper-evident audit log and the names of its events."""

from refit.audit.events import AuditEvent
from refit.audit.log import GENESIS_HASH, AuditLog, canonical_json, record_hash

__all__ = ["GENESIS_HASH", "AuditEvent", "AuditLog", "canonical_json", "record_hash"]
