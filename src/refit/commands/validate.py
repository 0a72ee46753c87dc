"""``refit validate``: statistics, schema and anomalies of a dataset (see refit.cli)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
