"""``refit report``: a model's retraining iterations over time, release records, metrics.

- ``refit report --store URI --model NAME [--last N] [--json]``: one row per iteration (run,
  start, trigger, drift share, decision, outcome, retraining latency trigger to live, cost, live
  version), then the live model's confidence on the snapshots of the last N windows. Exit status
  0, or 2 on bad input (unknown model, unreadable store).
- ``refit report record --store URI --model NAME --run LABEL --output DIR``: writes the run's
  release record as ``DIR/release-LABEL.md`` and ``.html``. Exit status 0, 1 when the audit chain
  is broken (the record is written and says so), 2 on bad input.
- ``refit report serve-metrics --store URI --model NAME [--model ...] --port P``: serves the
  models' Prometheus metrics at ``/metrics`` until interrupted.

``--store`` and ``--model`` may also come before the sub-command
(``refit report --store S --model M record --run R --output D``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from refit.commands import ListenHost, fail, renamed_option

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from refit.governance.confidence import ConfidenceSummary
    from refit.governance.history import History, Iteration

report_app = typer.Typer(
    help="Retraining iterations over time, release records and Prometheus metrics.",
    invoke_without_command=True,
)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store root: a folder or gs://bucket/path.")
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Registered model name.")]
_SPARK = "▁▂▃▄▅▆▇█"


def _store_model(ctx: typer.Context, store: str | None, model: str | None) -> tuple[str, str]:
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    store = store or parent.get("store")
    model = model or parent.get("model")
    if not store:
        raise typer.BadParameter("--store is required", param_hint="--store")
    if not model:
        raise typer.BadParameter("--model is required", param_hint="--model")
    return store, model


def _open(store: str, model: str) -> tuple[Any, History]:
    """Open the registry and read the history; fail (exit 2) when the model has no records."""
    from refit.errors import RefitError
    from refit.governance.history import read_history
    from refit.registry import open_registry

    try:
        registry = open_registry(store, model)
        history = read_history(registry)
        has_versions = bool(registry.list_version_numbers())
    except RefitError as exc:
        raise fail(str(exc)) from None
    if history.records == 0 and not has_versions:
        raise fail(f"model {model!r} has no audit records and no versions in store {store!r}")
    return registry, history


def _console(width: int = 160) -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else width, highlight=False)


def _num(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _spark(counts: list[int]) -> str:
    """One block per bin, height proportional to the square root of its count (empty: space)."""
    top = math.sqrt(max(counts, default=0))
    if top == 0:
        return ""
    levels = len(_SPARK) - 1
    return "".join(" " if c == 0 else _SPARK[round(levels * math.sqrt(c) / top)] for c in counts)


def iterations_table(model: str, iterations: list[Iteration]) -> Table:
    """The rich table of iterations ``refit report`` prints."""
    from rich.table import Table

    table = Table(title=f"refit report: {model}, one row per pipeline run")
    for name, justify in [
        ("run", "left"),
        ("started", "left"),
        ("trigger", "left"),
        ("drift share", "right"),
        ("decision", "left"),
        ("outcome", "left"),
        ("latency", "right"),
        ("cost", "right"),
        ("live", "right"),
    ]:
        # (ignore below) justify holds rich's JustifyMethod literals; the list infers str
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    style = {"retrain": "bold blue", "skip": "dim", "blocked": "bold red", "unknown": "yellow"}
    for it in iterations:
        table.add_row(
            it.run_label,
            it.started_at[:19].replace("T", " "),
            it.trigger,
            _num(it.drift_share),
            f"[{style.get(it.decision, '')}]{it.decision}[/]",
            it.outcome,
            _duration(it.latency_s),
            _num(it.cost, ".6f"),
            f"v{it.live_version}" if it.live_version is not None else "—",
        )
    return table


def confidence_table(summary: ConfidenceSummary) -> Table:
    """The rich table of the live model's confidence per window."""
    from rich.table import Table

    edges = summary.edges
    caption = (
        f"max-class probability; histogram: {len(edges) - 1} bins from {edges[0]:.2f} to "
        f"{edges[-1]:.2f}, bar height ~ sqrt(count)"
        if edges
        else None
    )
    table = Table(title=f"Confidence of live v{summary.version}", caption=caption)
    for name in ("window", "rows", "mean", "p10", "p50", "p90", "< 0.6", "histogram"):
        table.add_column(name, justify="left" if name in ("window", "histogram") else "right")
    rows = list(summary.windows) + ([summary.pooled] if summary.pooled is not None else [])
    for w in rows:
        if w.error:
            error = w.error if len(w.error) <= 70 else w.error[:69] + "…"
            table.add_row(w.run_label, "—", "—", "—", "—", "—", "—", f"not scored: {error}")
            continue
        q = w.quantiles
        table.add_row(
            w.run_label,
            str(w.rows),
            _num(w.mean, ".3f"),
            _num(q.get("p10"), ".3f"),
            _num(q.get("p50"), ".3f"),
            _num(q.get("p90"), ".3f"),
            _num(w.low_share, ".1%"),
            _spark(w.histogram),
        )
    return table


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label) or "run"


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    store: StoreOpt = None,
    model: ModelOpt = None,
    last: Annotated[
        int, typer.Option("--last", min=1, help="Show the last N iterations; score N windows.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    confidence: Annotated[
        bool,
        typer.Option(
            "--confidence/--no-confidence",
            help="Score the last N windows' snapshots with the live model.",
        ),
    ] = True,
) -> None:
    """Summarise a model's retraining iterations: drift, decisions, latency, cost, confidence."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"store": store, "model": model}
        return
    store, model = _store_model(ctx, store, model)
    from refit.governance.confidence import live_confidence

    registry, history = _open(store, model)
    shown = history.last(last)
    summary = live_confidence(registry, history, last=last) if confidence else None
    problems = registry.audit.verify()
    if as_json:
        out = {
            "model": model,
            "store": store,
            "live_version": registry.get_alias("champion"),
            "iterations_total": len(history.iterations),
            "decisions": history.decisions,
            "rollbacks": history.rollbacks,
            "chain": {"ok": not problems, "problems": problems, "records": history.records},
            "iterations": [it.to_dict() for it in shown],
            "confidence": None if summary is None else summary.to_dict(),
        }
        typer.echo(json.dumps(out, indent=2))
        return
    console = _console()
    live = registry.get_alias("champion")
    chain = (
        f"audit chain verified ({history.records} records)"
        if not problems
        else f"[bold red]audit chain BROKEN[/] ({len(problems)} problems: refit audit verify)"
    )
    console.print(
        f"model [bold]{model}[/] · live {'v' + str(live) if live is not None else 'none'} · "
        f"{len(history.iterations)} iterations, showing the last {len(shown)} · {chain}"
    )
    console.print(iterations_table(model, shown))
    if summary is not None:
        if summary.windows:
            console.print(confidence_table(summary))
        console.print(summary.note)


@report_app.command("record")
def record_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Option("--run", help="The run's label in the audit log.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the .md and .html.")],
    store: StoreOpt = None,
    model: ModelOpt = None,
) -> None:
    """Write one run's release record (Markdown and HTML) to DIR.

    Exit status 0, 1 when the audit chain is broken (the record is written and says so), 2 on bad
    input.
    """
    from refit.errors import RefitError
    from refit.governance.record import write_release_record

    store, model = _store_model(ctx, store, model)
    md = output / f"release-{_safe(run)}.md"
    page = output / f"release-{_safe(run)}.html"
    try:
        record = write_release_record(store, model, run, str(md), str(page))
    except RefitError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{record.outcome}; {record.chain_line}")
    typer.echo(f"wrote {md} and {page}")
    if not record.chain_ok:
        for problem in record.chain_problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)


@report_app.command("serve-metrics")
def serve_metrics_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 9108,
    listen_host: ListenHost = "0.0.0.0",
    addr: Annotated[str | None, typer.Option("--addr", hidden=True)] = None,  # old --listen-host
    store: StoreOpt = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="Model to export (repeat for more).")
    ] = None,
    cache_seconds: Annotated[
        float, typer.Option(min=0.0, help="Seconds one read of the store answers scrapes.")
    ] = 5.0,
    verify_chain: Annotated[
        bool,
        typer.Option(
            "--verify-chain/--no-verify-chain",
            help="Check each audit log's hash chain on every read (refit_audit_chain_intact).",
        ),
    ] = True,
) -> None:
    """Serve the models' Prometheus metrics at http://LISTEN_HOST:PORT/metrics until interrupted."""
    from refit.errors import RefitError
    from refit.monitoring.exporter import serve_metrics

    addr = renamed_option("report serve-metrics", "--addr", "--listen-host", addr, listen_host)

    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    names = list(models or ([parent["model"]] if parent.get("model") else []))
    store, _ = _store_model(ctx, store, names[0] if names else None)
    for name in names:
        _open(store, name)
    try:
        server, thread, _ = serve_metrics(
            store, names, port, addr=addr, cache_seconds=cache_seconds, verify_chain=verify_chain
        )
    except (RefitError, OSError) as exc:
        raise fail(f"cannot serve metrics on {addr}:{port}: {exc}") from None
    typer.echo(
        f"serving metrics of {', '.join(names)} at http://{addr}:{server.server_port}/metrics"
    )
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


def register(app: typer.Typer) -> None:
    """Add ``refit report`` to ``app``."""
    app.add_typer(report_app, name="report")
