"""``refit registry``: inspect and change a model registry.

- ``refit registry --store URI --model NAME list | show V | promote V | rollback | lineage``;
  human approval: ``approve V --by NAME [--reason TEXT]`` (then released to deployment unless
  ``--no-release``), ``reject V --by NAME --reason TEXT``, ``pending [--json]``.
- ``refit registry --store URI --model NAME verify [V]``: check every file of each version (or
  of V) against its manifest; exit status 1 on any mismatch.

Every bad input (a store that does not exist or has another scheme, a malformed model name, an
unknown version, a corrupt registry file) exits 2 with ``error: ...``. The store and registry
helpers here are shared with ``refit audit`` (`refit.commands.audit`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.commands import fail

registry_app = typer.Typer(help="Inspect and change a model registry.", no_args_is_help=True)

StoreOpt = Annotated[str, typer.Option("--store", help="Store root: a folder or gs://bucket/path.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Registered model name.")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def check_store(store: str) -> None:
    """Refuse a store URI with another scheme, or a local store folder that does not exist."""
    from refit.io.storage import open_storage

    storage = open_storage(store)  # RegistryError on a bad URI
    path = storage.local_path("")
    if path is not None and not path.is_dir():
        raise fail(f"--store {store}: no such store folder")


def open_model_registry(store: str, model: str, *, existing: bool = True) -> Any:
    """Open a model's registry, or exit 2 saying what is wrong with --store or --model."""
    from refit.errors import RefitError
    from refit.registry import open_registry

    try:
        check_store(store)
        reg = open_registry(store, model)
        if existing and not reg.storage.list("versions"):
            raise fail(f"--model {model!r}: no such model in store {store} (no versions)")
    except RefitError as exc:
        raise fail(str(exc)) from exc
    return reg


def _registry(ctx: typer.Context) -> Any:
    """The registry named by the group's ``--store`` and ``--model``."""
    return open_model_registry(ctx.obj["store"], ctx.obj["model"])


@registry_app.callback()
def registry_main(ctx: typer.Context, store: StoreOpt, model: ModelOpt) -> None:
    """Registry of STORE's model MODEL (local folder or gs://)."""
    if ctx.resilient_parsing:
        return
    open_model_registry(store, model)  # exit 2 now on a bad --store or --model
    ctx.obj = {"store": store, "model": model}


@registry_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the versions with status, aliases and metrics."""
    from rich.console import Console
    from rich.table import Table

    from refit.errors import RefitError

    reg = _registry(ctx)
    aliases: dict[int, list[str]] = {}
    try:
        for alias, version in sorted(reg.aliases().items()):
            aliases.setdefault(version, []).append(alias)
        versions = reg.list_versions()
    except RefitError as exc:
        raise fail(str(exc)) from exc
    table = Table(title=f"{reg.model_name} @ {reg.store_uri}")
    for col in ("version", "status", "aliases", "parent", "created", "sha256", "metrics"):
        table.add_column(col)
    for mv in versions:
        metrics = ", ".join(
            f"{k}={v:.3f}" for k, v in sorted(mv.metrics.items()) if isinstance(v, float)
        )
        table.add_row(
            str(mv.version),
            mv.status,
            ",".join(aliases.get(mv.version, [])),
            "" if mv.parent_version is None else str(mv.parent_version),
            mv.created_at[:19],
            mv.sha256[:12],
            metrics,
        )
    Console(width=200).print(table)


@registry_app.command("show")
def show_cmd(ctx: typer.Context, version: int) -> None:
    """Print one version's record as JSON."""
    from refit.errors import RegistryError

    try:
        mv = _registry(ctx).get(version)
    except RegistryError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(mv.to_dict(), indent=2, sort_keys=True))


def _move_champion(ctx: typer.Context, version: int | None, reason: str) -> Any:
    """Promote ``version`` (None: roll back) through the local target; exit 2 on refusal."""
    from refit.deploy import LocalTarget
    from refit.errors import RefitError

    try:
        target = LocalTarget(_registry(ctx))
        if version is None:
            return target.rollback(reason=reason, audit={"via": "cli"})
        return target.promote(version, reason=reason, audit={"via": "cli"})
    except RefitError as exc:
        raise fail(str(exc)) from exc


@registry_app.command("promote")
def promote_cmd(ctx: typer.Context, version: int, reason: Reason = "manual") -> None:
    """Make VERSION the champion (the old champion becomes previous)."""
    rollout = _move_champion(ctx, version, reason)
    typer.echo(f"champion: v{rollout.version} (previous: v{rollout.previous})")


@registry_app.command("rollback")
def rollback_cmd(ctx: typer.Context, reason: Reason = "manual") -> None:
    """Restore the previous champion."""
    rollout = _move_champion(ctx, None, reason)
    typer.echo(f"champion: v{rollout.version} (rolled back: v{rollout.previous})")


@registry_app.command("approve")
def approve_cmd(
    ctx: typer.Context,
    version: int,
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded in the audit log).")],
    reason: Reason = "",
    release: Annotated[
        bool,
        typer.Option("--release/--no-release", help="Release the approved version to deployment."),
    ] = True,
    target: Annotated[
        str, typer.Option("--deploy-target", help="Deployment target of the release.")
    ] = "local",
) -> None:
    """Approve VERSION (awaiting approval) and release it to deployment."""
    from refit.errors import RefitError
    from refit.governance.approval import approve, release_approved

    reg = _registry(ctx)
    try:
        decided = approve(reg, version, by=by, reason=reason, audit={"via": "cli"})
    except RefitError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"approved: v{version} by {decided.decided_by}")
    if not release:
        return
    try:
        live = release_approved(reg, version, target=target, run_label="approval")
    except RefitError as exc:
        raise fail(f"approved but not released: {exc}") from exc
    previous = reg.get_alias("previous")
    typer.echo(f"champion: v{live}" + ("" if previous is None else f" (previous: v{previous})"))


@registry_app.command("reject")
def reject_cmd(
    ctx: typer.Context,
    version: int,
    by: Annotated[str, typer.Option("--by", help="Who rejects (recorded in the audit log).")],
    reason: Annotated[str, typer.Option(help="Why (required; recorded in the audit log).")],
) -> None:
    """Reject VERSION (awaiting approval): it never goes live."""
    from refit.errors import RefitError
    from refit.governance.approval import reject

    try:
        decided = reject(_registry(ctx), version, by=by, reason=reason, audit={"via": "cli"})
    except RefitError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"rejected: v{version} by {decided.decided_by}: {decided.reason}")


@registry_app.command("pending")
def pending_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = (
        False
    ),
) -> None:
    """List the versions awaiting approval, with their expiry."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from refit.errors import RefitError
    from refit.governance.approval import pending

    reg = _registry(ctx)
    try:
        requests = pending(reg)
    except RefitError as exc:
        raise fail(str(exc)) from exc
    now = datetime.now(UTC)
    if as_json:
        rows = [{**r.to_dict(), "expired": r.expired(now)} for r in requests]
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not requests:
        typer.echo(f"no versions of {reg.model_name} await approval")
        return
    table = Table(title=f"{reg.model_name}: awaiting approval")
    for col in ("version", "parent", "requested", "expires", "run", "approvers"):
        table.add_column(col)
    for r in requests:
        expires = r.expires_at[:19] + (" (expired)" if r.expired(now) else "")
        table.add_row(
            str(r.version),
            "" if r.parent_version is None else str(r.parent_version),
            r.requested_at[:19],
            expires,
            r.run_label,
            ", ".join(r.approvers) or "anyone",
        )
    Console(width=200).print(table)


#: The model_lineage columns ``refit registry lineage`` prints.
_LINEAGE_SHOWN = ("model_id", "parent_id", "status", "aliases", "snapshot_sha256", "run_label",
                  "created_at", "promoted_at", "metrics")  # fmt: skip


def _lineage_cell(col: str, value: Any) -> str:
    """One printed cell of the lineage table: digests and times shortened."""
    if col == "snapshot_sha256" and value:
        value = value[:12]
    elif col.endswith("_at") and value:
        value = value[:19]
    return "" if value is None else str(value)


@registry_app.command("lineage")
def lineage_cmd(
    ctx: typer.Context,
    parquet: Annotated[Path | None, typer.Option(help="Also write it as Parquet.")] = None,
    sqlite: Annotated[
        Path | None, typer.Option(help="Also write it into this SQLite database.")
    ] = None,
) -> None:
    """Print the model_lineage table; export it as Parquet and SQLite."""
    from rich.console import Console
    from rich.table import Table

    from refit.errors import RefitError
    from refit.registry.lineage import lineage_rows, to_parquet, to_sqlite

    try:
        rows = lineage_rows(_registry(ctx))
    except RefitError as exc:
        raise fail(str(exc)) from exc
    table = Table(title="model_lineage")
    for col in _LINEAGE_SHOWN:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_lineage_cell(col, row[col]) for col in _LINEAGE_SHOWN))
    Console(width=220).print(table)
    if parquet is not None:
        typer.echo(f"wrote {to_parquet(rows, parquet)}")
    if sqlite is not None:
        typer.echo(f"wrote {to_sqlite(rows, sqlite)} (table model_lineage)")


@registry_app.command("verify")
def registry_verify_cmd(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Argument(help="One version (default: all).")] = None,
) -> None:
    """Check every file of the versions against their manifests."""
    from refit.errors import RefitError

    reg = _registry(ctx)
    try:
        numbers = reg.list_version_numbers() if version is None else [reg.get(version).version]
    except RefitError as exc:
        raise fail(str(exc)) from exc
    problems, notes = check_versions(reg, numbers)
    for line in notes:
        typer.echo(f"  note: {line}")
    for line in problems:
        typer.echo(f"  - {line}")
    typer.echo(f"{reg.model_name}: {'FAILED' if problems else 'ok'} ({len(numbers)} versions)")
    raise typer.Exit(1 if problems else 0)


def check_versions(reg: Any, numbers: list[int]) -> tuple[list[str], list[str]]:
    """Check versions' files against their manifests and registration records.

    Returns:
        (problems, notes): a changed, added or missing file, or a manifest that differs from the
        one its registration record holds; and the versions registered before manifests.
    """
    from refit.errors import RefitError
    from refit.registry.records import manifest_digest

    problems, old = [], []
    try:
        recorded = {
            r["payload"].get("version"): r["payload"].get("manifest_sha256")
            for r in reg.audit.records("registration")
        }
    except RefitError as exc:
        return [str(exc)], []
    for number in numbers:
        try:
            mv = reg.verify(number)
        except RefitError as exc:
            problems.append(str(exc))
            continue
        if not mv.manifest:
            old.append(f"v{number}")
        elif recorded.get(number) not in (None, manifest_digest(mv.manifest)):
            problems.append(
                f"version {number}: its manifest differs from the one its registration record "
                "holds (version.json was rewritten)"
            )
    notes = []
    if old:
        notes.append(
            f"{', '.join(old)} registered before manifests: only the model file and model.json's "
            "digest are checked, not every file"
        )
    return problems, notes


def register(app: typer.Typer) -> None:
    """Add ``refit registry`` to ``app``."""
    app.add_typer(registry_app, name="registry")
