"""The ``refit`` command's sub-commands: one module per command or command group, named after it.

Each module has ``register(app)``; `refit.cli` assembles them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")

#: The address a server listens on (``refit serve-model``, ``refit report serve-metrics``).
ListenHost = Annotated[str, typer.Option("--listen-host", help="Address to listen on.")]


def fail(message: str) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr; return the exit (status 2) for the caller to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def json_object(text: str, what: str) -> dict[str, Any]:
    """Parse option ``what``'s JSON object, or raise `typer.BadParameter` naming it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return value


def deprecated_alias(app: typer.Typer, old: str, new: str, command: Callable[..., Any]) -> None:
    """Register ``command`` also as hidden ``refit OLD``, which first says it is deprecated.

    The alias takes the same options and behaves identically, after one line on stderr:
    "`refit OLD` is deprecated: use `refit NEW`".
    """

    @functools.wraps(command)
    def alias(*args: Any, **kwargs: Any) -> Any:
        typer.echo(f"`refit {old}` is deprecated: use `refit {new}`", err=True)
        return command(*args, **kwargs)

    app.command(old, hidden=True)(alias)


def renamed_option(command: str, old: str, new: str, old_value: T | None, value: T) -> T:
    """The value of option ``new``, or of its deprecated hidden spelling ``old`` when given.

    The old spelling works for one release, after one line on stderr:
    "`refit COMMAND OLD` is deprecated: use `NEW`".
    """
    if old_value is None:
        return value
    typer.echo(f"`refit {command} {old}` is deprecated: use `{new}`", err=True)
    return old_value
