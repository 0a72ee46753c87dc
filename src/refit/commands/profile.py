"""``refit profile``: a mergeable reference profile of a data set, for ``refit drift``."""

from __future__ import annotations

from typing import Annotated

import typer

from refit.commands import fail


def profile_command(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, folder or URI.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the profile (JSON).")
    ],
    columns: Annotated[
        list[str] | None, typer.Option("--column", help="Profile only these columns.")
    ] = None,
) -> None:
    """Profile DATA in one streaming pass into a mergeable drift reference (JSON)."""
    from refit.drift.profile_io import profile_uri, save_profile
    from refit.errors import RefitError

    try:
        profile = profile_uri(data, columns or None)
        save_profile(profile, output)
    except RefitError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"profiled {profile.rows} rows x {len(profile.features)} columns -> {output}")


def register(app: typer.Typer) -> None:
    """Add ``refit profile`` to ``app``."""
    app.command("profile")(profile_command)
