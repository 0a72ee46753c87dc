"""Self-contained HTML report of a validation result (inline CSS, no network, no script)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2

from refit.validation.anomalies import ValidationResult
from refit.validation.statistics import (
    FeatureType,
    arrow_type_of,
    common_stats,
    feature_name,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:1.4em;margin:0 0 12px}h2{font-size:1.1em;margin:24px 0 8px}
.summary{padding:12px 16px;border-radius:6px;font-weight:600;font-size:1.1em}
.ok{background:#dafbe1;border:1px solid #4ac26b}.bad{background:#ffebe9;border:1px solid #ff8182}
table{border-collapse:collapse;font-size:0.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flag td{background:#fff8c5}.muted{color:#656d76}code{font-size:0.95em}
"""

_TYPE_NAMES = {v: k for k, v in FeatureType.items()}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _top_values(fstats: statistics_pb2.FeatureNameStatistics, limit: int = 5) -> str:
    if not fstats.HasField("string_stats"):
        return ""
    parts = [
        f"{_e(v.value)} <span class=muted>({_num(v.frequency)})</span>"
        for v in fstats.string_stats.top_values[:limit]
    ]
    return ", ".join(parts)


def _feature_row(
    fstats: statistics_pb2.FeatureNameStatistics, num_examples: int, flagged: set[str]
) -> str:
    name = feature_name(fstats)
    common = common_stats(fstats)
    missing = common.num_missing / num_examples if num_examples else 0.0
    cells = [
        f"<td><code>{_e(name)}</code></td>",
        f"<td>{_e(_TYPE_NAMES.get(fstats.type, '?'))} "
        f"<span class=muted>{_e(arrow_type_of(fstats))}</span></td>",
        f"<td class=num>{_num(common.num_non_missing)}</td>",
        f"<td class=num>{missing:.1%}</td>",
    ]
    if fstats.HasField("num_stats") and common.num_non_missing:
        ns = fstats.num_stats
        cells += [
            f"<td class=num>{_num(v)}</td>"
            for v in (ns.mean, ns.std_dev, ns.min, ns.median, ns.max)
        ]
        cells += [f"<td class=num>{_num(ns.num_zeros)}</td>", "<td></td>", "<td></td>"]
    elif fstats.HasField("string_stats"):
        cells += ["<td></td>"] * 6
        cells += [
            f"<td class=num>{_num(fstats.string_stats.unique)}</td>",
            f"<td>{_top_values(fstats)}</td>",
        ]
    else:
        cells += ["<td></td>"] * 8
    css = " class=flag" if name in flagged else ""
    return f"<tr{css}>{''.join(cells)}</tr>"


def render_validation_html(result: ValidationResult, title: str, notes: Sequence[str] = ()) -> str:
    """Render a validation result as one self-contained HTML page.

    Summary first ("OK" or "N anomalies"), then the anomalies table (feature, kind,
    description), then per-feature statistics. All data is escaped; the page has inline CSS
    only, no script and no external reference.

    Args:
        result: The validation result.
        title: Page title.
        notes: Lines shown under the summary (e.g. that the window has no labels).

    Returns:
        The HTML document.
    """
    rows = result.summary()
    dataset = result.statistics.datasets[0] if result.statistics.datasets else None
    num_examples = dataset.num_examples if dataset is not None else 0
    n_features = len(dataset.features) if dataset is not None else 0
    flagged = {r["feature"] for r in rows}
    if rows:
        n = len(rows)
        verdict = f"{n} anomal{'y' if n == 1 else 'ies'}"
        summary = (
            f'<div class="summary bad" id="summary">{verdict} in {len(flagged)} feature(s)</div>'
        )
    else:
        summary = '<div class="summary ok" id="summary">OK: no anomalies</div>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        summary,
        *(f'<p class="note">{_e(note)}</p>' for note in notes),
        f"<p class=muted>{_num(num_examples)} rows, {n_features} columns; schema with "
        f"{len(result.schema.feature)} features.</p>",
        "<h2>Anomalies</h2>",
    ]
    if rows:
        parts.append(
            '<table id="anomalies"><thead><tr><th>Feature</th><th>Kind</th>'
            "<th>Description</th></tr></thead><tbody>"
        )
        parts += [
            f"<tr><td><code>{_e(r['feature'])}</code></td><td>{_e(r['kind'])}</td>"
            f"<td>{_e(r['description'])}</td></tr>"
            for r in rows
        ]
        parts.append("</tbody></table>")
    else:
        parts.append('<p id="anomalies">None.</p>')
    parts.append("<h2>Feature statistics</h2>")
    parts.append(
        '<table id="statistics"><thead><tr><th>Feature</th><th>Type</th><th>Present</th>'
        "<th>Missing</th><th>Mean</th><th>Std dev</th><th>Min</th><th>Median</th><th>Max</th>"
        "<th>Zeros</th><th>Unique</th><th>Top values</th></tr></thead><tbody>"
    )
    if dataset is not None:
        parts += [_feature_row(f, num_examples, flagged) for f in dataset.features]
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts)
