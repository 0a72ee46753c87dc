"""Self-contained HTML drift report (inline CSS, no scripts, no network)."""

from __future__ import annotations

import html

from refit.drift.detect import DriftResult, FeatureDrift

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:1.4em;margin:0 0 12px}
.summary{padding:12px 16px;border-radius:6px;margin-bottom:16px;font-size:1.1em}
.summary.drift{background:#ffebe9;border:1px solid #cf222e}
.summary.ok{background:#dafbe1;border:1px solid #1a7f37}
table{border-collapse:collapse;width:100%;font-size:.95em}
th,td{border-bottom:1px solid #d0d7de;padding:6px 10px;text-align:left}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fff5f5}
.yes{color:#cf222e;font-weight:600}
.no{color:#1a7f37}
.bar{display:inline-block;height:8px;background:#cf222e;vertical-align:middle;margin-left:6px}
.bar.ok{background:#8c959f}
.note{color:#57606a;font-size:.9em;margin-top:12px}
"""


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "&mdash;"
    if value != 0 and abs(value) < 10**-digits:
        return html.escape(f"{value:.2e}")
    return html.escape(f"{value:.{digits}f}")


def _bar(feature: FeatureDrift) -> str:
    """A CSS bar whose length shows how close to (or past) its threshold a feature is."""
    severity = feature.severity()
    closeness = 0.0 if severity == float("inf") else 1.0 / max(severity, 1e-12)
    width = int(round(min(closeness, 2.0) * 40))
    css = "bar" if feature.drifted else "bar ok"
    return f'<span class="{css}" style="width:{width}px"></span>'


def _row(feature: FeatureDrift) -> str:
    drifted = '<span class="yes">yes</span>' if feature.drifted else '<span class="no">no</span>'
    rule = "p &lt;" if feature.kind == "p_value" else "stat &ge;"
    missing = feature.missing_reference + feature.missing_current
    return (
        f'<tr class="{"drifted" if feature.drifted else "stable"}">'
        f"<td>{html.escape(feature.name)}</td>"
        f"<td>{html.escape(feature.type)}</td>"
        f"<td>{html.escape(feature.test)}</td>"
        f'<td class="num">{_num(feature.statistic)}{_bar(feature)}</td>'
        f'<td class="num">{_num(feature.p_value)}</td>'
        f'<td class="num">{_num(feature.p_value_adjusted)}</td>'
        f'<td class="num">{rule} {_num(feature.threshold)}</td>'
        f"<td>{drifted}</td>"
        f'<td class="num">{feature.n_reference} / {feature.n_current}</td>'
        f'<td class="num">{missing}</td>'
        "</tr>"
    )


def summary_line(result: DriftResult) -> str:
    """Plain-text summary, e.g. ``"2 of 5 features drifted, share 0.40"``."""
    return (
        f"{result.n_drifted} of {result.n_features} features drifted, "
        f"share {result.drift_share:.2f}"
    )


def render_drift_html(result: DriftResult, title: str = "Drift report") -> str:
    """Render a drift result as a self-contained HTML page.

    The summary comes first, then one row per feature, most drifted first (drifted features,
    then by p-value ascending / distance descending relative to the threshold).

    Args:
        result: The drift result.
        title: Page title and heading (escaped).

    Returns:
        The HTML document as a string.
    """
    verdict = "dataset drift detected" if result.drifted else "no dataset drift"
    summary = (
        f"{summary_line(result)} (dataset threshold {result.drift_share_threshold:.2f}): {verdict}"
    )
    rows = "\n".join(_row(f) for f in result.sorted_features())
    skipped = ""
    if result.skipped:
        items = "".join(
            f"<li>{html.escape(name)}: {html.escape(reason)}</li>"
            for name, reason in sorted(result.skipped.items())
        )
        skipped = f'<div class="note">Not tested:<ul>{items}</ul></div>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<div class="summary {"drift" if result.drifted else "ok"}">{html.escape(summary)}</div>'
        "<table><thead><tr><th>feature</th><th>type</th><th>test</th><th>statistic</th>"
        "<th>p-value</th><th>p adjusted</th><th>threshold</th><th>drifted</th>"
        "<th>rows (ref / cur)</th><th>missing</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
        f"{skipped}"
        '<div class="note">P-value tests drift when the p-value, adjusted for testing '
        "many features at once (Benjamini-Hochberg by default), is &lt; threshold; distance "
        "tests when the statistic &ge; threshold. Missing values are dropped before testing."
        "</div>"
        "</body></html>\n"
    )
