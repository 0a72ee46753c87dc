"""``refit demo``: the whole retraining loop over a built-in, seeded replay, embedded mode."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from refit.demo.data import TARGET, TIME_COLUMN, DemoScenario, make_windows
from refit.demo.timeline import WindowRow, render_timeline_html
from refit.pipelines.local import ReplayConfig, replay

MODEL_NAME = "credit-default"

#: The demo's retrain policy: drift on 30% of features, or accuracy under 0.75 for 2 windows.
DEMO_POLICY = {
    "drift_share_threshold": 0.3,
    "metric": "accuracy",
    "metric_threshold": 0.75,
    "consecutive_windows": 2,
    "cooldown_windows": 0,
}

#: The demo's promotion gate.
DEMO_GATE = {"thresholds": {"accuracy": 0.7, "roc_auc": 0.75}, "max_degradation": 0.03}


@dataclass
class DemoResult:
    """What a demo run produced."""

    rows: list[WindowRow]
    seconds: float
    html_path: Path
    json_path: Path | None


def timeline_table(rows: list[WindowRow]) -> Table:
    """Build the rich table printed at the end of the demo."""
    table = Table(title="refit demo: one pipeline run per weekly window", show_lines=False)
    for name, justify in [
        ("window", "right"),
        ("rows", "right"),
        ("anomalies", "right"),
        ("drift share", "right"),
        ("champion acc.", "right"),
        ("decision", "left"),
        ("reason", "left"),
        ("live", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    style = {"retrain": "bold blue", "skip": "dim", "blocked": "bold red"}
    for r in rows:
        decision = r.decision + (f" → v{r.promoted_version}" if r.promoted_version else "")
        table.add_row(
            str(r.window),
            "—" if r.rows is None else str(r.rows),
            str(r.anomalies),
            "—" if r.drift_share is None else f"{r.drift_share:.2f}",
            "—" if r.champion_accuracy is None else f"{r.champion_accuracy:.3f}",
            f"[{style[r.decision]}]{decision}[/]",
            "; ".join(r.reasons),
            f"v{r.live_version}" if r.live_version else "—",
        )
    return table


def run_demo(
    output: Path,
    scenario: DemoScenario | None = None,
    summary_json: Path | None = None,
    console: Console | None = None,
    runner: str = "subprocess",
    engine: str = "native",
) -> DemoResult:
    """Replay the built-in windows through the retraining pipeline and report the timeline.

    Args:
        output: Working folder (store, pipeline root, data, summary); replaced if it exists.
        scenario: Windows, rows per window, where each event falls, seed.
        summary_json: Where to write the timeline as JSON, if anywhere.
        console: Where progress and the table are printed.
        runner: ``subprocess`` (each task a subprocess of this Python) or ``docker`` (each task
            in its image, :func:`refit.pipelines.local.init_local`).
        engine: Statistics engine of validation and drift (``native`` or ``tfdv``).

    Returns:
        The timeline, wall time and where the summaries were written.
    """
    import shutil

    # Piped output has no width: 160 columns keep the timeline table readable in a log.
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    windows = make_windows(scenario or DemoScenario())
    start_day = datetime(2026, 1, 12)
    now = [(start_day + timedelta(days=7 * i)).isoformat() for i in range(len(windows))]
    config = ReplayConfig(
        workdir=output,
        model_name=MODEL_NAME,
        target=TARGET,
        time_column=TIME_COLUMN,
        policy=DEMO_POLICY,
        gate=DEMO_GATE,
        trainer="xgboost",
        params={"n_estimators": 100, "max_depth": 4},
        seed=(scenario or DemoScenario()).seed,
        runner=runner,
        engine=engine,
    )
    started = time.perf_counter()
    with console.status("") as status:

        def before(i: int) -> None:
            status.update(
                f"window {i + 1}/{len(windows)}: running the pipeline with kfp.local ({runner})…"
            )

        def after(row: WindowRow) -> None:
            share = "—" if row.drift_share is None else f"{row.drift_share:.2f}"
            console.print(
                f"window {row.window}: {row.decision:<7} drift share {share:>4}  "
                f"live v{row.live_version or '—'}  ({'; '.join(row.reasons)[:100]})"
            )

        rows = replay(windows, config, now=now, on_window=after, before_window=before)
    seconds = time.perf_counter() - started
    console.print(timeline_table(rows))
    html_path = output / "summary.html"
    html_path.write_text(
        render_timeline_html(rows, title="refit demo: retraining timeline"), encoding="utf-8"
    )
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(
            json.dumps([r.to_json() for r in rows], indent=2) + "\n", encoding="utf-8"
        )
    console.print(
        f"{len(rows)} windows in {seconds:.0f} s. Summary: {html_path}"
        + (f", JSON: {summary_json}" if summary_json else "")
        + f". Registry and audit log: {output / 'store'}"
    )
    store = output / "store"
    console.print(
        f"Next: `refit report --store {store} --model {MODEL_NAME}` (metrics over time), "
        f"`refit report record --store {store} --model {MODEL_NAME} --run window-03 "
        f"--output {output / 'records'}` (one retrain's release record)."
    )
    return DemoResult(rows=rows, seconds=seconds, html_path=html_path, json_path=summary_json)
