"""``refit backfill``: replay the retrain policy (or the whole pipeline) over historical windows.

The user's data is split into windows, like Airflow's backfill runs a DAG once per past
interval: by its time column into windows of ``every`` (``[start + k*every, start +
(k+1)*every)``), or by a period column (``window_column``: a week number, a month name), one
window per distinct value in sorted order. Columns in ``exclude`` (an index, an id) are dropped
before anything looks at the data: they are neither drift-tested, validated nor trained on.
With no policy or gate, the defaults of :mod:`refit.defaults` apply (as in the pipeline).

* Policy only (default, fast): each window is compared with the reference (the champion's
  training data when ``store_uri`` holds a champion, else the first non-empty window) with
  ``refit.drift.detect_drift``; the champion, if any, is scored on the window for metric decay;
  ``refit.policy.decide`` decides. A retrain decision is simulated: that window becomes the
  reference (the new model's training data) and the policy state is reset, as after a real
  retrain. The real champion's metric is no longer meaningful after a simulated retrain, so it
  is scored only until the first one.
* ``retrain=True``: every window runs through the retraining pipeline with kfp.local
  (``refit.pipelines.local.replay``), which trains, gates and promotes for real.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from refit.defaults import (
    DEFAULT_GATE,
    DEFAULT_POLICY,
    DEFAULT_SEED,
    DEFAULT_TRAINER,
    DRIFT_SHARE_THRESHOLD,
)
from refit.errors import DataError, RegistryError
from refit.schedule.cron import ScheduleError, parse_interval

#: Most windows a replay splits the data into.
MAX_WINDOWS = 10_000


@dataclass
class BackfillConfig:
    """What to replay and how.

    Attributes:
        data: CSV or Parquet with the history (local path or gs://), or a table.
        time_column: Column with each row's event time (windows of ``every``; with
            ``window_column`` it is only excluded from features).
        every: Window length (``1d``, ``7d``, ``1w``, ``12h``...); with ``time_column``.
        start: First instant included (ISO 8601); default: the earliest event.
        end: Instant where the replay stops, exclusive (ISO 8601); default: after the latest.
        target: Label column.
        policy: Retrain policy as a dict (default :data:`refit.defaults.DEFAULT_POLICY`).
        model_name: Model whose champion (in ``store_uri``) is the reference.
        store_uri: refit store with a champion to compare and score, if any (policy mode).
        retrain: Run the whole pipeline over each window.
        workdir: Working folder of ``retrain`` (store, pipeline root, data).
        trainer: Trainer of ``retrain``.
        window_column: Period column (integers, text or dates): one window per distinct value,
            in sorted order; instead of ``every``.
        exclude: Columns dropped before anything reads the data (ids, indexes).
        gate: Promotion gate of ``retrain`` (default :data:`refit.defaults.DEFAULT_GATE`).
        params: Trainer hyper-parameters of ``retrain``.
        seed: Seed of ``retrain``'s holdout split and training.
    """

    data: str | pa.Table
    time_column: str = ""
    every: str | None = None
    start: str | None = None
    end: str | None = None
    target: str = "label"
    policy: dict[str, Any] | None = None
    model_name: str = "model"
    store_uri: str | None = None
    retrain: bool = False
    workdir: Path = Path("refit-backfill")
    trainer: str = DEFAULT_TRAINER
    window_column: str = ""
    exclude: tuple[str, ...] = ()
    gate: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    seed: int = DEFAULT_SEED


@dataclass
class Window:
    """One window of the history: its name, its bounds (time windows) and its rows."""

    name: str
    table: pa.Table
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class BackfillRow:
    """One window of the timeline."""

    window: int
    start: str | None
    end: str | None
    rows: int
    decision: str  # retrain | skip | empty | blocked
    reasons: list[str] = field(default_factory=list)
    drift_share: float | None = None
    metric: float | None = None
    live_version: int | None = None
    #: The window's name: its start date (time windows) or its value (period column).
    name: str = ""
    #: Features whose drift test fired.
    drifted: list[str] = field(default_factory=list)
    #: The promotion gate's verdict on the retrained model (``retrain`` mode), None if none ran.
    blessed: bool | None = None
    #: Version promoted in this window (``retrain`` mode), if any.
    promoted_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _parse_time(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ScheduleError(f"{what} must be an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def event_times(table: pa.Table, column: str) -> pa.Array:
    """The time column as UTC timestamps (microseconds).

    Raises:
        DataError: The column is missing, or holds values that are not times.
    """
    if column not in table.column_names:
        raise DataError(
            f"time column {column!r} is not in the data; columns: {', '.join(table.column_names)}"
        )
    values = table.column(column).combine_chunks()
    if values.null_count:
        raise DataError(f"time column {column!r} has {values.null_count} missing value(s)")
    try:
        if pa.types.is_timestamp(values.type):
            if values.type.tz is not None:
                values = values.cast(pa.timestamp(values.type.unit, tz="UTC"))
            return values.cast(pa.timestamp("us", tz="UTC"))
        if pa.types.is_date(values.type):
            return values.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            parsed = [_parse_time(v, f"time column {column!r} value") for v in values.to_pylist()]
            return pa.array(parsed, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, ScheduleError) as exc:
        raise DataError(f"time column {column!r} holds values that are not times: {exc}") from None
    raise DataError(f"time column {column!r} has type {values.type}, not a timestamp or ISO text")


def split_windows(
    table: pa.Table,
    time_column: str,
    every: str,
    start: str | None = None,
    end: str | None = None,
) -> list[tuple[datetime, datetime, pa.Table]]:
    """Split ``table`` into consecutive windows of ``every`` by ``time_column``.

    Returns:
        ``(start, end, rows)`` per window, in time order; empty windows included.

    Raises:
        DataError: No rows in the range, or a bad time column.
        ScheduleError: A bad period or bound.
    """
    period = timedelta(seconds=parse_interval(every).seconds)
    times = event_times(table, time_column)
    if len(times) == 0:
        raise DataError("the data has no rows")
    first = pc.min(times).as_py()
    last = pc.max(times).as_py()
    lo = _parse_time(start, "--from") if start else first
    hi = _parse_time(end, "--to") if end else last + timedelta(microseconds=1)
    if hi <= lo:
        raise ScheduleError(f"--to {hi.isoformat()} is not after --from {lo.isoformat()}")
    count = -(-(hi - lo) // period)
    if count > MAX_WINDOWS:
        raise ScheduleError(
            f"{count} windows of {every} between the bounds: too many (> {MAX_WINDOWS})"
        )
    windows = []
    for k in range(count):
        a, b = lo + k * period, min(lo + (k + 1) * period, hi)
        mask = pc.and_(
            pc.greater_equal(times, pa.scalar(a, times.type)),
            pc.less(times, pa.scalar(b, times.type)),
        )
        windows.append((a, b, table.filter(mask)))
    if not any(w.num_rows for _, _, w in windows):
        raise DataError(f"no rows between {lo.isoformat()} and {hi.isoformat()}")
    return windows


def _time_name(start: datetime) -> str:
    """A time window's name: its start date, with the time of day when not midnight."""
    if (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0):
        return start.date().isoformat()
    return start.strftime("%Y-%m-%dT%H:%M:%S")


def split_by_column(table: pa.Table, column: str) -> list[Window]:
    """One window per distinct value of a period column (a week number, a month), sorted.

    Raises:
        DataError: The column is missing, has missing values, is not integers, text or dates,
            or has more than :data:`MAX_WINDOWS` values; or the data has no rows.
    """
    if column not in table.column_names:
        raise DataError(
            f"window column {column!r} is not in the data; columns: {', '.join(table.column_names)}"
        )
    values = table.column(column)
    kind = values.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_date(kind)
        or pa.types.is_timestamp(kind)
    ):
        raise DataError(
            f"window column {column!r} has type {kind}: a period column holds integers, text, "
            "dates or times (one value per window)"
        )
    if values.null_count:
        raise DataError(f"window column {column!r} has {values.null_count} missing value(s)")
    if table.num_rows == 0:
        raise DataError("the data has no rows")
    distinct = pc.unique(values).sort()
    if len(distinct) > MAX_WINDOWS:
        raise DataError(
            f"window column {column!r} has {len(distinct)} distinct values: too many windows "
            f"(> {MAX_WINDOWS}); is it the period of each row?"
        )
    windows = []
    for value in distinct:
        rows = table.filter(pc.equal(values, value))
        plain = value.as_py()
        name = plain.isoformat() if hasattr(plain, "isoformat") else str(plain)
        windows.append(Window(name=name, table=rows))
    return windows


def _windows(config: BackfillConfig, table: pa.Table) -> list[Window]:
    if config.window_column:
        if config.every or config.start or config.end:
            raise ScheduleError(
                "a window column splits the windows by itself: leave out --every, --from and --to"
            )
        return split_by_column(table, config.window_column)
    if not config.time_column or not config.every:
        raise ScheduleError(
            "say how to split the data into windows: a time column and --every (e.g. "
            "--time-column ts --every 7d), or a period column (--window-column week)"
        )
    return [
        Window(name=_time_name(a), table=t, start=a, end=b)
        for a, b, t in split_windows(
            table, config.time_column, config.every, config.start, config.end
        )  # fmt: skip
    ]


def _drop_excluded(table: pa.Table, config: BackfillConfig) -> pa.Table:
    """``table`` less ``config.exclude`` (each must be one of its columns, none a key column)."""
    missing = [c for c in config.exclude if c not in table.column_names]
    if missing:
        raise DataError(
            f"--exclude names column(s) not in the data: {', '.join(missing)}; columns: "
            f"{', '.join(table.column_names)}"
        )
    keys = {config.target, config.time_column, config.window_column} - {""}
    if clash := sorted(keys & set(config.exclude)):
        raise DataError(
            f"--exclude names {', '.join(clash)}: the label, time and window columns are never "
            "features already; leave them out of --exclude"
        )
    return table.drop_columns(list(config.exclude)) if config.exclude else table


def _scored_champion(config: BackfillConfig) -> tuple[pa.Table | None, Any]:
    """The store's reference table and champion model to score (``--store``), else Nones."""
    if not config.store_uri:
        return None, None
    from refit.registry import open_registry
    from refit.steps.common import reference_table

    registry = open_registry(config.store_uri, config.model_name)
    reference = reference_table(registry)
    champion = registry.champion()
    if champion is None:
        raise RegistryError(
            f"store {config.store_uri!r} has no champion of model {config.model_name!r} to "
            "score (check --store and --model; leave --store out to replay from the "
            "first window)"
        )
    return reference, registry.load_model(champion.version)


def _window_drift(
    config: BackfillConfig,
    threshold: float | None,
    reference: pa.Table | None,
    window: pa.Table,
    row: BackfillRow,
) -> float | None:
    """The window's drift share against ``reference`` (None without one).

    Names the drifted features on ``row``; a window that lacks a feature column marks ``row``
    blocked, with the reason, and gives None.
    """
    from refit.drift import detect_drift
    from refit.steps.common import feature_columns

    if reference is None:
        return None
    not_features = {config.target, config.time_column, config.window_column, *config.exclude}
    columns = [
        c
        for c in feature_columns(reference, config.target, config.time_column)
        if c not in not_features
    ]
    missing = [c for c in columns if c not in window.column_names]
    if missing:
        row.decision = "blocked"
        row.reasons = [f"column(s) missing from this window: {', '.join(missing)}"]
        return None
    result = detect_drift(
        reference,
        window,
        columns=columns,
        drift_share_threshold=DRIFT_SHARE_THRESHOLD if threshold is None else threshold,
    )
    row.drifted = sorted(n for n, f in result.features.items() if f.drifted)
    return result.drift_share


def _champion_metric(
    config: BackfillConfig, metric: str, champion_model: Any, window: pa.Table
) -> float | None:
    """The champion's ``metric`` on the window (None without a champion or labels)."""
    from refit.evaluation.metrics import evaluate

    if champion_model is None or config.target not in window.column_names:
        return None
    value = evaluate(champion_model, window).to_dict().get(metric)
    return None if value is None else float(value)


@dataclass
class _PolicyReplay:
    """What the policy-only replay carries from window to window (a retrain changes it)."""

    config: BackfillConfig
    policy: Any
    state: Any
    reference: pa.Table | None
    champion_model: Any
    has_champion: bool = field(init=False)

    def __post_init__(self) -> None:
        self.has_champion = self.reference is not None

    def judge(self, row: BackfillRow, w: Window) -> None:
        """Fill ``row`` with the window's drift, metric and decision.

        A retrain makes the window the new training data (the reference), with no champion to
        score after it.
        """
        from refit.policy import Observation, decide

        window = w.table
        if window.num_rows == 0:
            row.reasons = ["no rows in this window"]
            return
        threshold = self.policy.drift_share_threshold
        drift = _window_drift(self.config, threshold, self.reference, window, row)
        if row.decision == "blocked":
            return
        metric = _champion_metric(self.config, self.policy.metric, self.champion_model, window)
        decision = decide(
            self.policy,
            self.state,
            Observation(
                drift_share=drift,
                metric_value=metric,
                new_rows=window.num_rows,
                now=(w.end or datetime.now(UTC)).isoformat(),
                has_champion=self.has_champion,
            ),
        )
        self.state = decision.state
        row.drift_share, row.metric = drift, metric
        row.decision = "retrain" if decision.retrain else "skip"
        row.reasons = list(decision.reasons)
        if decision.retrain:  # simulate the retrain: this window is the new training data
            self.reference, self.has_champion, self.champion_model = window, True, None
            self.state = replace(
                self.state,
                training_rows=window.num_rows,
                model_trained_at=(w.end or datetime.now(UTC)).isoformat(),
            )


def _policy_only(config: BackfillConfig, windows: list[Window], on_row: Any) -> list[BackfillRow]:
    from refit.policy import PolicyState, RetrainPolicy

    policy = RetrainPolicy.from_dict(config.policy or DEFAULT_POLICY)
    replay = _PolicyReplay(config, policy, PolicyState(), *_scored_champion(config))
    rows: list[BackfillRow] = []
    for i, w in enumerate(windows):
        row = BackfillRow(
            window=i,
            start=w.start.isoformat() if w.start else None,
            end=w.end.isoformat() if w.end else None,
            rows=w.table.num_rows,
            decision="empty",
            name=w.name,
        )
        replay.judge(row, w)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def run_label(index: int, name: str) -> str:
    """The run label (and run folder) of window ``index`` named ``name``: ``window-03-2024-W07``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``; the name is cut
    to 80 characters.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:80]
    return f"window-{index:02d}" + (f"-{safe}" if safe else "")


def _with_pipeline(config: BackfillConfig, windows: list[Window], on_row: Any) -> list[BackfillRow]:
    from refit.pipelines.local import ReplayConfig, replay

    kept = [w for w in windows if w.table.num_rows]
    out: list[BackfillRow] = []

    def convert(r: Any) -> BackfillRow:
        w = kept[r.window]
        row = BackfillRow(
            window=r.window,
            start=w.start.isoformat() if w.start else None,
            end=w.end.isoformat() if w.end else None,
            rows=w.table.num_rows,
            decision=r.decision,
            reasons=list(r.reasons),
            drift_share=r.drift_share,
            metric=r.champion_accuracy,
            live_version=r.live_version,
            name=w.name,
            drifted=list(r.drifted),
            blessed=r.blessed,
            promoted_version=r.promoted_version,
        )
        out.append(row)
        if on_row:
            on_row(row)
        return row

    replay(
        [w.table for w in kept],
        ReplayConfig(
            workdir=config.workdir,
            model_name=config.model_name,
            target=config.target,
            time_column=config.time_column,
            policy=config.policy or DEFAULT_POLICY,
            gate=config.gate or DEFAULT_GATE,
            trainer=config.trainer,
            params=config.params,
            seed=config.seed,
        ),
        now=[w.end.isoformat() if w.end else "" for w in kept],
        labels=[run_label(i, w.name) for i, w in enumerate(kept)],
        on_window=convert,
    )
    return out


def run_backfill(config: BackfillConfig, on_row: Any = None) -> list[BackfillRow]:
    """Replay the policy (or the pipeline) over the windows of ``config.data``.

    Args:
        config: What to replay.
        on_row: Called with each window's row as soon as it is decided.

    Returns:
        The timeline, one row per window.

    Raises:
        DataError: Unreadable data, a bad time or window column, an unknown excluded column.
        ScheduleError: A bad period or bound, or no way to split the windows.
        PolicyError: A bad policy.
        RegistryError: ``store_uri`` holds no champion of ``model_name``.
    """
    from refit.io.tables import read_table

    table = config.data if isinstance(config.data, pa.Table) else read_table(config.data)
    table = _drop_excluded(table, config)
    windows = _windows(config, table)
    if config.window_column:  # one value per window: a constant, never a feature
        for w in windows:
            w.table = w.table.drop_columns([config.window_column])
    if config.retrain:
        return _with_pipeline(config, windows, on_row)
    return _policy_only(config, windows, on_row)


def render_timeline(rows: list[BackfillRow], header: bool = True) -> str:
    """A fixed-width text table of the timeline: drifted features, gate and live version too."""
    lines = []
    if header:
        lines.append(
            f"{'window':>6}  {'name':<19}  {'rows':>7}  {'drift':>5}  {'metric':>6}  "
            f"{'decision':<8}  {'gate':<7}  {'live':>4}  drifted features; reasons"
        )
    for r in rows:
        drift = "—" if r.drift_share is None else f"{r.drift_share:.2f}"
        metric = "—" if r.metric is None else f"{r.metric:.3f}"
        gate = "—" if r.blessed is None else ("blessed" if r.blessed else "refused")
        live = "—" if r.live_version is None else f"v{r.live_version}"
        drifted = ", ".join(r.drifted) if r.drifted else "—"
        lines.append(
            f"{r.window:>6}  {r.name:<19}  {r.rows:>7}  {drift:>5}  {metric:>6}  "
            f"{r.decision:<8}  {gate:<7}  {live:>4}  {drifted}; {'; '.join(r.reasons)}"
        )
    return "\n".join(lines)
