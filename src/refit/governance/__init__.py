"""Governance: human approval of releases and release records."""
