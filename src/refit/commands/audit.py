"""``refit audit``: check the append-only audit log, and recover a torn transaction.

- ``refit audit verify --store URI [--model NAME]``: exit status 1 when any record was edited,
  removed, reordered or forged (MAC), the live registry state differs from the one the log gives,
  or a version's files differ from their manifest (each problem is printed).
- ``refit audit recover --store URI --model NAME``: complete a transaction whose writer died.

Every bad input (a store that does not exist or has another scheme, a malformed model name, a
corrupt registry file or audit line) exits 2 with ``error: ...``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from refit.commands import fail
from refit.commands.registry import (
    ModelOpt,
    StoreOpt,
    check_store,
    check_versions,
    open_model_registry,
)

audit_app = typer.Typer(help="Check the append-only audit log.", no_args_is_help=True)


def _models(store: str) -> list[str]:
    """The model names with files under ``STORE/models``."""
    from refit.io.uri import join, list_prefix

    names = set()
    for uri in list_prefix(join(store, "models")):
        rest = uri[len(join(store, "models")) :].lstrip("/")
        if "/" in rest:
            names.add(rest.split("/", 1)[0])
    return sorted(names)


def _model_problems(reg: Any) -> tuple[list[str], int | None, list[str]]:
    """(problems, record count when the chain is intact, notes) of one model's log and files."""
    from refit.errors import RefitError

    log = reg.audit
    problems = log.verify()
    count = None
    try:
        count = len(log.records()) if not problems else None
    except RefitError as exc:
        problems.append(str(exc))
    problems += reg.check_state()
    version_problems, notes = check_versions(reg, reg.list_version_numbers())
    return problems + version_problems, count, notes


def _verify_model(store: str, name: str) -> bool:
    """Print one model's verdict, problems and notes; True when intact."""
    reg = open_model_registry(store, name)
    problems, count, notes = _model_problems(reg)
    if problems:
        typer.echo(f"{name}: TAMPERED ({len(problems)} problem(s))")
        for p in problems:
            typer.echo(f"  - {p}")
    else:
        typer.echo(f"{name}: intact ({count} records)")
        typer.echo("  state: aliases, statuses and policy state match the log")
    typer.echo(f"  protection: {reg.audit.protection()}")
    for line in notes:
        typer.echo(f"  note: {line}")
    return not problems


@audit_app.command("verify")
def verify_cmd(
    store: StoreOpt,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (default: every model).")
    ] = None,
) -> None:
    """Check the chain, the live state against the log, and each version's files.

    Names every edited, removed, reordered or forged record, every alias, status or state
    that differs from what the log says, and every file changed since registration.
    """
    from refit.errors import RefitError

    try:
        check_store(store)
        models = [model] if model else _models(store)
    except RefitError as exc:
        raise fail(str(exc)) from exc
    if not models:
        raise fail(f"--store {store}: no models under it")
    bad = sum(not _verify_model(store, name) for name in models)
    raise typer.Exit(1 if bad else 0)


@audit_app.command("recover")
def recover_cmd(store: StoreOpt, model: ModelOpt) -> None:
    """Complete a registry transaction whose writer died after its audit record."""
    from refit.errors import RefitError

    reg = open_model_registry(store, model)
    try:
        with reg.locked():
            repair = reg.audit.heal()  # a torn last line: cut off, noted by a record
        before = reg._refs()[0]["commit"]
        after = reg.recover()["commit"]
    except RefitError as exc:
        raise fail(str(exc)) from exc
    if repair is not None:
        typer.echo(
            f"{model}: cut off a torn last audit line ({repair['payload']['cut_bytes']} "
            f"bytes), noted as record {repair['seq']}"
        )
    if before != after:
        typer.echo(f"{model}: completed the transaction of audit record seq {after['seq']}")
    elif repair is None:
        typer.echo(f"{model}: nothing to recover")


def register(app: typer.Typer) -> None:
    """Add ``refit audit`` to ``app``."""
    app.add_typer(audit_app, name="audit")
