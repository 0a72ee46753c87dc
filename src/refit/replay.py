"""Replay your own history through refit, from Python: which windows would have retrained, and why.

``refit backfill`` from a notebook or a script, on your own CSV or Parquet file (or a table
already in memory)::

    from refit.replay import replay_history

    timeline = replay_history(
        "history.csv", label_column="churned", window_column="week", exclude=["customer_id"]
    )
    print(timeline.text())
    timeline.retrained()          # names of the windows that retrain
    timeline.to_table()           # one row per window (pyarrow; .to_pandas() for pandas)

Windows come from a period column (``window_column``: a week number, a month, one window per
distinct value in sorted order) or from a time column and a length (``time_column`` and
``every="7d"``). By default the policy is replayed alone (fast: drift tests and, with a
``store`` holding a champion, its metric on each window). ``retrain=True`` runs the whole
retraining pipeline on each window with kfp.local (train, gate, register, promote) in
``workdir``, so the timeline also says what the gate decided and which version was live.

With no ``policy`` or ``gate``, refit's defaults apply (:mod:`refit.defaults`), the same as the
pipeline's and the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from refit.defaults import DEFAULT_SEED, DEFAULT_TRAINER
from refit.schedule.backfill import BackfillConfig, BackfillRow, render_timeline, run_backfill

__all__ = ["BackfillRow", "Timeline", "replay_history"]


@dataclass
class Timeline:
    """The replay's outcome: one :class:`~refit.schedule.backfill.BackfillRow` per window."""

    rows: list[BackfillRow]

    def text(self) -> str:
        """The fixed-width table ``refit backfill`` prints."""
        return render_timeline(self.rows)

    def retrained(self) -> list[str]:
        """Names of the windows whose decision was to retrain."""
        return [r.name for r in self.rows if r.decision == "retrain"]

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready dicts (what ``refit backfill --json`` writes)."""
        return [r.to_dict() for r in self.rows]

    def to_table(self) -> pa.Table:
        """The rows as a table (drifted features and reasons joined with ``"; "``)."""
        rows = [
            {**d, "drifted": "; ".join(d["drifted"]), "reasons": "; ".join(d["reasons"])}
            for d in self.to_dicts()
        ]
        return pa.Table.from_pylist(rows)


def replay_history(
    data: str | Path | pa.Table,
    *,
    label_column: str = "label",
    window_column: str = "",
    time_column: str = "",
    every: str | None = None,
    start: str | None = None,
    end: str | None = None,
    exclude: Sequence[str] = (),
    policy: dict[str, Any] | None = None,
    store: str | None = None,
    model_name: str = "model",
    retrain: bool = False,
    workdir: str | Path = "refit-backfill",
    gate: dict[str, Any] | None = None,
    trainer: str = DEFAULT_TRAINER,
    params: dict[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    on_window: Callable[[BackfillRow], None] | None = None,
) -> Timeline:
    """Replay the retrain policy (or, with ``retrain``, the pipeline) over your own windows.

    Args:
        data: CSV or Parquet file, folder or ``gs://`` URI, or a pyarrow table.
        label_column: Label column.
        window_column: Period column: one window per distinct value, in sorted order.
        time_column: Event-time column: with ``every`` it splits the windows; always left
            out of the features.
        every: Window length with ``time_column`` (``7d``, ``1w``, ``12h``).
        start: First time included (ISO 8601), with ``every``.
        end: Time where the replay stops (exclusive), with ``every``.
        exclude: Columns that are not features (ids, indexes): dropped before anything reads
            the data.
        policy: Retrain policy (``refit.policy.RetrainPolicy`` keys); default
            :data:`refit.defaults.DEFAULT_POLICY`.
        store: A refit store whose champion is the reference and is scored on each window
            (policy only).
        model_name: The model's name in ``store`` (and in ``workdir``'s store).
        retrain: Run the whole pipeline over each window (minutes, not seconds).
        workdir: ``retrain``'s folder: its store, data and one run folder per window.
        gate: ``retrain``'s promotion gate; default :data:`refit.defaults.DEFAULT_GATE`.
        trainer: ``retrain``'s trainer (xgboost, random_forest, logistic_regression).
        params: ``retrain``'s trainer hyper-parameters.
        seed: ``retrain``'s seed (holdout split and training).
        on_window: Called with each window's row as soon as it is decided.

    Returns:
        The timeline.

    Raises:
        refit.errors.DataError: Unreadable data, a bad time or window column, an unknown
            excluded column.
        refit.schedule.cron.ScheduleError: No way to split the windows, or a bad period.
        refit.errors.PolicyError: A bad policy.
    """
    config = BackfillConfig(
        data=data if isinstance(data, pa.Table) else str(data),
        time_column=time_column,
        every=every,
        start=start,
        end=end,
        target=label_column,
        policy=policy,
        model_name=model_name,
        store_uri=store,
        retrain=retrain,
        workdir=Path(workdir),
        trainer=trainer,
        window_column=window_column,
        exclude=tuple(exclude),
        gate=gate,
        params=params,
        seed=seed,
    )
    return Timeline(run_backfill(config, on_row=on_window))
