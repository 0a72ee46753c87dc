"""``refit backfill``: replay the retrain policy (or the whole pipeline) over historical windows.

The user's data is split by its time column into windows of ``every`` (``[start + k*every,
start + (k+1)*every)``), like Airflow's backfill runs a DAG once per past interval.

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

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from refit.errors import DataError, RegistryError
from refit.schedule.cron import ScheduleError, parse_interval

#: Policy used when none is given (the pipeline's default).
DEFAULT_BACKFILL_POLICY: dict[str, Any] = {
    "drift_share_threshold": 0.3,
    "metric": "accuracy",
    "metric_threshold": 0.8,
    "consecutive_windows": 2,
    "cooldown_windows": 0,
}


@dataclass
class BackfillConfig:
    """What to replay and how.

    Attributes:
        data: CSV or Parquet with the history (local path or gs://).
        time_column: Column with each row's event time.
        every: Window length (``1d``, ``7d``, ``1w``, ``12h``...).
        start: First instant included (ISO 8601); default: the earliest event.
        end: Instant where the replay stops, exclusive (ISO 8601); default: after the latest.
        target: Label column.
        policy: Retrain policy as a dict (default :data:`DEFAULT_BACKFILL_POLICY`).
        model_name: Model whose champion (in ``store_uri``) is the reference.
        store_uri: refit store with a champion to compare and score, if any (policy mode).
        retrain: Run the whole pipeline over each window.
        workdir: Working folder of ``retrain`` (store, pipeline root, data).
        trainer: Trainer of ``retrain``.
    """

    data: str
    time_column: str
    every: str
    start: str | None = None
    end: str | None = None
    target: str = "label"
    policy: dict[str, Any] | None = None
    model_name: str = "model"
    store_uri: str | None = None
    retrain: bool = False
    workdir: Path = Path("refit-backfill")
    trainer: str = "xgboost"


@dataclass
class BackfillRow:
    """One window of the timeline."""

    window: int
    start: str
    end: str
    rows: int
    decision: str  # retrain | skip | empty | blocked
    reasons: list[str] = field(default_factory=list)
    drift_share: float | None = None
    metric: float | None = None
    live_version: int | None = None

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
    if count > 10_000:
        raise ScheduleError(f"{count} windows of {every} between the bounds: too many (> 10000)")
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


def _policy_only(
    config: BackfillConfig, windows: list[tuple[datetime, datetime, pa.Table]], on_row: Any
) -> list[BackfillRow]:
    from refit.drift import detect_drift
    from refit.evaluation.metrics import evaluate
    from refit.policy import Observation, PolicyState, RetrainPolicy, decide
    from refit.steps.common import feature_columns, reference_table

    policy = RetrainPolicy.from_dict(config.policy or DEFAULT_BACKFILL_POLICY)
    state = PolicyState()
    reference: pa.Table | None = None
    champion_model = None
    if config.store_uri:
        from refit.registry import open_registry

        registry = open_registry(config.store_uri, config.model_name)
        reference = reference_table(registry)
        champion = registry.champion()
        if champion is None:
            raise RegistryError(
                f"store {config.store_uri!r} has no champion of model {config.model_name!r} to "
                "score (check --store and --model-name; leave --store out to replay from the "
                "first window)"
            )
        champion_model = registry.load_model(champion.version)
    has_champion = reference is not None
    rows: list[BackfillRow] = []
    for i, (a, b, window) in enumerate(windows):
        row = BackfillRow(window=i, start=a.isoformat(), end=b.isoformat(), rows=window.num_rows,
                          decision="empty")  # fmt: skip
        if window.num_rows == 0:
            row.reasons = ["no rows in this window"]
        else:
            drift = None
            if reference is not None:
                columns = feature_columns(reference, config.target, config.time_column)
                missing = [c for c in columns if c not in window.column_names]
                if missing:
                    row.decision = "blocked"
                    row.reasons = [f"column(s) missing from this window: {', '.join(missing)}"]
                    rows.append(row)
                    if on_row:
                        on_row(row)
                    continue
                drift = detect_drift(reference, window, columns=columns).drift_share
            metric = None
            if champion_model is not None and config.target in window.column_names:
                value = evaluate(champion_model, window).to_dict().get(policy.metric)
                metric = None if value is None else float(value)
            decision = decide(
                policy,
                state,
                Observation(
                    drift_share=drift,
                    metric_value=metric,
                    new_rows=window.num_rows,
                    now=b.isoformat(),
                    has_champion=has_champion,
                ),
            )
            state = decision.state
            row.drift_share, row.metric = drift, metric
            row.decision = "retrain" if decision.retrain else "skip"
            row.reasons = list(decision.reasons)
            if decision.retrain:  # simulate the retrain: this window is the new training data
                reference, has_champion, champion_model = window, True, None
                state = replace(
                    state, training_rows=window.num_rows, model_trained_at=b.isoformat()
                )
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def _with_pipeline(
    config: BackfillConfig, windows: list[tuple[datetime, datetime, pa.Table]], on_row: Any
) -> list[BackfillRow]:
    from refit.pipelines.local import ReplayConfig, replay

    kept = [(a, b, w) for a, b, w in windows if w.num_rows]
    out: list[BackfillRow] = []

    def convert(r: Any) -> BackfillRow:
        a, b, w = kept[r.window]
        row = BackfillRow(
            window=r.window,
            start=a.isoformat(),
            end=b.isoformat(),
            rows=w.num_rows,
            decision=r.decision,
            reasons=list(r.reasons),
            drift_share=r.drift_share,
            metric=r.champion_accuracy,
            live_version=r.live_version,
        )
        out.append(row)
        if on_row:
            on_row(row)
        return row

    replay(
        [w for _, _, w in kept],
        ReplayConfig(
            workdir=config.workdir,
            model_name=config.model_name,
            target=config.target,
            time_column=config.time_column,
            policy=config.policy or DEFAULT_BACKFILL_POLICY,
            trainer=config.trainer,
        ),
        now=[b.isoformat() for _, b, _ in kept],
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
        DataError: Unreadable data or a bad time column.
        ScheduleError: A bad period or bound.
        PolicyError: A bad policy.
        RegistryError: ``store_uri`` holds no champion of ``model_name``.
    """
    from refit.io.tables import read_table

    table = read_table(config.data)
    windows = split_windows(table, config.time_column, config.every, config.start, config.end)
    if config.retrain:
        return _with_pipeline(config, windows, on_row)
    return _policy_only(config, windows, on_row)


def render_timeline(rows: list[BackfillRow], header: bool = True) -> str:
    """A fixed-width text table of the timeline."""
    lines = []
    if header:
        lines.append(f"{'window':>6}  {'start':<25}  {'rows':>7}  {'drift':>5}  {'metric':>6}  "
                     "decision  reasons")  # fmt: skip
    for r in rows:
        drift = "—" if r.drift_share is None else f"{r.drift_share:.2f}"
        metric = "—" if r.metric is None else f"{r.metric:.3f}"
        lines.append(
            f"{r.window:>6}  {r.start:<25}  {r.rows:>7}  {drift:>5}  {metric:>6}  "
            f"{r.decision:<8}  {'; '.join(r.reasons)}"
        )
    return "\n".join(lines)
