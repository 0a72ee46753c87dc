"""Markdown rendering of evaluation results: the gate's checks, fairness and the serving check.

Each renderer takes what the evaluate step writes to ``evaluation.json`` (a `GateResult`, or the
``fairness`` / ``serving`` summaries as dictionaries) and returns a Markdown report.
"""

from __future__ import annotations

from typing import Any

from refit.evaluation.fairness_config import DIFFERENCES, GROUP_METRICS, LABELS
from refit.evaluation.gate import FIRST_RUN_REASON, GateResult

__all__ = ["render_checks_markdown", "render_fairness_markdown", "render_serving_markdown"]


def render_checks_markdown(result: GateResult, title: str = "Promotion gate") -> str:
    """Render a gate result as a Markdown table of its checks.

    Args:
        result: The gate's result.
        title: Heading.

    Returns:
        Markdown text: a verdict line, the checks table, then the other reasons.
    """

    def fmt(x: Any) -> str:
        return "—" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)

    verdict = "**Blessed.**" if result.blessed else "**Not blessed.**"
    lines = [f"# {title}", "", verdict, ""]
    if result.first_run:
        lines += [f"_{FIRST_RUN_REASON}_", ""]
    lines += [
        "| check | metric | value | reference | result | detail |",
        "|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        detail = str(c.get("detail", "")).replace("|", "\\|")
        lines.append(
            f"| {c['kind']} | {c['metric']} | {fmt(c['value'])} | {fmt(c['reference'])} | "
            f"{'pass' if c['passed'] else 'FAIL'} | {detail} |"
        )
    if not result.checks:
        lines.append("| — | — | — | — | FAIL | no checks ran |")
    details = {c.get("detail") for c in result.checks}
    other = [r for r in result.reasons if r not in details]
    if other:
        lines += [""] + [f"- {r}" for r in other]
    return "\n".join(lines) + "\n"


def _fmt(interval: dict[str, Any] | None, signed: bool = False) -> str:
    if interval is None:
        return "—"
    value = f"{interval['value']:+.3f}" if signed else f"{interval['value']:.3f}"
    if interval.get("low") is None or interval.get("high") is None:
        return value
    pattern = "{:+.3f}" if signed else "{:.3f}"
    low, high = pattern.format(interval["low"]), pattern.format(interval["high"])
    return f"{value} [{low}, {high}]"


def render_fairness_markdown(summary: dict[str, Any] | None, title: str = "Fairness") -> str:
    """Render a fairness summary (``FairnessReport.to_dict()`` or an error) as Markdown.

    Args:
        summary: The ``fairness`` entry of ``evaluation.json``, or None when not configured.
        title: Heading.

    Returns:
        Markdown: the differences (challenger, champion, increase), then one table row per group
        and model with every metric and its interval, then the notes.
    """
    if summary is None:
        return (
            f"# {title}\n\n_No fairness check configured: add a `fairness` section "
            '(`{"attribute": COLUMN, ...}`) to the gate._\n'
        )
    attribute = summary.get("attribute")
    lines = [f"# {title} on `{attribute}`", ""]
    if "error" in summary:
        lines += [f"**Cannot check:** {summary['error']}", "", "The gate failed closed."]
        return "\n".join(lines) + "\n"
    conf = summary.get("confidence", 0.95)
    size = summary.get("min_group_size")
    lines += [
        f"Favourable outcome: `{summary.get('positive_label')}`. Intervals: {conf:.0%} "
        "(Wilson per group; seeded stratified bootstrap for the differences). "
        f"Groups with fewer than {size} rows (or, for the equal-opportunity difference, "
        f"{size} actual positives) are reported but not used for the differences or for "
        "blocking.",
        "",
        "| measure | challenger | champion | increase |",
        "|---|---|---|---|",
    ]
    champion = summary.get("champion")
    for diff in DIFFERENCES:
        chal = summary["challenger"].get(diff)
        where = "" if chal is None else f" ({chal['max_group']} vs {chal['min_group']})"
        champ = None if champion is None else champion.get(diff)
        inc = summary.get("increase", {}).get(diff)
        lines.append(
            f"| {LABELS[diff]} | {_fmt(chal)}{where} | "
            f"{'no champion' if champion is None else _fmt(champ)} | {_fmt(inc, signed=True)} |"
        )
    lines += [
        "",
        "| group | model | rows | positives | selection rate | TPR | FPR | accuracy | used |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        used = g["used"]
        marks = [
            name
            for name, key in (("DP", "demographic_parity_difference"),
                              ("EO", "equal_opportunity_difference"))
            if used.get(key)
        ]  # fmt: skip
        group = str(g["group"]).replace("|", "\\|")
        for side in ("challenger", "champion"):
            metrics = g.get(side)
            if metrics is None:
                continue
            cells = " | ".join(_fmt(metrics.get(m)) for m in GROUP_METRICS)
            lines.append(
                f"| {group} | {side} | {g['count']} | {g['positives']} | {cells} | "
                f"{', '.join(marks) or 'no (too small)'} |"
            )
    if summary.get("notes"):
        lines += [""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_serving_markdown(summary: dict[str, Any] | None, title: str = "Serving check") -> str:
    """Render a serving summary (``ServingReport.to_dict()`` or an error) as Markdown.

    Args:
        summary: The ``serving`` entry of ``evaluation.json``, or None when not configured.
        title: Heading.

    Returns:
        Markdown: one table row per model (latency, throughput, errors), then the notes.
    """
    if summary is None:
        return f"## {title}\n\n_No serving check configured._\n"
    lines = [f"## {title}", ""]
    if "error" in summary:
        return "\n".join(lines + [f"**Cannot check:** {summary['error']}"]) + "\n"
    lines += [
        f"{summary['requests']} requests per model after {summary['warmup']} warm-up, batch size "
        f"{summary['batch_size']}, {summary['protocol']}, {summary['order']}.",
        "",
        "| model | loaded | p50 ms | p99 ms | mean ms | requests/s | rows/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side in ("challenger", "champion"):
        s = summary.get(side)
        if s is None:
            continue
        loaded = "yes" if s["loaded"] else f"no: {s['load_error']}"
        errors = f"{s['errors']} of {s['requests']}"
        if s.get("first_error"):
            errors += f" (first: {s['first_error']})"
        rps = "—" if s["throughput_rps"] is None else f"{s['throughput_rps']:.0f}"
        rows = "—" if s["rows_per_s"] is None else f"{s['rows_per_s']:.0f}"
        cells = [side, loaded, _ms(s["p50_ms"]), _ms(s["p99_ms"]), _ms(s["mean_ms"]), rps, rows]
        cells.append(errors)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if summary.get("notes"):
        lines += [""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"
