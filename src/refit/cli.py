"""The ``refit`` command."""

import typer

app = typer.Typer(help="refit: keep production models from drifting.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print refit's version."""
    from refit import __version__

    typer.echo(__version__)
