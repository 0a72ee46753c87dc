"""`refit` commands of this area (see refit.cli)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
