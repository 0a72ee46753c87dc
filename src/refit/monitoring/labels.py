"""Labels that arrive late, joined to the prediction log; realised against estimated performance.

In production a prediction's label (did the customer default?) often lands days or weeks after
the prediction, or never. `join_labels` joins whatever labels have landed so far to the
prediction log (`refit.monitoring.predictions`) on the prediction ``id``, splits the predictions
into fixed windows of prediction time, and for each window gives:

- ``coverage``: the share of its predictions that have a label;
- ``status``: ``complete`` once coverage reaches ``min_coverage``, ``partial`` below it,
  ``unlabelled`` with no label at all. Only complete windows have a realised value the policy
  should act on; the others are listed in `LabelJoin.unlabelled_windows`;
- ``realised``: the metric on the labelled rows (accuracy for classes, ``mae`` for values);
- ``estimate``: the label-free estimate from the logged probabilities (CBPE,
  `refit.monitoring.estimate`), with its interval and its assumption (no concept shift), so the
  two can be compared once labels land.

Run it again whenever labels land (``refit labels join``): a window's numbers grow with its
labels. `record_join` appends one ``performance_realised`` audit record per complete window to
the model's audit log (once per window and label count), or `write_report` writes JSON and
Markdown.

Labels file: CSV, Parquet or JSON Lines with columns ``id`` (the prediction's id), ``label``
(the true class or value) and optionally ``time`` (when the label was observed, ISO 8601 with a
time zone). The same id twice with the same label counts once; with two different labels it is
an error naming the id. Labels whose id is not in the prediction log (a rotated-away segment, a
typo) are counted and named in `LabelJoin.unknown_ids`; predictions whose id appears more than
once in the log are left out of the join and named in `LabelJoin.ambiguous_ids`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refit.audit.events import AuditEvent
from refit.monitoring.predictions import (
    MAX_ID_CHARS,
    PredictionLogError,
    PredictionRecords,
    iter_json_lines,
)

__all__ = [
    "METRICS",
    "LabelJoin",
    "WindowPerformance",
    "join_labels",
    "parse_window",
    "read_labels",
    "record_join",
    "write_report",
]

#: Realised metrics: ``accuracy`` (classes; higher is better), ``mae`` (values; lower is better).
METRICS = ("accuracy", "mae")
#: Most labels read from one call.
MAX_LABELS = 50_000_000
#: Ids named in a message or a report at most.
MAX_NAMED = 10


class LabelError(PredictionLogError):
    """A labels file, or the join's arguments, are not what the format asks for."""


def _key(value: Any) -> str:
    """A class label compared across files: ``1``, ``1.0`` and ``"1"`` are one class."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _check_label(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"a label must be a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - {"id", "label", "time"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: id, label, time")
    return record


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read and check a labels file: CSV, Parquet, or JSON Lines (a file or a folder of them).

    Returns:
        Columns ``id`` (str), ``label`` (object), ``time`` (UTC, NaT where not given).

    Raises:
        LabelError: A missing file or column, an empty or over-long id, a missing label, a time
            without a time zone; naming the file and the rows.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".jsonl", ".json"):
        records = list(iter_json_lines(path, _check_label, "labels"))
        frame = pd.DataFrame(
            {
                "id": [r.get("id") for r in records],
                "label": pd.Series([r.get("label") for r in records], dtype=object),
                "time": [r.get("time") for r in records],
            }
        )
    elif not path.exists():
        raise LabelError(f"labels {path} does not exist")
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise LabelError(
            f"labels {path}: unknown file type {suffix!r}; use .csv, .parquet or .jsonl"
        )
    return _checked_labels(frame, str(path))


def _checked_labels(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in ("id", "label") if c not in frame.columns]
    if missing:
        raise LabelError(
            f"labels {where} has no column(s) {', '.join(missing)} (columns: "
            f"{', '.join(map(str, frame.columns[:20]))}); a labels file has id, label and time"
        )
    if len(frame) > MAX_LABELS:
        raise LabelError(f"labels {where} has {len(frame)} rows, over the limit of {MAX_LABELS}")
    ids = frame["id"]
    bad_id = ids.map(lambda v: not isinstance(v, str) or not v or len(v) > MAX_ID_CHARS)
    if bad_id.any():
        rows = [int(i) for i in np.flatnonzero(bad_id.to_numpy())[:MAX_NAMED]]
        raise LabelError(
            f"labels {where}: id must be a non-empty string of at most {MAX_ID_CHARS} "
            f"characters; {int(bad_id.sum())} row(s) are not, first at row(s) {rows}"
        )
    labels = frame["label"]
    bad_label = labels.map(
        lambda v: v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA
    )
    if bad_label.any():
        rows = [int(i) for i in np.flatnonzero(bad_label.to_numpy())[:MAX_NAMED]]
        raise LabelError(
            f"labels {where}: label is missing or not finite in {int(bad_label.sum())} row(s), "
            f"first at row(s) {rows}"
        )
    if "time" in frame.columns:
        times = frame["time"]
        try:
            parsed = pd.to_datetime(times, utc=False, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise LabelError(f"labels {where}: time is not ISO 8601: {exc}") from None
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_convert(UTC)
        elif parsed.notna().any():
            raise LabelError(
                f"labels {where}: time has no time zone; write times like 2026-12-01T10:00:00Z"
            )
        else:
            parsed = pd.to_datetime(parsed, utc=True)
    else:
        parsed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {"id": ids.astype(str), "label": labels.astype(object), "time": parsed}
    ).reset_index(drop=True)


def parse_window(text: str) -> pd.Timedelta:
    """A window length: ``1h``, ``12h``, ``1d``, ``7d``, ``30min``...

    Raises:
        LabelError: Not a duration, or not positive.
    """
    try:
        width = pd.Timedelta(re.sub(r"(?<=\d)\s*d$", "D", text.strip()))
    except (ValueError, TypeError):
        raise LabelError(f"window {text!r:.40} is not a duration (like 1h, 1d, 7d)") from None
    if width <= pd.Timedelta(0):
        raise LabelError(f"window {text!r:.40} must be longer than zero")
    return width


@dataclass
class WindowPerformance:
    """One window of predictions and what its labels say so far."""

    start: str
    end: str
    n_predictions: int
    n_labelled: int
    coverage: float
    status: str
    metric: str
    realised: float | None
    estimate: dict[str, Any] | None = None
    realised_minus_estimate: float | None = None
    realised_within_interval: bool | None = None
    label_delay_hours_median: float | None = None


@dataclass
class LabelJoin:
    """The result of `join_labels` (JSON-ready through `to_dict`)."""

    metric: str
    window: str
    min_coverage: float
    windows: list[WindowPerformance]
    n_labels: int
    n_joined: int
    unknown_ids: list[str] = field(default_factory=list)
    n_unknown: int = 0
    ambiguous_ids: list[str] = field(default_factory=list)
    n_ambiguous: int = 0
    duplicate_labels: int = 0
    torn_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unlabelled_windows(self) -> list[str]:
        """Start times of the windows whose labels are not (all) in yet."""
        return [w.start for w in self.windows if w.status != "complete"]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with ``unlabelled_windows``."""
        data = asdict(self)
        data["unlabelled_windows"] = self.unlabelled_windows
        return data


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _estimate(proba: pd.Series, metric: str, seed: int) -> tuple[dict[str, Any] | None, str]:
    """The label-free estimate of a window from its logged probabilities (CBPE)."""
    if metric != "accuracy":
        return None, f"no estimate: CBPE estimates class metrics, not {metric}"
    rows = [p for p in proba if isinstance(p, dict)]
    if len(rows) < len(proba) or not rows:
        return None, "no estimate: some predictions were logged without proba"
    classes = list(rows[0])
    if any(list(p) != classes for p in rows):
        return None, "no estimate: the logged proba do not all name the same classes"
    from refit.monitoring.estimate import estimate_performance

    matrix = np.array([[p[c] for c in classes] for p in rows], dtype=float)
    est = estimate_performance(matrix, metric="accuracy", classes=classes, seed=seed)
    return {
        "value": est.value,
        "lower": est.lower,
        "upper": est.upper,
        "method": est.method,
        "assumption": est.assumption,
        "confidence": est.confidence,
    }, ""


def join_labels(
    predictions: PredictionRecords | pd.DataFrame,
    labels: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    window: str | pd.Timedelta = "1d",
    metric: str = "accuracy",
    min_coverage: float = 0.9,
    seed: int = 0,
) -> LabelJoin:
    """Join landed labels to predictions and measure each window (see the module docstring).

    Args:
        predictions: `read_predictions`' result, or its frame (``id``, ``time``,
            ``prediction``, ``proba``).
        labels: One or more frames from `read_labels` (``id``, ``label``, ``time``).
        window: Window length (``1d``, ``7d``, a `pandas.Timedelta`); windows start at the
            Unix epoch's multiples of it, in UTC.
        metric: ``accuracy`` or ``mae``.
        min_coverage: Share of a window's predictions that must be labelled for it to count as
            complete, in (0, 1].
        seed: Seed of the estimate's interval.

    Raises:
        LabelError: A bad argument, or an id given two different labels.
    """
    if metric not in METRICS:
        raise LabelError(f"metric must be one of {', '.join(METRICS)}, got {metric!r:.40}")
    if not 0 < min_coverage <= 1:
        raise LabelError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
    width = parse_window(window) if isinstance(window, str) else window
    window_text = window if isinstance(window, str) else str(width)
    torn: list[str] = []
    if isinstance(predictions, PredictionRecords):
        torn = list(predictions.torn)
        predictions = predictions.frame
    given = [labels] if isinstance(labels, pd.DataFrame) else list(labels)
    frames = [_checked_labels(f, f"labels[{i}]") for i, f in enumerate(given)]
    landed = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"id": [], "label": [], "time": []})
    )
    n_labels = len(landed)
    landed = landed.assign(_key=landed["label"].map(_key))
    per_id = landed.groupby("id", sort=False)["_key"].nunique()
    conflicting = per_id[per_id > 1]
    if len(conflicting):
        named = ", ".join(repr(i) for i in conflicting.index[:MAX_NAMED])
        raise LabelError(
            f"{len(conflicting)} prediction id(s) were given two different labels: {named}; "
            "correct the labels files (one label per id)"
        )
    unique = landed.drop_duplicates("id", keep="first").set_index("id")
    duplicates = n_labels - len(unique)

    counts = predictions["id"].value_counts()
    ambiguous = counts[counts > 1].index
    preds = predictions[~predictions["id"].isin(ambiguous)]
    known = unique.index.isin(predictions["id"])
    unknown = unique.index[~known & ~unique.index.isin(ambiguous)]

    joined = preds.join(unique[["label", "time"]].rename(columns={"time": "label_time"}), on="id")
    joined["labelled"] = joined["label"].notna()
    joined["window"] = joined["time"].dt.floor(width)
    notes: list[str] = []
    result: list[WindowPerformance] = []
    for start, rows in joined.groupby("window", sort=True):
        n = len(rows)
        done = rows[rows["labelled"]]
        coverage = len(done) / n
        status = (
            "unlabelled" if done.empty else ("complete" if coverage >= min_coverage else "partial")
        )
        realised = None if done.empty else _realised(done, metric)
        estimate, note = _estimate(rows["proba"], metric, seed)
        if note and note not in notes:
            notes.append(note)
        delay = (done["label_time"] - done["time"]).dropna()
        window = WindowPerformance(
            start=_iso(start),
            end=_iso(start + width),
            n_predictions=n,
            n_labelled=len(done),
            coverage=round(coverage, 6),
            status=status,
            metric=metric,
            realised=realised,
            estimate=estimate,
            label_delay_hours_median=(
                None if delay.empty else round(delay.median().total_seconds() / 3600, 3)
            ),
        )
        if realised is not None and estimate is not None:
            window.realised_minus_estimate = realised - estimate["value"]
            window.realised_within_interval = bool(
                estimate["lower"] <= realised <= estimate["upper"]
            )
        result.append(window)
    return LabelJoin(
        metric=metric,
        window=window_text,
        min_coverage=min_coverage,
        windows=result,
        n_labels=n_labels,
        n_joined=int(joined["labelled"].sum()),
        unknown_ids=[str(i) for i in unknown[:MAX_NAMED]],
        n_unknown=len(unknown),
        ambiguous_ids=[str(i) for i in ambiguous[:MAX_NAMED]],
        n_ambiguous=len(ambiguous),
        duplicate_labels=duplicates,
        torn_lines=torn,
        notes=notes,
    )


def _realised(rows: pd.DataFrame, metric: str) -> float:
    if metric == "accuracy":
        hits = rows["prediction"].map(_key) == rows["label"].map(_key)
        return float(hits.mean())
    try:
        predicted = rows["prediction"].astype(float)
        truth = rows["label"].astype(float)
    except (TypeError, ValueError):
        raise LabelError("metric mae needs numeric predictions and labels") from None
    return float((predicted - truth).abs().mean())


def record_join(join: LabelJoin, store_uri: str, model: str) -> list[dict[str, Any]]:
    """Record each complete window's realised and estimated performance in the audit log.

    One ``performance_realised`` record per complete window and label count: running the join
    again with no new labels appends nothing. Returns the records appended.

    Raises:
        RegistryError: The store or model name is invalid.
    """
    from refit.registry import open_registry

    audit = open_registry(store_uri, model).audit
    seen = {
        (r["payload"].get("start"), r["payload"].get("n_labelled"), r["payload"].get("metric"))
        for r in audit.records(AuditEvent.PERFORMANCE_REALISED)
    }
    written = []
    for w in join.windows:
        if w.status != "complete" or (w.start, w.n_labelled, w.metric) in seen:
            continue
        written.append(audit.append(AuditEvent.PERFORMANCE_REALISED, {"model": model, **asdict(w)}))
    return written


def markdown(join: LabelJoin) -> str:
    """A person's view of the join: one table row per window."""
    lines = [
        f"# Realised {join.metric} per window ({join.window})",
        "",
        f"{join.n_labels} label(s) landed, {join.n_joined} joined; complete at coverage "
        f">= {join.min_coverage:.0%}.",
        "",
        "| window | predictions | labelled | coverage | status | realised | estimate (interval) |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for w in join.windows:
        est = (
            "-"
            if w.estimate is None
            else f"{w.estimate['value']:.3f} ({w.estimate['lower']:.3f}-{w.estimate['upper']:.3f})"
        )
        real = "-" if w.realised is None else f"{w.realised:.3f}"
        lines.append(
            f"| {w.start} | {w.n_predictions} | {w.n_labelled} | {w.coverage:.1%} | {w.status} "
            f"| {real} | {est} |"
        )
    if join.unlabelled_windows:
        lines += ["", f"Still waiting for labels: {', '.join(join.unlabelled_windows)}."]
    if any(w.estimate for w in join.windows):
        assumption = next(w.estimate["assumption"] for w in join.windows if w.estimate)
        lines += ["", f"The estimate assumes {assumption}."]
    if join.n_unknown:
        lines += [
            "",
            f"{join.n_unknown} label(s) name no logged prediction: {', '.join(join.unknown_ids)}.",
        ]
    if join.n_ambiguous:
        lines += [
            "",
            f"{join.n_ambiguous} prediction id(s) appear more than once and were left out: "
            f"{', '.join(join.ambiguous_ids)}.",
        ]
    for note in join.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_report(join: LabelJoin, folder: str | Path) -> tuple[Path, Path]:
    """Write ``labels-join.json`` and ``labels-join.md`` into ``folder`` (atomically)."""
    from refit.io.uri import write_file_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    data = {**join.to_dict(), "written_at": stamp}
    json_path, md_path = folder / "labels-join.json", folder / "labels-join.md"
    write_file_atomic(json_path, json.dumps(data, indent=2) + "\n")
    write_file_atomic(md_path, markdown(join))
    return json_path, md_path
