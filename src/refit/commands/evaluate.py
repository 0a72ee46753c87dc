"""``refit`` commands for evaluation, the model registry and the audit log.

- ``refit evaluate``: challenger vs champion on a data set, through a gate; writes
  ``evaluation.json`` (metrics, intervals, paired test p-values, ``blessed``, ``reasons``).
  Exit status 0 when blessed, 1 when not (bad input included: the gate closes and says why).
- ``refit registry --store URI --model NAME list | show V | promote V | rollback | lineage``;
  human approval: ``approve V --by NAME [--reason TEXT]`` (then released to deployment unless
  ``--no-release``), ``reject V --by NAME --reason TEXT``, ``pending [--json]``.
- ``refit registry --store URI --model NAME verify [V]``: check every file of each version (or
  of V) against its manifest; exit status 1 on any mismatch.
- ``refit audit verify --store URI [--model NAME]``: exit status 1 when any record was edited,
  removed, reordered or forged (MAC), the live registry state differs from the one the log gives,
  or a version's files differ from their manifest (each problem is printed).
- ``refit audit recover --store URI --model NAME``: complete a transaction whose writer died.

Every bad input (a store that does not exist or has another scheme, a malformed model name, an
unknown version, a corrupt registry file or audit line) exits 2 with ``error: ...``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

registry_app = typer.Typer(help="Inspect and change a model registry.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the append-only audit log.", no_args_is_help=True)

StoreOpt = Annotated[str, typer.Option("--store", help="Store root: a folder or gs://bucket/path.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Registered model name.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def run_evaluation(
    challenger: Path,
    champion: Path | None,
    data: str,
    target: str,
    gate: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate model folders on a data set and return the ``evaluation.json`` content.

    Bad input (unreadable data or model, sha256 mismatch, different feature sets, unseen labels,
    a target the models were not trained for) gives ``blessed: false`` with the error as reason.
    """
    from refit.errors import RefitError
    from refit.evaluation import GateConfig, GateResult, compare_models
    from refit.io.tables import read_table
    from refit.training.artifacts import load_model

    config = GateConfig.from_dict(gate)
    try:
        challenger_model = load_model(str(challenger))
        champion_model = None if champion is None else load_model(str(champion))
        for label, model in (("challenger", challenger_model), ("champion", champion_model)):
            if model is not None and model.spec.target != target:
                raise RefitError(
                    f"--label-column {target!r}: the {label} was trained to predict "
                    f"{model.spec.target!r}"
                )
        comparison = compare_models(challenger_model, champion_model, read_table(data), config)
    except RefitError as exc:
        result = GateResult(False, [f"cannot evaluate: {exc}", "not blessed: gate closed"], False)
        return {"blessed": False, "reasons": result.reasons, "error": str(exc), "gate": gate}
    result = comparison.judge(config)
    p_values = {
        name: test.get("p_value") for name, test in comparison.tests.items() if "p_value" in test
    }
    notes = {name: test["error"] for name, test in comparison.tests.items() if "error" in test}
    return {
        "blessed": result.blessed,
        "reasons": result.reasons,
        "first_run": result.first_run,
        "checks": result.checks,
        "metrics": comparison.metrics("challenger"),
        "champion_metrics": None if champion is None else comparison.metrics("champion"),
        "n_rows": comparison.n_rows,
        "intervals": comparison.intervals,
        "paired": comparison.paired,
        "tests": comparison.tests,
        "p_values": p_values,
        "test_notes": notes,
        "slices": comparison.slices,
        "gate": config.to_dict(),
    }


def _check_store(store: str) -> None:
    """Refuse a store URI with another scheme, or a local store folder that does not exist."""
    from refit.io.storage import open_storage

    storage = open_storage(store)  # RegistryError on a bad URI
    path = storage.local_path("")
    if path is not None and not path.is_dir():
        raise _fail(f"--store {store}: no such store folder")


def _registry(store: str, model: str, *, existing: bool = True):
    """Open a model's registry, or exit 2 saying what is wrong with --store or --model."""
    from refit.errors import RefitError
    from refit.registry import open_registry

    try:
        _check_store(store)
        reg = open_registry(store, model)
        if existing and not reg.storage.list("versions"):
            raise _fail(f"--model {model!r}: no such model in store {store} (no versions)")
    except RefitError as exc:
        raise _fail(str(exc)) from exc
    return reg


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("evaluate")
    def evaluate_cmd(
        challenger: Annotated[Path, typer.Option(help="Challenger model folder.")],
        data: Annotated[str, typer.Option(help="Holdout data (CSV/Parquet, local or gs://).")],
        target: Annotated[str, typer.Option("--label-column", help="Label column.")],
        output: Annotated[Path, typer.Option(help="Folder for evaluation.json.")],
        champion: Annotated[
            Path | None, typer.Option(help="Champion model folder (none: first run).")
        ] = None,
        gate: Annotated[
            Path | None, typer.Option(help="Gate JSON (default: the pipeline's default gate).")
        ] = None,
    ) -> None:
        """Compare a challenger with a champion on the same rows and apply the promotion gate."""
        from refit.errors import PolicyError

        if gate is None:
            from refit.pipelines.retraining import DEFAULT_GATE

            gate_dict = dict(DEFAULT_GATE)
        else:
            try:
                gate_dict = json.loads(gate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise _fail(f"cannot read gate {gate}: {exc}") from exc
        try:
            report = run_evaluation(challenger, champion, data, target, gate_dict)
        except PolicyError as exc:
            raise _fail(f"gate {gate}: {exc}") from exc
        output.mkdir(parents=True, exist_ok=True)
        path = output / "evaluation.json"
        path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        for reason in report["reasons"]:
            typer.echo(f"  {reason}")
        typer.echo(f"{'blessed' if report['blessed'] else 'not blessed'}; wrote {path}")
        raise typer.Exit(0 if report["blessed"] else 1)

    @registry_app.callback()
    def registry_main(ctx: typer.Context, store: StoreOpt, model: ModelOpt) -> None:
        """Registry of STORE's model MODEL (local folder or gs://)."""
        if ctx.resilient_parsing:
            return
        _registry(store, model)  # exit 2 now on a bad --store or --model
        ctx.obj = {"store": store, "model": model}

    @registry_app.command("list")
    def list_cmd(ctx: typer.Context) -> None:
        """List the versions with status, aliases and metrics."""
        from rich.console import Console
        from rich.table import Table

        from refit.errors import RefitError

        reg = _registry(ctx.obj["store"], ctx.obj["model"])
        aliases: dict[int, list[str]] = {}
        try:
            for alias, version in sorted(reg.aliases().items()):
                aliases.setdefault(version, []).append(alias)
            versions = reg.list_versions()
        except RefitError as exc:
            raise _fail(str(exc)) from exc
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
            mv = _registry(ctx.obj["store"], ctx.obj["model"]).get(version)
        except RegistryError as exc:
            raise _fail(str(exc)) from exc
        typer.echo(json.dumps(mv.to_dict(), indent=2, sort_keys=True))

    @registry_app.command("promote")
    def promote_cmd(
        ctx: typer.Context,
        version: int,
        reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "manual",
    ) -> None:
        """Make VERSION the champion (the old champion becomes previous)."""
        from refit.deploy import LocalTarget
        from refit.errors import RefitError

        try:
            rollout = LocalTarget(_registry(ctx.obj["store"], ctx.obj["model"])).promote(
                version, reason=reason, audit={"via": "cli"}
            )
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        typer.echo(f"champion: v{rollout.version} (previous: v{rollout.previous})")

    @registry_app.command("rollback")
    def rollback_cmd(
        ctx: typer.Context,
        reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "manual",
    ) -> None:
        """Restore the previous champion."""
        from refit.deploy import LocalTarget
        from refit.errors import RefitError

        try:
            rollout = LocalTarget(_registry(ctx.obj["store"], ctx.obj["model"])).rollback(
                reason=reason, audit={"via": "cli"}
            )
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        typer.echo(f"champion: v{rollout.version} (rolled back: v{rollout.previous})")

    @registry_app.command("approve")
    def approve_cmd(
        ctx: typer.Context,
        version: int,
        by: Annotated[str, typer.Option("--by", help="Who approves (recorded in the audit log).")],
        reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
        release: Annotated[
            bool,
            typer.Option(
                "--release/--no-release", help="Release the approved version to deployment."
            ),
        ] = True,
        target: Annotated[
            str, typer.Option("--deploy-target", help="Deployment target of the release.")
        ] = "local",
    ) -> None:
        """Approve VERSION (awaiting approval) and release it to deployment."""
        from refit.errors import RefitError
        from refit.governance.approval import approve, release_approved

        reg = _registry(ctx.obj["store"], ctx.obj["model"])
        try:
            decided = approve(reg, version, by=by, reason=reason, audit={"via": "cli"})
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        typer.echo(f"approved: v{version} by {decided.decided_by}")
        if not release:
            return
        try:
            live = release_approved(reg, version, target=target, run_label="approval")
        except RefitError as exc:
            raise _fail(f"approved but not released: {exc}") from exc
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
            decided = reject(
                _registry(ctx.obj["store"], ctx.obj["model"]),
                version,
                by=by,
                reason=reason,
                audit={"via": "cli"},
            )
        except RefitError as exc:
            raise _fail(str(exc)) from exc
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

        reg = _registry(ctx.obj["store"], ctx.obj["model"])
        try:
            requests = pending(reg)
        except RefitError as exc:
            raise _fail(str(exc)) from exc
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
            rows = lineage_rows(_registry(ctx.obj["store"], ctx.obj["model"]))
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        shown = ("model_id", "parent_id", "status", "aliases", "snapshot_sha256", "run_label",
                 "created_at", "promoted_at", "metrics")  # fmt: skip
        table = Table(title="model_lineage")
        for col in shown:
            table.add_column(col)
        for row in rows:
            cells = []
            for col in shown:
                value = row[col]
                if col == "snapshot_sha256" and value:
                    value = value[:12]
                elif col.endswith("_at") and value:
                    value = value[:19]
                cells.append("" if value is None else str(value))
            table.add_row(*cells)
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

        reg = _registry(ctx.obj["store"], ctx.obj["model"])
        try:
            numbers = reg.list_version_numbers() if version is None else [reg.get(version).version]
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        problems, notes = _check_versions(reg, numbers)
        for line in notes:
            typer.echo(f"  note: {line}")
        for line in problems:
            typer.echo(f"  - {line}")
        typer.echo(f"{reg.model_name}: {'FAILED' if problems else 'ok'} ({len(numbers)} versions)")
        raise typer.Exit(1 if problems else 0)

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
        from refit.io.uri import join, list_prefix

        try:
            _check_store(store)
            models = [model] if model else _models(store, join, list_prefix)
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        if not models:
            raise _fail(f"--store {store}: no models under it")
        bad = 0
        for name in models:
            reg = _registry(store, name)
            log = reg.audit
            problems = log.verify()
            try:
                count = len(log.records()) if not problems else None
            except RefitError as exc:
                problems.append(str(exc))
            problems += reg.check_state()
            version_problems, notes = _check_versions(reg, reg.list_version_numbers())
            problems += version_problems
            if problems:
                bad += 1
                typer.echo(f"{name}: TAMPERED ({len(problems)} problem(s))")
                for p in problems:
                    typer.echo(f"  - {p}")
            else:
                typer.echo(f"{name}: intact ({count} records)")
                typer.echo("  state: aliases, statuses and policy state match the log")
            typer.echo(f"  protection: {log.protection()}")
            for line in notes:
                typer.echo(f"  note: {line}")
        raise typer.Exit(1 if bad else 0)

    @audit_app.command("recover")
    def recover_cmd(store: StoreOpt, model: ModelOpt) -> None:
        """Complete a registry transaction whose writer died after its audit record."""
        from refit.errors import RefitError

        reg = _registry(store, model)
        try:
            with reg.locked():
                repair = reg.audit.heal()  # a torn last line: cut off, noted by a record
            before = reg._refs()[0]["commit"]
            after = reg.recover()["commit"]
        except RefitError as exc:
            raise _fail(str(exc)) from exc
        if repair is not None:
            typer.echo(
                f"{model}: cut off a torn last audit line ({repair['payload']['cut_bytes']} "
                f"bytes), noted as record {repair['seq']}"
            )
        if before != after:
            typer.echo(f"{model}: completed the transaction of audit record seq {after['seq']}")
        elif repair is None:
            typer.echo(f"{model}: nothing to recover")

    app.add_typer(registry_app, name="registry")
    app.add_typer(audit_app, name="audit")


def _check_versions(reg: Any, numbers: list[int]) -> tuple[list[str], list[str]]:
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


def _models(store: str, join, list_prefix) -> list[str]:
    names = set()
    for uri in list_prefix(join(store, "models")):
        rest = uri[len(join(store, "models")) :].lstrip("/")
        if "/" in rest:
            names.add(rest.split("/", 1)[0])
    return sorted(names)
