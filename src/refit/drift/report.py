"""Self-contained HTML drift report (inline CSS and SVG, no scripts, no network).

It renders inside the KFP UI's iframe: the summary comes first, then a table of every feature
sorted by drift, then one card per feature with the reference and current distributions drawn
as inline SVG, the test, value, threshold and p-value, and the missing / infinite /
new-category checks. When the result carries a model explanation, a table of the features that
moved the predictions follows the summary.
"""

from __future__ import annotations

import html
import math
from typing import Any

from refit.drift.result import DriftResult, FeatureDrift

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:1.4em;margin:0 0 12px}
h2{font-size:1.15em;margin:24px 0 8px}
h3{font-size:1em;margin:0 0 6px}
.summary{padding:12px 16px;border-radius:6px;margin-bottom:16px;font-size:1.1em}
.summary.drift{background:#ffebe9;border:1px solid #cf222e}
.summary.ok{background:#dafbe1;border:1px solid #1a7f37}
.alerts{padding:8px 16px;border-radius:6px;margin-bottom:16px;background:#fff8c5;
border:1px solid #d4a72c}
table{border-collapse:collapse;width:100%;font-size:.95em}
th,td{border-bottom:1px solid #d0d7de;padding:6px 10px;text-align:left}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fff5f5}
tr.nc td{background:#fff8c5}
.yes{color:#cf222e;font-weight:600}
.no{color:#1a7f37}
.warn{color:#9a6700;font-weight:600}
.bar{display:inline-block;height:8px;background:#cf222e;vertical-align:middle;margin-left:6px}
.bar.ok{background:#8c959f}
.note{color:#57606a;font-size:.9em;margin-top:12px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px;width:360px}
.card.drifted{border-color:#cf222e}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:2px 8px;margin:6px 0 0;font-size:.85em}
.card dt{color:#57606a}
.card dd{margin:0}
.legend{font-size:.8em;color:#57606a}
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 8px;vertical-align:middle}
"""

_REF, _CUR = "#8c959f", "#0969da"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&mdash;"
    if math.isinf(value):
        return "&infin;"
    if value != 0 and abs(value) < 10**-digits:
        return html.escape(f"{value:.2e}")
    return html.escape(f"{value:.{digits}f}")


def _bar(feature: FeatureDrift) -> str:
    """A CSS bar whose length shows how close to (or past) its threshold a feature is."""
    if not feature.comparable:
        return ""
    severity = feature.severity()
    closeness = 0.0 if severity == float("inf") else 1.0 / max(severity, 1e-12)
    width = int(round(min(closeness, 2.0) * 40))
    css = "bar" if feature.drifted else "bar ok"
    return f'<span class="{css}" style="width:{width}px"></span>'


def _verdict(feature: FeatureDrift) -> str:
    if not feature.comparable:
        return '<span class="warn">not comparable</span>'
    return '<span class="yes">yes</span>' if feature.drifted else '<span class="no">no</span>'


def _checks_text(feature: FeatureDrift) -> str:
    parts = []
    for name, check in feature.checks.items():
        if not check.get("alert"):
            continue
        if name == "new_categories":
            cats = ", ".join(check.get("categories", [])[:5])
            parts.append(
                f"{check['count']} new categor{'y' if check['count'] == 1 else 'ies'} "
                f"({check['current_share']:.1%} of rows: {cats})"
            )
        else:
            parts.append(
                f"{name} share {check['reference_share']:.1%} \u2192 {check['current_share']:.1%}"
            )
    if not parts:
        return '<span class="no">ok</span>'
    return '<span class="warn">' + html.escape("; ".join(parts)) + "</span>"


def _row(feature: FeatureDrift) -> str:
    rule = "p &lt;" if feature.kind == "p_value" else "stat &ge;"
    missing = feature.missing_reference + feature.missing_current
    css = "nc" if not feature.comparable else ("drifted" if feature.drifted else "stable")
    return (
        f'<tr class="{css}" data-feature="{html.escape(feature.name)}">'
        f"<td>{html.escape(feature.name)}</td>"
        f"<td>{html.escape(feature.type)}</td>"
        f"<td>{html.escape(feature.test or '-')}</td>"
        f'<td class="num">{_num(feature.statistic)}{_bar(feature)}</td>'
        f'<td class="num">{_num(feature.p_value)}</td>'
        f'<td class="num">{_num(feature.p_value_adjusted)}</td>'
        f'<td class="num">{rule} {_num(feature.threshold)}</td>'
        f"<td>{_verdict(feature)}</td>"
        f'<td class="num">{feature.n_reference} / {feature.n_current}</td>'
        f'<td class="num">{missing}</td>'
        f"<td>{_checks_text(feature)}</td>"
        "</tr>"
    )


def _svg(distribution: dict[str, Any]) -> str:
    """Reference and current shares as paired bars (inline SVG)."""
    ref = [float(v) for v in distribution.get("reference", [])]
    cur = [float(v) for v in distribution.get("current", [])]
    if not ref or not cur:
        return ""
    width, height, pad = 340, 120, 18
    n = len(ref)
    top = max(max(ref), max(cur), 1e-12)
    slot = (width - 2) / n
    bars = []
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = 1 + i * slot
        for j, (value, colour) in enumerate(((r, _REF), (c, _CUR))):
            h = (height - pad) * value / top
            bars.append(
                f'<rect x="{x + j * slot / 2:.1f}" y="{height - pad - h:.1f}" '
                f'width="{max(slot / 2 - 0.5, 0.5):.1f}" height="{h:.1f}" fill="{colour}"/>'
            )
    labels = distribution.get("labels", [])
    if distribution.get("kind") == "bins" and labels:
        caption = f"{_plain(labels[0])} &hellip; {_plain(labels[-1])}"
    else:
        caption = html.escape(", ".join(str(x) for x in labels[:6])[:60])
    title = "reference (grey) vs current (blue) shares"
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}"><title>{title}</title>'
        + "".join(bars)
        + f'<line x1="0" y1="{height - pad}" x2="{width}" y2="{height - pad}" stroke="#57606a"/>'
        f'<text x="2" y="{height - 4}" font-size="10" fill="#57606a">{caption}</text></svg>'
    )


def _plain(value: Any) -> str:
    try:
        return html.escape(f"{float(value):.4g}")
    except (TypeError, ValueError):
        return html.escape(str(value))


def _card(feature: FeatureDrift) -> str:
    css = "card drifted" if feature.drifted else "card"
    body = (
        f'<p class="warn">not comparable: {html.escape(feature.reason)}</p>'
        if not feature.comparable
        else _svg(feature.distribution)
    )
    bound = (
        ""
        if not feature.error_bound
        else f"<dt>approx. error</dt><dd>&le; {_num(feature.error_bound)}</dd>"
    )
    return (
        f'<div class="{css}" data-feature="{html.escape(feature.name)}">'
        f"<h3>{html.escape(feature.name)} &mdash; {_verdict(feature)}</h3>{body}"
        f'<div class="legend"><span class="sw" style="background:{_REF}"></span>reference'
        f'<span class="sw" style="background:{_CUR}"></span>current</div>'
        f"<dl><dt>test</dt><dd>{html.escape(feature.test or '-')} "
        f"({html.escape(feature.type)})</dd>"
        f"<dt>value</dt><dd>{_num(feature.statistic)}</dd>"
        f"<dt>threshold</dt><dd>{_num(feature.threshold)}</dd>"
        f"<dt>p-value</dt><dd>{_num(feature.p_value)} (adjusted {_num(feature.p_value_adjusted)})"
        f"</dd>{bound}<dt>checks</dt><dd>{_checks_text(feature)}</dd></dl></div>"
    )


def _explanation(result: DriftResult) -> str:
    explanation = result.explanation
    rows = explanation.get("features") or []
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(str(r['feature']))}</td>"
        f'<td class="num">{_num(r.get("reference"))}</td>'
        f'<td class="num">{_num(r.get("current"))}</td>'
        f'<td class="num">{_num(r.get("shift"))}</td></tr>'
        for r in rows
    )
    return (
        "<h2>Which features moved the predictions</h2>"
        f'<p class="note">{html.escape(str(explanation.get("method", "")))}; mean prediction '
        f"{_num(explanation.get('mean_prediction_reference'))} &rarr; "
        f"{_num(explanation.get('mean_prediction_current'))}</p>"
        '<table id="explanation"><thead><tr><th>feature</th><th>mean |contribution| reference'
        "</th><th>current</th><th>shift</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def summary_line(result: DriftResult) -> str:
    """Plain-text summary, e.g. ``"2 of 5 features drifted, share 0.40"``."""
    return (
        f"{result.n_drifted} of {result.n_features} features drifted, "
        f"share {result.drift_share:.2f}"
    )


def render_drift_html(
    result: DriftResult, title: str = "Drift report", extra_html: str = ""
) -> str:
    """Render a drift result as a self-contained HTML page.

    The summary comes first, then one row per feature, most drifted first (features that could
    not be compared, then drifted features, then by p-value ascending / distance descending
    relative to the threshold), then a card per feature with its distributions.

    Args:
        result: The drift result.
        title: Page title and heading (escaped).
        extra_html: An HTML fragment placed after the feature table (e.g. the multivariate
            check's section, :func:`refit.drift.multivariate.render_multivariate_html`).

    Returns:
        The HTML document as a string.
    """
    verdict = "dataset drift detected" if result.drifted else "no dataset drift"
    summary = (
        f"{summary_line(result)} (dataset threshold {result.drift_share_threshold:.2f}): {verdict}"
    )
    alerts = []
    if result.not_comparable:
        alerts.append(
            f"{len(result.not_comparable)} not comparable: "
            + "; ".join(f"{n} ({r})" for n, r in sorted(result.not_comparable.items()))
        )
    if result.check_alerts:
        alerts.append(
            "check alerts: "
            + "; ".join(f"{n} ({', '.join(c)})" for n, c in sorted(result.check_alerts.items()))
        )
    alert_html = (
        '<div class="alerts">' + "<br>".join(html.escape(a) for a in alerts) + "</div>"
        if alerts
        else ""
    )
    ordered = result.sorted_features()
    rows = "\n".join(_row(f) for f in ordered)
    cards = "\n".join(_card(f) for f in ordered)
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
        f'<div class="summary {"drift" if result.drifted else "ok"}" id="summary">'
        f"{html.escape(summary)}</div>{alert_html}"
        f"{_explanation(result)}"
        "<h2>Features, most drifted first</h2>"
        '<table id="features"><thead><tr><th>feature</th><th>type</th><th>test</th>'
        "<th>statistic</th><th>p-value</th><th>p adjusted</th><th>threshold</th><th>drifted</th>"
        "<th>rows (ref / cur)</th><th>missing</th><th>checks</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
        f"{skipped}"
        '<div class="note">P-value tests drift when the p-value, adjusted for testing '
        "many features at once (Benjamini-Hochberg by default), is &lt; threshold; distance "
        "tests when the statistic &ge; threshold. Missing and infinite values are left out of "
        "the test and checked on their own (missing, infinite, new categories); those checks "
        "do not count toward the drift share.</div>"
        f"{extra_html}"
        f'<h2>Distributions</h2><div class="cards">{cards}</div>'
        "</body></html>\n"
    )
